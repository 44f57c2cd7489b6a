"""Finite width from the PDE: predicted against measured error bars for m = 25..400 neurons.

For cases/fluctuation_tanh.toml and cases/fluctuation_relu.toml, one `gflow ensemble` each:
100 gradient-descent runs of m random neurons for every width, against the case's quadrature
reference, which predicts sqrt(m) sd of the risk by the discrete adjoint (docs/fluctuations.md).
Prints each case's table (predicted against measured sqrt(m) sd over time, m x bias) and the
wall time of the prediction against that of the ensemble, and draws one picture per case:

    python examples/fluctuation_gallery.py -o docs/images/gallery --runs runs/examples/fluctuation
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import CASES, figure, gflow, write
from gflow import open_run
from gflow.app.ensemble import run_ensemble

WIDTHS = (25, 50, 100, 200, 400)
SEEDS = 100
CASE_NAMES = ("fluctuation_tanh", "fluctuation_relu")
RANDOM = ['solver.init="random"', "solver.fluctuation=false"]


def study(name: str, runs: Path, seeds: int) -> dict:
    case = CASES / f"{name}.toml"
    start = time.perf_counter()
    gflow("run", case, "-o", runs / name / "prediction", "--force")
    prediction = time.perf_counter() - start
    sets = [item for s in RANDOM for item in ("--set", s)]
    print("$ gflow ensemble " + " ".join(map(str, [case, "--widths", ",".join(map(str, WIDTHS)), "--seeds", seeds,
                                                    *sets, "-o", runs / name / "ensemble"])), flush=True)
    start = time.perf_counter()
    rows = run_ensemble(case, widths=list(WIDTHS), seeds=seeds, overrides=RANDOM, out_dir=runs / name / "ensemble",
                        echo=lambda line: None)
    ensemble = time.perf_counter() - start
    return {"name": name, "rows": rows, "prediction_s": prediction, "ensemble_s": ensemble,
            "reference": open_run(runs / name / "ensemble" / "reference" / "particle.h5"),
            "examples": [open_run(runs / name / "ensemble" / "runs" / f"solver.particles={WIDTHS[0]}__solver.seed={s}"
                                  / "particle.h5") for s in range(min(seeds, 30))]}


def report(result: dict) -> None:
    rows = result["rows"]
    print(f"\n{result['name']}: predicted sqrt(m) sd against the ensembles' ({rows[0]['runs']} runs each; +- standard error)")
    times = sorted({r["t"] for r in rows})
    print(f"{'t':>5} {'R(t)':>8} {'predicted':>9} " + " ".join(f"{'m = ' + str(m):>15}" for m in WIDTHS))
    for t in times:
        at = {r["width"]: r for r in rows if r["t"] == t}
        first = at[WIDTHS[0]]
        print(f"{t:5.2g} {first['reference_risk']:8.4f} {first['predicted_sqrt_m_sd']:9.4f} "
              + " ".join(f"{at[m]['sqrt_m_sd']:7.4f} +- {at[m]['sqrt_m_sd_se']:.4f}" for m in WIDTHS))
    worst = max(abs(r["sqrt_m_sd"] - r["predicted_sqrt_m_sd"]) / r["sqrt_m_sd_se"] for r in rows)
    print(f"largest |measured - predicted| / standard error: {worst:.2f}")
    last = max(times)
    print("m x bias at t = " + f"{last:g}: " + ", ".join(
        f"m = {r['width']}: {r['m_bias']:.3f} +- {r['m_bias_se']:.3f}" for r in rows if r["t"] == last))
    print(f"wall: one prediction {result['prediction_s']:.1f} s, the ensemble of {len(WIDTHS) * rows[0]['runs']} runs "
          f"{result['ensemble_s']:.1f} s (ratio {result['ensemble_s'] / result['prediction_s']:.0f})")


def draw(result: dict, path: Path) -> None:
    rows, ref = result["rows"], result["reference"]
    fig = figure(11.0, 4.0)
    left, right = fig.subplots(1, 2)
    colours = [f"C{k}" for k in range(len(WIDTHS))]
    for m, colour in zip(WIDTHS, colours):
        block = [r for r in rows if r["width"] == m]
        t = np.array([r["t"] for r in block])
        left.errorbar(t + 0.015 * (WIDTHS.index(m) - 2), [r["sqrt_m_sd"] for r in block],
                      yerr=[2 * r["sqrt_m_sd_se"] for r in block], fmt="o", ms=3, color=colour,
                      label=f"m = {m}, {block[0]['runs']} runs")
    left.plot(ref.time, ref.dataset("risk_fluctuation"), "k-", lw=1.5, label="predicted from one solve")
    left.set(xlabel="t", ylabel="sqrt(m) x sd of the risk", title=f"{result['name']}: spread (bars: 2 s.e.)")
    left.set_ylim(bottom=0)
    left.legend(fontsize=7)
    m = WIDTHS[0]
    for run in result["examples"]:
        right.plot(run.time, run.risk, color="C0", alpha=0.25, lw=0.8)
    band = 2 * ref.dataset("risk_fluctuation") / np.sqrt(m)
    right.fill_between(ref.time, ref.risk - band, ref.risk + band, color="grey", alpha=0.3,
                       label=f"predicted +- 2 sd, m = {m}")
    right.plot(ref.time, ref.risk, "k-", lw=1.5, label="mean field (quadrature)")
    right.set(xlabel="t", ylabel="risk", title=f"{len(result['examples'])} runs of m = {m} random neurons")
    right.legend(fontsize=7)
    write(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="docs/images/gallery", help="the pictures' folder (default: %(default)s)")
    p.add_argument("--runs", default="runs/examples/fluctuation", help="where the runs go (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=SEEDS, help="runs per width (default: %(default)s)")
    args = p.parse_args(argv)
    for name in CASE_NAMES:
        result = study(name, Path(args.runs), args.seeds)
        report(result)
        draw(result, Path(args.output) / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
