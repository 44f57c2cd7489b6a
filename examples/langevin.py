"""Mean-field Langevin dynamics: convergence to the Gibbs fixed point at two temperatures.

Runs cases/langevin.toml (fv) at each temperature of its [sweep] table. At every snapshot it
measures the distance of the density from the Gibbs measure of its own potential,

    residual(t) = int |rho_t - exp(-V[rho_t]/T) / Z| du,    Z = int exp(-V[rho_t]/T) du,

with V[rho] from the fv solver's operator (`problem.grid_operator().potential`) at the cell
centres and both integrals over the case box. A stationary point of the mean-field Langevin
equation is exactly a zero of it (Mei, Montanari, Nguyen, PNAS 2018; Hu, Ren, Siska, Szpruch,
AIHP 2021); on a grid it falls to the level of the discretisation error. Prints the residual
at the start and the end and the standard deviations of the final a- and w-marginals.

    python examples/langevin.py -o langevin.png [--runs DIR] [--set KEY=VALUE] [--vary ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import CASES, figure, run_study, sweep, write
from gflow.problem import problem_from_text
from gflow.postprocess.plot import density_panel
from gflow.postprocess.runs import faces, marginal

CASE = CASES / "langevin.toml"


def gibbs(problem, rho: np.ndarray) -> np.ndarray:
    """exp(-V[rho]/T)/Z on the case grid (V shifted by its minimum: the same measure, no overflow)."""
    V = problem.grid_operator().potential(rho)
    g = np.exp(-(V - V.min()) / problem.temperature)
    return g / (g.sum() * problem.grid.cell_volume)


def spread(r, index: int, axis: int) -> float:
    """Standard deviation of the marginal on `axis`."""
    f = faces(r)
    centres = 0.5 * (f[axis][1:] + f[axis][:-1])
    mass = marginal(r.density(index), f, (axis,)) * np.diff(f[axis])
    mean = np.sum(mass * centres)
    return float(np.sqrt(np.sum(mass * (centres - mean) ** 2)))


def study(out: Path, overrides=(), vary=()) -> dict:
    """Per temperature: {"run", "residual" (per snapshot), "std_a", "std_w" (final), "gibbs" (final)}."""
    result = {}
    for r in sweep(CASE, out, overrides, vary, solver="fv"):
        run = r.read()
        problem = problem_from_text(run.case_text)
        dv = problem.grid.cell_volume
        residual = [float(np.sum(np.abs(run.density(i) - gibbs(problem, run.density(i)))) * dv)
                    for i in range(len(run.time))]
        last = len(run.time) - 1
        result[r.values["regularization.temperature"]] = {
            "run": run, "residual": np.array(residual), "gibbs": gibbs(problem, run.density(last)),
            "std_a": spread(run, last, 0), "std_w": spread(run, last, 1)}
    return result


def report(result: dict) -> None:
    print("\nL1 distance from the Gibbs fixed point exp(-V[rho]/T)/Z, and the width of the final density:")
    for T, r in result.items():
        res = r["residual"]
        print(f"  T = {T:g}: residual {res[0]:.3g} at t = 0 -> {res[-1]:.3g} at t = {r['run'].time[-1]:g}; "
              f"std of a {r['std_a']:.3g}, of w {r['std_w']:.3g}")


def draw(result: dict, path) -> None:
    fig = figure(13.0, 3.4)
    axes = fig.subplots(1, 4)
    for ax, (T, r) in zip(axes[:2], result.items()):
        density_panel(ax, r["run"], r["run"].snapshot(len(r["run"].time) - 1))
        ax.set_title(f"T = {T:g}, t = {r['run'].time[-1]:g}")
        ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5))
    ax = axes[2]
    for k, (T, r) in enumerate(result.items()):
        f = faces(r["run"])
        a = 0.5 * (f[0][1:] + f[0][:-1])
        ax.plot(a, marginal(r["run"].density(len(r["run"].time) - 1), f, (0,)), color=f"C{k}", label=f"rho, T = {T:g}")
        ax.plot(a, marginal(r["gibbs"], f, (0,)), "k:", lw=1.5, label="exp(-V[rho]/T)/Z" if k == 0 else None)
    ax.set(xlabel="a", ylabel="a-marginal density", title="fixed point: rho against its Gibbs measure")
    ax.legend(fontsize="small")
    ax = axes[3]
    for k, (T, r) in enumerate(result.items()):
        ax.plot(r["run"].time, r["residual"], marker=".", color=f"C{k}", label=f"T = {T:g}")
    ax.set(yscale="log", xlabel="t", ylabel="L1(rho, exp(-V[rho]/T)/Z)", title="Gibbs residual")
    ax.legend(fontsize="small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "langevin", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
