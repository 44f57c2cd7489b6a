"""One fluctuation prediction against the ensemble it replaces (issue 19's docs/fluctuations.md).

- `fluctuation_prediction_s`: `gflow run cases/fluctuation_tanh.toml` (quadrature particles,
  fluctuation = true: the predicted sqrt(m) x sd of the risk at every snapshot, one solve
  and one adjoint sweep per snapshot), wall time of the whole command.
- `fluctuation_ensemble_s`: `gflow ensemble` of the same case with random neurons, one width
  (m = 100) and ENSEMBLE_SEEDS seeds on the local Dask cluster (2 workers): what measuring that
  sd to about 1 / sqrt(2 S) = 7% relative costs. It also runs the quadrature reference.
- `fluctuation_cost_advantage` = ensemble / prediction; `*_peak_rss_mib` the largest process
  of each command's own process (the ensemble's Dask workers not counted: each holds one run).
Each command runs in a fresh process, so both include the interpreter's start (about 1 s).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    seeds = 20 if quick else ENSEMBLE_SEEDS
    with tempfile.TemporaryDirectory() as tmp:
        predict, predict_mib = _run(["run", case, "-o", f"{tmp}/predict", "--force", "--no-progress"], root, tmp)
        ensemble, ensemble_mib = _run(["ensemble", case, "--widths", str(ENSEMBLE_WIDTH), "--seeds", str(seeds),
                                       "--set", 'solver.init="random"', "--set", "solver.fluctuation=false",
                                       "-o", f"{tmp}/ensemble", "--workers", "2", "--force"], root, tmp)
    out = {"fluctuation_prediction_s": predict, "fluctuation_ensemble_s": ensemble,
           "fluctuation_ensemble_seeds": seeds, "fluctuation_prediction_peak_rss_mib": predict_mib,
           "fluctuation_ensemble_peak_rss_mib": ensemble_mib}
    if not quick:
        out["fluctuation_cost_advantage"] = ensemble / predict
    return out
