"""Mean-field against conventional scaling: particle risk curves against the PDE as m grows.

Runs cases/scaling.toml: the PDE (fv) once, then gradient descent on m neurons for every
(scaling, m) of the case's [sweep] table. Prints, for each m, the largest gap
max_t |R_m(t) - R_PDE(t)| of both scalings, how far the neurons moved, and the fitted rate of
the mean-field gaps, and draws the risk curves and the gaps. With the 1/m (mean-field) output
the gap falls like m^-1/2 (Mei, Montanari, Nguyen, PNAS 2018) and the neurons move by O(1)
whatever m; with the plain sum the gap does not fall, the neurons of the runs that finish
hardly move (the lazy regime), and the runs whose step is unstable stop (exit status 1,
"the risk grew ... beyond 1e+06 times its start", or a non-finite risk).

    python examples/scaling.py -o scaling.png [--runs DIR] [--set KEY=VALUE] [--vary KEY=V1,V2]
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import CASES, figure, group, run, run_study, slope, sweep, write
from gflow.snapshots import Run, open_run

CASE = CASES / "scaling.toml"
TITLES = {"mean_field": "mean-field f = (1/m) sum", "conventional": "conventional f = sum"}


@dataclass
class Curve:
    run: Run
    gap: float                   # max over the written snapshots of |R_m - R_PDE|
    stopped: float | None        # the time the run stopped at (diverged), None if it finished
    moved: float                 # mean distance |u_j(end) - u_j(0)| the neurons moved


def study(out: Path, overrides=(), vary=()) -> dict:
    """Run the study: {"pde": Run, "curves": {scaling: {m: Curve}}, "slope": mean-field rate}."""
    pde = open_run(run(CASE, out / "pde", overrides, solver="fv"))
    curves = {}
    for scaling, runs in group(sweep(CASE, out, overrides, vary), "solver.scaling").items():
        curves[scaling] = {}
        for r in runs:
            particles = r.read()
            n = len(particles.time)
            # a run stops at a snapshot time: the one after its last written snapshot
            stopped = None if r.finished else float(pde.time[min(n, len(pde.time) - 1)])
            gap = float(np.max(np.abs(particles.risk - pde.risk[:n])))
            moved = float(np.mean(np.linalg.norm(particles.positions(n - 1) - particles.positions(0), axis=1)))
            curves[scaling][r.values["solver.particles"]] = Curve(particles, gap, stopped, moved)
    mean_field = curves["mean_field"]
    return {"pde": pde, "curves": curves, "slope": slope(list(mean_field), [c.gap for c in mean_field.values()])}


def report(result: dict) -> None:
    print("\nlargest risk gap max_t |R_m(t) - R_PDE(t)| of gradient descent on m neurons,"
          " and the mean distance the neurons moved:")
    print(f"{'m':>7}  {'mean-field 1/m':>15}  {'moved':>6}  {'plain sum':>28}  {'moved':>6}")
    conventional = result["curves"].get("conventional", {})
    for m, curve in result["curves"]["mean_field"].items():
        other = conventional.get(m)
        if other is None:
            text, moved = "-", "-"
        elif other.stopped is None:
            text, moved = f"{other.gap:.3g}", f"{other.moved:.2g}"
        else:
            text, moved = f"diverged (stopped at t = {other.stopped:.3g})", "-"
        print(f"{m:>7}  {curve.gap:>15.3g}  {curve.moved:>6.2g}  {text:>28}  {moved:>6}")
    print(f"mean-field gap ~ m^{result['slope']:.2f} (theory: m^-0.5)")


def draw(result: dict, path) -> None:
    fig = figure(12.0, 3.6)
    axes = fig.subplots(1, 3)
    pde = result["pde"]
    for ax, (scaling, title) in zip(axes, TITLES.items()):
        for k, (m, curve) in enumerate(result["curves"].get(scaling, {}).items()):
            diverged = curve.stopped is not None
            ax.plot(curve.run.time, curve.run.risk, color=f"C{k}", label=f"m = {m}" + (" (diverged)" * diverged))
            if diverged:
                ax.plot(curve.run.time[-1], curve.run.risk[-1], "x", color=f"C{k}", ms=8)
        ax.plot(pde.time, pde.risk, "k--", lw=1.5, label="PDE (fv)")
        ax.set(yscale="log", xlabel="t = learning rate x steps", ylabel="risk", title=title)
        ax.legend(fontsize="small")
    ax = axes[2]
    for k, (scaling, style) in enumerate([("mean_field", "o-"), ("conventional", "s:")]):
        finished = {m: c.gap for m, c in result["curves"].get(scaling, {}).items() if c.stopped is None}
        label = f"mean-field (slope {result['slope']:.2f})" if k == 0 else "conventional (runs that finished)"
        ax.plot(list(finished), list(finished.values()), style, color=f"C{k}", label=label)
    m = np.array(list(result["curves"]["mean_field"]), float)
    first = result["curves"]["mean_field"][int(m[0])].gap
    ax.plot(m, first * (m / m[0]) ** -0.5, color="0.5", ls=":", label="m^-1/2")
    ax.set(xscale="log", yscale="log", xlabel="neurons m", ylabel="max_t |R_m - R_PDE|", title="gap to the PDE")
    ax.legend(fontsize="small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "scaling", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
