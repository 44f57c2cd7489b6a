"""The one run loop: drive a stepper between snapshot times, write, check, show progress.

Solvers only step (`solvers.base.Stepper`); everything with a side effect lives here, and
the snapshot file is complete up to the last snapshot whatever stops the loop.
"""
from __future__ import annotations

import sys
import time as clock
from dataclasses import dataclass

import numpy as np

from gflow.errors import RunError
from gflow.snapshots import SnapshotWriter
from gflow.solvers.base import Observation, Stepper

#: relative mass drift tolerated for conserving schemes (round-off over many steps)
MASS_TOLERANCE = 1e-10
#: mass outside the box (particles) that stops a run: the binned density no longer represents it
OUTSIDE_TOLERANCE = 1e-3
#: mass in the outermost cells of an axis that earns a warning: the box may be too small
BOUNDARY_WARNING = 1e-3


@dataclass
class RunSummary:
    steps: int
    limited_steps: int     # steps shortened below the requested dt for stability
    wall: float
    final: Observation

    def line(self, kind: str, extra: str = "") -> str:
        text = (f"{kind}: {self.steps} steps in {self.wall:.2f} s, final risk {self.final.risk:.6g}, "
                f"mass {self.final.mass:.12g}")
        if self.limited_steps:
            text += f", {self.limited_steps} steps shortened for stability"
        return text + (f", {extra}" if extra else "")


def check(obs: Observation, t: float, initial_mass: float, conserves_mass: bool) -> None:
    """Stop on non-finite values or mass drift; name the time and the cause."""
    for name, value in (("risk", obs.risk), ("energy", obs.energy), ("mass", obs.mass)):
        if not np.isfinite(value):
            raise RunError(f"t = {t:.6g}: {name} is {value} (the solution blew up)")
    if not np.all(np.isfinite(obs.density)):
        raise RunError(f"t = {t:.6g}: the density has non-finite values (the solution blew up)")
    if conserves_mass and abs(obs.mass - initial_mass) > MASS_TOLERANCE * abs(initial_mass):
        raise RunError(f"t = {t:.6g}: mass drifted from {initial_mass:.15g} to {obs.mass:.15g}")
    outside = obs.extras.get("outside_mass", 0.0)
    if outside > OUTSIDE_TOLERANCE:
        raise RunError(f"t = {t:.6g}: {outside:.3g} of the mass has left the box (risk {obs.risk:.3g}): "
                       "the run diverged, or [grid].bounds is too small")


def boundary_mass(density: np.ndarray) -> list[float]:
    """Fraction of the mass in the two outermost cell layers of each axis."""
    total = density.sum()
    fractions = []
    for axis in range(density.ndim):
        edge = np.take(density, [0, -1], axis=axis).sum()
        fractions.append(float(edge / total) if total > 0 else 0.0)
    return fractions


def _progress(end: float, label: str, enabled: bool | None):
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=end, desc=label, unit="t", mininterval=1.0, leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")


def run(stepper: Stepper, times: np.ndarray, writer: SnapshotWriter, dt: float | None = None,
        progress: bool | None = None, label: str = "", axes: tuple[str, ...] = (),
        start: int = 0, warn=None, on_snapshot=None) -> RunSummary:
    """Advance `stepper` through `times`, appending a snapshot at each (hit exactly).

    With `start` > 0 the stepper has been restored at times[start], which the file already
    holds (gflow run --resume). `warn` receives one-line warnings (default: stderr);
    `on_snapshot(index, t, observation)` is called after each snapshot is on disk.
    """
    warn = warn or (lambda text: print(f"gflow: warning: {text}", file=sys.stderr))
    clock_start = clock.perf_counter()
    bar = _progress(float(times[-1]), label or stepper.kind, progress)
    steps = limited = 0
    warned: set[int] = set()

    def record(t: float, obs: Observation, initial_mass: float) -> None:
        check(obs, t, initial_mass, stepper.conserves_mass)
        for axis, fraction in enumerate(boundary_mass(obs.density)):
            if fraction > BOUNDARY_WARNING and axis not in warned:
                warned.add(axis)
                name = axes[axis] if axis < len(axes) else str(axis)
                warn(f"t = {t:.6g}: {fraction:.2%} of the mass sits in the boundary cells of axis "
                     f"{name!r}; the box may be too small")

    try:
        obs = stepper.observe()
        initial_mass = obs.mass
        record(times[start], obs, initial_mass)
        if start == 0:
            writer.append(float(times[0]), obs, stepper.restart_state())
            if on_snapshot is not None:
                on_snapshot(0, float(times[0]), obs)
        t = float(times[start])
        if bar is not None:
            bar.update(t)
        for t_next in times[start + 1:]:
            while t < t_next:
                remaining = t_next - t
                wanted = remaining if dt is None else min(dt, remaining)
                taken = stepper.step(wanted)
                if not taken > 0:
                    raise RunError(f"t = {t:.6g}: the solver's step fell to {taken:g}")
                limited += dt is not None and taken < wanted * (1 - 1e-12)
                # land exactly on the snapshot time, whatever the rounding of t + taken
                t = float(t_next) if taken >= remaining * (1 - 1e-12) else t + taken
                steps += 1
                if bar is not None:
                    bar.update(t - bar.n)
            obs = stepper.observe()
            record(t, obs, initial_mass)
            writer.append(float(t_next), obs, stepper.restart_state())
            if on_snapshot is not None:
                on_snapshot(int(np.searchsorted(times, t_next)), float(t_next), obs)
    finally:
        if bar is not None:
            bar.close()
    return RunSummary(steps, limited, clock.perf_counter() - clock_start, obs)
