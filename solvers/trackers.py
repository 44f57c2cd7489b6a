"""Trackers: every side effect of a run, outside the steppers and outside the loop itself.

The run loop (`gflow.solvers.loop`) advances a stepper between snapshot times and hands
each snapshot to its trackers, as py-pde's trackers take the state from its controller
(`pde/trackers/base.py`):

    start(t, observation)      once, with the state the loop starts from (t = 0, or the
                               snapshot a resumed run continues from, which is on disk already)
    advance(t)                 after every step (cheap: the progress bar)
    handle(index, t, obs)      at every new snapshot, in the order the trackers are given
    finish()                   always, also when the run stops on an error or Ctrl-C

A tracker that raises stops the run; the ones before it in the list have seen the snapshot.
So the checks come before the writer: a snapshot that fails them is never written, and the
file stays complete up to the last good one.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from gflow.errors import RunError
from gflow.grids import LAYER
from gflow.snapshots import Observation, SnapshotWriter

#: relative mass drift tolerated for conserving schemes (round-off over many steps)
MASS_TOLERANCE = 1e-10
#: fraction of the weight outside the binning box (particles) that earns one warning per run:
#: gradient descent does not know the box, so the run goes on; the density bins what is inside
OUTSIDE_WARNING = 1e-3
#: mass in the outermost cells of an axis that earns a warning: the box may be too small
BOUNDARY_WARNING = 1e-3
#: divergence without overflow: |risk| beyond RISK_GROWTH * max(|initial risk|, RISK_FLOOR) stops
#: the run (a gradient flow's risk can rise with noise or a mass leaving the box, never by 1e6)
RISK_GROWTH = 1e6
RISK_FLOOR = 1.0


class Tracker:
    """A side effect of a run; each hook does nothing unless overridden."""

    def start(self, t: float, obs: Observation) -> None:
        """The loop starts (or resumes) from `obs` at time t."""

    def advance(self, t: float) -> None:
        """A step ended at time t."""

    def handle(self, index: int, t: float, obs: Observation) -> None:
        """Snapshot `index` (of the run's snapshot times) at time t."""

    def finish(self) -> None:
        """The loop ended, normally or not."""


class InvariantTracker(Tracker):
    """Stop on real divergence: non-finite values, the risk growing by RISK_GROWTH, mass drift.

    Divergence is (1) a non-finite risk, energy, mass, density or particle position, or (2)
    |risk| > RISK_GROWTH * max(|risk at the start|, RISK_FLOOR): a run that blows up without
    overflowing yet (an unstable step, particles thrown far out) is stopped there rather than
    at inf; the floor keeps a start at risk ~ 0 from counting round-off growth. (3) A
    conserving scheme's mass (with `outside_mass`, the particles' total weight) drifting beyond
    MASS_TOLERANCE. Mass leaving the binning box of a
    Lagrangian solver is not divergence (gradient descent does not know the box):
    `BoundaryTracker` warns about it once, and the run goes on.
    """

    def __init__(self, conserves_mass: bool):
        self.conserves_mass = conserves_mass
        self.initial_mass = None
        self.initial_risk = None

    @staticmethod
    def total_mass(obs: Observation) -> float:
        """The density's mass plus what a Lagrangian solver has outside the box."""
        return obs.mass + obs.extras.get("outside_mass", 0.0)

    def start(self, t, obs):
        self.initial_mass = self.total_mass(obs)
        self.initial_risk = obs.risk
        self.handle(-1, t, obs)

    def handle(self, index, t, obs):
        for name, value in (("risk", obs.risk), ("energy", obs.energy), ("mass", obs.mass)):
            if not np.isfinite(value):
                raise RunError(f"t = {t:.6g}: {name} is {value} (the solution blew up)")
        if not np.all(np.isfinite(obs.density)):
            raise RunError(f"t = {t:.6g}: the density has non-finite values (the solution blew up)")
        if obs.positions is not None and not np.all(np.isfinite(obs.positions)):
            raise RunError(f"t = {t:.6g}: particle positions are non-finite (the solution blew up)")
        limit = RISK_GROWTH * max(abs(self.initial_risk), RISK_FLOOR)
        if np.isfinite(self.initial_risk) and abs(obs.risk) > limit:
            raise RunError(f"t = {t:.6g}: the risk grew from {self.initial_risk:.6g} to {obs.risk:.6g}, "
                           f"beyond {RISK_GROWTH:g} times its start (the run diverged; a smaller step?)")
        m0, mass = self.initial_mass, self.total_mass(obs)
        if self.conserves_mass and abs(mass - m0) > MASS_TOLERANCE * abs(m0):
            raise RunError(f"t = {t:.6g}: mass drifted from {m0:.15g} to {mass:.15g}")


def boundary_mass(density: np.ndarray) -> list[float]:
    """Fraction of the mass in the outermost cell layers of each axis (a one-cell axis's single
    layer counted once)."""
    total = density.sum()
    fractions = []
    for axis in range(density.ndim):
        layers = sorted({0, density.shape[axis] - 1})
        edge = np.take(density, layers, axis=axis).sum()
        fractions.append(float(edge / total) if total > 0 else 0.0)
    return fractions


def warn_on_stderr(text: str) -> None:
    print(f"gflow: warning: {text}", file=sys.stderr)


class BoundaryTracker(Tracker):
    """Warnings about the box, each naming the solver (`solver`), once per run.

    Once per axis when the density piles up in its outermost cells (more than BOUNDARY_WARNING
    of the mass; axes of one or two cells have no interior and are skipped); once when more
    than OUTSIDE_WARNING of a Lagrangian solver's weight is outside the box (the `outside_mass`
    extra, stored per snapshot): the density then bins the particles inside, the run goes on.
    """

    def __init__(self, axes: tuple[str, ...] = (), warn: Callable[[str], None] | None = None,
                 solver: str = ""):
        self.axes = tuple(axes)
        self.warn = warn or warn_on_stderr
        self.prefix = f"{solver}: " if solver else ""
        self.warned: set[int | str] = set()

    def start(self, t, obs):
        self.handle(-1, t, obs)

    def handle(self, index, t, obs):
        for axis, fraction in enumerate(boundary_mass(obs.density)):
            # the layer axis of a layered model is no box: its cells are the layers
            if fraction > BOUNDARY_WARNING and axis not in self.warned and obs.density.shape[axis] > 2 \
                    and self.axes[axis:axis + 1] != (LAYER,):
                self.warned.add(axis)
                name = self.axes[axis] if axis < len(self.axes) else str(axis)
                self.warn(f"{self.prefix}t = {t:.6g}: {fraction:.2%} of the mass sits in the boundary cells "
                          f"of axis {name!r}; the box may be too small")
        outside = obs.extras.get("outside_mass", 0.0)
        total = outside + obs.mass
        fraction = outside / total if total > 0 else 0.0
        if fraction > OUTSIDE_WARNING and "outside" not in self.warned:
            self.warned.add("outside")
            self.warn(f"{self.prefix}t = {t:.6g}: {100 * fraction:.3g}% of the mass is outside the box "
                      "of [grid].bounds; the run goes on, `density` bins the particles inside and "
                      "`outside_mass` holds the rest (widen [grid].bounds to bin it all)")


class SnapshotTracker(Tracker):
    """Append each new snapshot, with the stepper's restart state, to the run's file."""

    def __init__(self, writer: SnapshotWriter, stepper):
        self.writer, self.stepper = writer, stepper

    def handle(self, index, t, obs):
        self.writer.append(float(t), obs, self.stepper.restart_state())


class CallbackTracker(Tracker):
    """Call `function(index, t, observation)` after each snapshot (on disk by then, if a
    SnapshotTracker comes first)."""

    def __init__(self, function: Callable[[int, float, Observation], None]):
        self.function = function

    def handle(self, index, t, obs):
        self.function(index, float(t), obs)


class ProgressTracker(Tracker):
    """A tqdm bar over simulated time, updated about once a second, only on a terminal by default."""

    def __init__(self, end: float, label: str, enabled: bool | None = None):
        self.end, self.label = float(end), label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None

    def start(self, t, obs):
        if not self.enabled:
            return
        from tqdm import tqdm
        # tqdm's remaining time is (total - n) / rate, the rate in simulated time per second; a
        # resumed run starts the bar at `initial` = t, so the part done before is not counted
        # as progress made in no time (which made the ETA of a resumed run far too short)
        self.bar = tqdm(total=self.end, initial=t, desc=self.label, unit="t", mininterval=1.0, leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")

    def advance(self, t):
        if self.bar is not None:
            self.bar.update(t - self.bar.n)

    def finish(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def standard_trackers(writer: SnapshotWriter | None, stepper, *, end: float, label: str = "",
                      axes: tuple[str, ...] = (), progress: bool | None = None, warn=None,
                      on_snapshot=None) -> list[Tracker]:
    """What `gflow run` attaches: checks, the boundary warning, the file, progress, a callback."""
    trackers: list[Tracker] = [InvariantTracker(stepper.conserves_mass),
                                BoundaryTracker(axes, warn, stepper.kind)]
    if writer is not None:
        trackers.append(SnapshotTracker(writer, stepper))
    trackers.append(ProgressTracker(end, label or stepper.kind, progress))
    if on_snapshot is not None:
        trackers.append(CallbackTracker(on_snapshot))
    return trackers
