"""SGD noise: the fluctuation of the minibatch risk around the full-batch curve against the batch size.

Runs cases/sgd_noise.toml: the PDE (fv) once, then the particle method for every (seed, batch)
of the case's [sweep] table, batch 0 being full-batch gradient descent. A run and the full-batch
run of the same seed start from the same particles (the seed's streams for the initial draw and
for the minibatches are independent), so their risk difference is the SGD noise alone. Prints
the RMS over the snapshots of R_batch(t) - R_full(t), mean and spread over seeds, for each batch
size, and the slope of its logarithm against log(batch): each step's gradient has variance
~ 1/batch, so the deviation falls like batch^-1/2.

    python examples/sgd_noise.py -o sgd_noise.png [--runs DIR] [--set KEY=VALUE] [--vary ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import CASES, figure, group, run, run_study, slope, sweep, write
from gflow.snapshots import open_run

CASE = CASES / "sgd_noise.toml"


def study(out: Path, overrides=(), vary=()) -> dict:
    """{"batch": sizes > 0, "rms": (mean, std over seeds), "slope", "pde": Run, "runs": {batch: Run} of seed 0}."""
    pde = open_run(run(CASE, out / "pde", overrides, solver="fv"))
    deviations: dict[int, list[float]] = {}
    example = {}
    for seed, runs in group(sweep(CASE, out, overrides, vary), "solver.seed").items():
        risks = {r.values["solver.batch"]: r.read() for r in runs}
        full = risks.pop(0)
        for batch, sgd in risks.items():
            deviations.setdefault(batch, []).append(float(np.sqrt(np.mean((sgd.risk - full.risk)[1:] ** 2))))
        if not example:
            example = {0: full, **risks}
    batch = np.array(list(deviations), float)
    rms = np.array([np.mean(v) for v in deviations.values()]), np.array([np.std(v) for v in deviations.values()])
    return {"batch": batch, "rms": rms, "slope": slope(batch, rms[0]), "pde": pde, "runs": example,
            "seeds": len(next(iter(deviations.values())))}


def report(result: dict) -> None:
    print(f"\nRMS over t of R_batch(t) - R_full(t), mean +- std over {result['seeds']} seeds:")
    for b, mean, std in zip(result["batch"], *result["rms"]):
        print(f"  batch {int(b):>5}: {mean:.3g} +- {std:.2g}")
    print(f"fitted rate: batch^{result['slope']:.2f} (theory: batch^-0.5)")


def draw(result: dict, path) -> None:
    fig = figure(10.0, 3.8)
    left, right = fig.subplots(1, 2)
    runs = result["runs"]
    shown = sorted(runs)[1::2] if len(runs) > 4 else sorted(runs)[1:]
    left.plot(runs[0].time, runs[0].risk, color="C0", lw=2.5, label="full-batch GD")
    for k, batch in enumerate(shown):
        left.plot(runs[batch].time, runs[batch].risk, color=f"C{k + 1}", lw=1, label=f"SGD, batch {batch}")
    left.plot(result["pde"].time, result["pde"].risk, "k--", lw=1, label="PDE (fv)")
    left.set(yscale="log", xlabel="t = learning rate x steps", ylabel="risk", title="risk curves (seed 0)")
    left.legend(fontsize="small")
    b, (mean, std) = result["batch"], result["rms"]
    right.errorbar(b, mean, yerr=std, fmt="o", capsize=3, label=f"seed mean +- std (slope {result['slope']:.2f})")
    right.plot(b, mean[0] * (b / b[0]) ** -0.5, ":", color="0.4", label="batch^-1/2")
    right.set(xscale="log", yscale="log", xlabel="batch size", ylabel="RMS_t (R_batch - R_full)",
              title="SGD fluctuation around the full-batch curve")
    right.legend(fontsize="small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "sgd_noise", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
