"""One full fv step (all SSP-RK3 stages, V included) against the memory floor.

The floor is what no implementation can beat: one read and one write of rho per stage at
the machine's copy bandwidth. On the two-layer model the evaluation of V costs
O(N_wb M) per stage; its share of the step is reported separately.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks.timing import floor_seconds, median_time
from gflow.case import load_case
from gflow.problem import build_problem
from gflow.solvers.fv import FiniteVolumeStepper

CASES = {
    "512": ("quickstart.toml", ["grid.cells=[512,512]"]),
    "128cubed": ("relu_bias_3d.toml", ["grid.cells=[128,128,128]", "model.activation=\"tanh\""]),
}


def measure(root, key: str, gbps: float, steps: int) -> dict:
    name, overrides = CASES[key]
    case = load_case(root / "cases" / name, overrides, ["fv"])
    stepper = FiniteVolumeStepper(build_problem(case), case.solvers[0].options)
    dt = 1e-5   # tiny: every step costs the same, and the density barely moves
    step = median_time(lambda: stepper.step(dt), steps, warmup=2)
    # V's share: the three evaluations of the velocity factors a step makes
    m1 = np.tensordot(stepper.operator.a, stepper._view(stepper.rho)[0], axes=(0, 0))[None]
    v = median_time(lambda: stepper._kernel_args(m1), steps, warmup=1) * 3
    floor = floor_seconds(stepper.rho.nbytes, 3, gbps)
    return {f"fv_step_over_floor_{key}": step / floor,
            f"fv_step_ms_{key}": step * 1e3,
            f"fv_V_share_{key}": v / step,
            f"fv_fused_{key}": bool(stepper.fused)}
