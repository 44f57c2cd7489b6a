"""Step control (issue 14, items 2, 6, 7): stability limits that hold over the whole step, the
particles' neighbour cap, and the step budget that stops runs which would never end."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import TWO_LAYER_2D
from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.solvers.fv import FiniteVolumeStepper
from gflow.solvers.loop import run


def fv_snapshots(text, kernel, **overrides):
    case = case_from_text(text)
    stepper = FiniteVolumeStepper(build_problem(case), {"kernel": kernel, **overrides})
    times = np.linspace(0.0, case.end, case.snapshots)
    observed = []

    from gflow.solvers.trackers import CallbackTracker
    run(stepper, times, [CallbackTracker(lambda i, t, obs: observed.append(obs))], case.dt)
    return stepper, observed


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_fv_far_apart_snapshots_stay_positive_and_dissipate(kernel):
    # small.toml with end = 200 and three snapshots took steps of ~100 at the end (the CFL of
    # the step's first stage only): minimum density -0.0086 and a rising energy
    text = TWO_LAYER_2D.replace("end = 1.0", "end = 200.0")
    for snapshots in (3, 5):
        _, observed = fv_snapshots(text.replace("snapshots = 3", f"snapshots = {snapshots}"), kernel)
        minima = [float(obs.density.min()) for obs in observed]
        energies = np.array([obs.energy for obs in observed])
        assert min(minima) >= 0.0, minima
        assert np.all(np.diff(energies) <= 1e-12 * abs(energies[0])), energies


def test_fv_fused_and_numpy_take_the_same_steps_far_apart():
    text = TWO_LAYER_2D.replace("end = 1.0", "end = 200.0")
    (a, obs_a), (b, obs_b) = fv_snapshots(text, "numba"), fv_snapshots(text, "numpy")
    for x, y in zip(obs_a, obs_b):
        # equal per step to ~1e-12 (tests/test_fv_kernel.py); 140 steps of up to 14 time units
        assert np.abs(x.density - y.density).max() < 1e-8
        assert abs(x.energy - y.energy) < 1e-8 * abs(x.energy)
