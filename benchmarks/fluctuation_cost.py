"""One fluctuation prediction against the ensemble it replaces (issue 19's docs/fluctuations.md).

- `fluctuation_prediction_s`: `gflow run cases/fluctuation_tanh.toml` (quadrature particles,
  fluctuation = true: the predicted sqrt(m) x sd of the risk at every snapshot, one solve
  and one adjoint sweep per snapshot), wall time of the whole command.
- `fluctuation_ensemble_s`: `gflow ensemble` of the same case with random neurons, one width
  (m = 100) and ENSEMBLE_SEEDS seeds on the local Dask cluster (2 workers): what measuring that
  sd to about 1 / sqrt(2 S) = 7% relative costs. It also runs the quadrature reference.
- `fluctuation_cost_advantage` = ensemble / prediction; `*_peak_rss_mib` the largest process
  of each command's own process (the ensemble's Dask workers not counted: each holds one run).
Each command runs in a fresh process, so both include the interpreter's start (about 1 s); each
is run once untimed (numba's compilation into its cache), then timed as the median of MIN_REPEATS runs.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import MIN_REPEATS

ENSEMBLE_SEEDS = 100
ENSEMBLE_WIDTH = 100


#: runs the command line in-process, then writes its peak memory (`timing.peak_rss_mib`) to
#: the file named by argv[1]
_WRAPPER = """
import runpy, sys
from benchmarks.timing import peak_rss_mib
path, sys.argv = sys.argv[1], ["gflow", *sys.argv[2:]]
try:
    runpy.run_module("gflow", run_name="__main__")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
open(path, "w").write(str(peak_rss_mib()))
sys.exit(code)
"""


def _run(args: list[str], cwd, tmp) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `gflow ARGS` in a fresh process."""
    peak = f"{tmp}/peak_{len(list(Path(tmp).iterdir()))}"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, peak, *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"gflow {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, float(Path(peak).read_text())


def measure(root, quick: bool) -> dict:
    case = str(root / "cases" / "fluctuation_tanh.toml")
    seeds = 8 if quick else ENSEMBLE_SEEDS     # --quick: the costs only, no ratio (its 3 minutes)
    with tempfile.TemporaryDirectory() as tmp:
        predict_args = ["run", case, "-o", f"{tmp}/predict", "--force", "--no-progress"]
        ensemble_args = lambda s: ["ensemble", case, "--widths", str(ENSEMBLE_WIDTH), "--seeds", str(s),  # noqa: E731
                                   "--set", 'solver.init="random"', "--set", "solver.fluctuation=false",
                                   "-o", f"{tmp}/ensemble", "--workers", "2", "--force"]
        # warm-up: numba compiles the kernels into its on-disk cache once (a fresh install
        # spent 8 s of a 10 s prediction compiling), so the timed runs compare the work itself
        _run(predict_args, root, tmp)
        _run(ensemble_args(2), root, tmp)
        predict = [_run(predict_args, root, tmp) for _ in range(MIN_REPEATS)]
        ensemble = [_run(ensemble_args(seeds), root, tmp) for _ in range(MIN_REPEATS)]
    walls = {name: float(np.median([w for w, _ in runs])) for name, runs in (("p", predict), ("e", ensemble))}
    out = {"fluctuation_prediction_s": walls["p"], "fluctuation_ensemble_s": walls["e"],
           "fluctuation_ensemble_seeds": seeds,
           "fluctuation_prediction_peak_rss_mib": max(m for _, m in predict),
           "fluctuation_ensemble_peak_rss_mib": max(m for _, m in ensemble)}
    if not quick:
        out["fluctuation_cost_advantage"] = walls["e"] / walls["p"]
    return out
