"""Particles converge to the PDE: risk error and W1 of the marginals against m, fitted rates.

Runs cases/particles_to_pde.toml: the grid solution (fv) once, then the particle method for
every (m, seed) of the case's [sweep] table. At the final time it measures, against the grid
solution, the risk error |R_m - R| and the W1 distances of the a- and w-marginals (both
densities on the case grid: the particles through their cloud-in-cell `density`). Prints the
seed mean and spread of each error for each m and the least-squares slope of log(mean error)
against log m; the theory (f_m - f = O(m^-1/2), Mei, Montanari, Nguyen, PNAS 2018)
gives -1/2 for all three.

    python examples/particles_to_pde.py -o particles_to_pde.png [--runs DIR] [--set ...] [--vary ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import CASES, figure, group, marginal_w1, run, run_study, slope, sweep, write
from gflow.snapshots import open_run

CASE = CASES / "particles_to_pde.toml"
ERRORS = {"risk": "|R_m - R|", "W1_a": "W1 of the a-marginal", "W1_w": "W1 of the w-marginal"}


def errors(particles, pde) -> dict:
    """The final-time errors of one particle run against the grid run, and |R_m - R| in time."""
    i, j = len(particles.time) - 1, len(pde.time) - 1
    return {"risk": abs(particles.risk[i] - pde.risk[j]),
            "W1_a": marginal_w1(particles, i, pde, j, 0), "W1_w": marginal_w1(particles, i, pde, j, 1),
            "risk_in_time": np.abs(particles.risk - pde.risk)}


def study(out: Path, overrides=(), vary=()) -> dict:
    """{"m": particle counts, "time", and per error name: (mean, std over seeds) arrays, "slopes"}."""
    pde = open_run(run(CASE, out / "pde", overrides, solver="fv"))
    by_m = group(sweep(CASE, out, overrides, vary), "solver.particles")
    measured = {m: [errors(r.read(), pde) for r in runs] for m, runs in by_m.items()}
    result = {"m": np.array(list(measured), float), "time": pde.time, "seeds": len(next(iter(by_m.values())))}
    for name in [*ERRORS, "risk_in_time"]:
        values = [np.array([e[name] for e in seeds]) for seeds in measured.values()]
        result[name] = (np.array([v.mean(axis=0) for v in values]), np.array([v.std(axis=0) for v in values]))
    result["slopes"] = {name: slope(result["m"], result[name][0]) for name in ERRORS}
    return result


def report(result: dict) -> None:
    print(f"\nerrors against the grid solution at t = {result['time'][-1]:g}, "
          f"mean +- std over {result['seeds']} seeds:")
    print(f"{'m':>7}" + "".join(f"  {title:>24}" for title in ERRORS.values()))
    for k, m in enumerate(result["m"]):
        print(f"{int(m):>7}" + "".join(f"  {result[n][0][k]:>12.3g} +- {result[n][1][k]:<9.2g}" for n in ERRORS))
    print("fitted rates: " + ", ".join(f"{t} ~ m^{result['slopes'][n]:.2f}" for n, t in ERRORS.items())
          + " (theory: m^-0.5)")


def draw(result: dict, path) -> None:
    fig = figure(10.0, 3.8)
    left, right = fig.subplots(1, 2)
    m = result["m"]
    for k, (name, title) in enumerate(ERRORS.items()):
        mean, std = result[name]
        left.errorbar(m, mean, yerr=std, fmt="o", color=f"C{k}", capsize=3,
                      label=f"{title} (slope {result['slopes'][name]:.2f})")
        fit = np.polyfit(np.log(m), np.log(mean), 1)
        left.plot(m, np.exp(np.polyval(fit, np.log(m))), "--", color=f"C{k}", lw=1)
    guide = result["risk"][0][0] * (m / m[0]) ** -0.5
    left.plot(m, guide, ":", color="0.4", label="m^-1/2")
    left.set(xscale="log", yscale="log", xlabel="particles m",
             ylabel=f"error at t = {result['time'][-1]:g}", title="particles against the PDE (seed mean +- std)")
    left.legend(fontsize="small")
    mean, std = result["risk_in_time"]
    for k, mk in enumerate(m):
        right.plot(result["time"][1:], mean[k][1:], marker=".", color=f"C{k}", label=f"m = {int(mk)}")
    right.set(yscale="log", xlabel="t", ylabel="|R_m(t) - R(t)|, seed mean", title="risk error in time")
    right.legend(fontsize="small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "particles_to_pde", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
