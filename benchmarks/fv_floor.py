"""One full fv step (all SSP-RK3 stages, V included) against the memory floor.

The floor is what no implementation can beat: one read and one write of rho per stage at
the machine's one-thread copy bandwidth (`timing.stream_gbps`). On the two-layer model the
evaluation of V costs O(N_wb M) per stage; its share of the step is reported separately.
The 256^3 step runs in a fresh process so that its peak memory is its own.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from benchmarks.timing import floor_seconds, peak_rss_mib, time_spread, median_time
from gflow.case import load_case
from gflow.problem import build_problem
from gflow.solvers.fv import FiniteVolumeStepper

CASES = {
    "512": ("quickstart.toml", ["grid.cells=[512,512]"]),
    "128cubed": ("relu_bias_3d.toml", ["grid.cells=[128,128,128]", "model.activation=\"tanh\""]),
    "256cubed": ("relu_bias_3d.toml", ["grid.cells=[256,256,256]", "model.activation=\"tanh\""]),
}


def measure(root, key: str, gbps: float, steps: int) -> dict:
    name, overrides = CASES[key]
    case = load_case(root / "cases" / name, overrides, ["fv"])
    stepper = FiniteVolumeStepper(build_problem(case), case.solvers[0].options)
    dt = 1e-5   # tiny: every step costs the same, and the density barely moves
    step, lo, hi = time_spread(lambda: stepper.step(dt), steps, warmup=2)
    # V's share: the three evaluations of the velocity factors a step makes
    m1 = np.tensordot(stepper.operator.a, stepper._view(stepper.rho)[0], axes=(0, 0))[None]
    v = median_time(lambda: stepper._kernel_args(m1), steps, warmup=1) * 3
    floor = floor_seconds(stepper.rho.nbytes, 3, gbps)
    return {f"fv_step_over_floor_{key}": step / floor,
            f"fv_step_over_floor_{key}_range": [lo / floor, hi / floor],
            f"fv_step_ms_{key}": step * 1e3,
            f"fv_V_share_{key}": v / step,
            f"fv_fused_{key}": bool(stepper.fused),
            f"fv_peak_rss_mib_{key}": peak_rss_mib()}


def measure_in_subprocess(root, key: str, gbps: float, steps: int) -> dict:
    """`measure` in a fresh interpreter: its peak memory is then the step's, not this run's."""
    code = ("import json, sys; from pathlib import Path; from benchmarks.fv_floor import measure; "
            f"print(json.dumps(measure(Path({str(root)!r}), {key!r}, {gbps!r}, {steps!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
