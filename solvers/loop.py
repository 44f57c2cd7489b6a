"""The one run loop: drive a stepper between snapshot times; trackers do everything else.

Steppers only step (`gflow.solvers.base.Stepper`); writing, checks, warnings, progress and
callbacks are trackers (`gflow.solvers.trackers`), so the loop is the same for every solver
and every use (the command line, sweeps, tests, the Python API). Snapshot times are hit
exactly, and the trackers' `finish` runs whatever stops the loop, so the snapshot file is
complete up to the last snapshot written.
"""
from __future__ import annotations

import time as clock
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gflow.errors import RunError
from gflow.snapshots import Observation
from gflow.solver_options import MAX_STEPS_PER_SNAPSHOT
from gflow.solvers.base import Stepper
from gflow.solvers.trackers import Tracker


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


#: solver steps in a row below the floor that stop the run (a transient, such as two particles
#: drawn close together under a singular repulsion, recovers within a few steps)
SHORT_STEPS = 100


def check_step(t: float, taken: float, wanted: float, remaining: float, short: int) -> int:
    """Stop, in one line, a run that would never end: a step that is not positive, that no
    longer moves t (t + dt == t), or a solver's own step that stays, SHORT_STEPS steps in a
    row, so short that reaching the next snapshot would take more than MAX_STEPS_PER_SNAPSHOT
    steps (`gflow.solver_options`). Returns the steps in a row below that floor."""
    if not taken > 0:
        raise RunError(f"t = {t:.6g}: the solver's step fell to {taken:g}")
    if t + taken == t:
        raise RunError(f"t = {t:.6g}: the step {taken:g} no longer changes t (t + dt == t in floating point)")
    if not (taken < wanted and taken * MAX_STEPS_PER_SNAPSHOT < remaining):
        return 0
    if short + 1 >= SHORT_STEPS:
        raise RunError(f"t = {t:.6g}: the solver's step fell to {taken:.3g}, over {MAX_STEPS_PER_SNAPSHOT:.0e} "
                       f"steps to the next snapshot ({remaining:.3g} away): the snapshots are too far apart, or "
                       "the problem too stiff for this solver (temperature, weight decay, a singular "
                       "interaction, the step options)")
    return short + 1


def run(stepper: Stepper, times: np.ndarray, trackers: Sequence[Tracker] = (), dt: float | None = None,
        start: int = 0, resumed: bool = False) -> RunSummary:
    """Advance `stepper` through `times`, handing each snapshot to the trackers.

    `dt` is the user's fixed step ([time].dt), or None for the stepper's own choice; each step
    is at most the time to the next snapshot, and the stepper is told which (`fixed`). With
    `resumed` (implied by `start` > 0) the stepper has been restored at times[start], which the
    trackers do not see again as a snapshot (the file holds it): a run resumed from its first
    snapshot passes start = 0 and resumed = True.
    """
    clock_start = clock.perf_counter()
    steps = limited = short = 0
    fixed = dt is not None
    # a model with a training schedule counts steps (`Model.begin_step`: the resnet's refresh)
    begin_step = getattr(getattr(getattr(stepper, "problem", None), "model", None), "begin_step", None)
    try:
        obs = stepper.observe()
        t = float(times[start])
        for tracker in trackers:
            tracker.start(t, obs)
        if not (resumed or start > 0):
            for tracker in trackers:
                tracker.handle(start, t, obs)
        for index in range(start + 1, len(times)):
            t_next = float(times[index])
            after_snapshot = True
            while t < t_next:
                if begin_step is not None:
                    begin_step(after_snapshot)
                    after_snapshot = False
                remaining = t_next - t
                wanted = remaining if dt is None else min(dt, remaining)
                stepper.time = t
                taken = stepper.step(wanted, fixed)
                short = check_step(t, taken, wanted, remaining, short)
                limited += fixed and taken < wanted * (1 - 1e-12)
                # land exactly on the snapshot time, whatever the rounding of t + taken: t itself
                # carries rounding of order eps |t|, so the slack scales with |t_next| (relative to
                # `remaining` alone, dt = 0.01 near t = 30 left a step of 1e-14 every other snapshot)
                t = t_next if taken >= remaining - 1e-12 * max(remaining, abs(t_next)) else t + taken
                steps += 1
                for tracker in trackers:
                    tracker.advance(t)
            obs = stepper.observe()
            for tracker in trackers:
                tracker.handle(index, t_next, obs)
    finally:
        for tracker in trackers:
            tracker.finish()
    return RunSummary(steps, limited, clock.perf_counter() - clock_start, obs)
