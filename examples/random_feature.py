"""Random features against the two-layer network: the same teacher, w frozen or trained.

Runs cases/quickstart.toml (all of u = (a, w) trained) and cases/random_feature.toml (only a,
`train = ["a"]`) with the fv solver, and compares them: the final risks, and how far each
density's w-marginal moved from its start (L1 norm). In the random-feature model V is linear
in a with a velocity -g(w) that depends on w alone, so each w-slice of the density is translated
along a and the w-marginal never changes; the risk can only fall to the best fit with the initial
features, while the two-layer density moves its mass towards the teacher's w
(Rahimi, Recht, NeurIPS 2008; Chizat, Bach, NeurIPS 2018; Mei, Montanari, Nguyen, PNAS 2018).

    python examples/random_feature.py -o random_feature.png [--runs DIR] [--set KEY=VALUE]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import CASES, figure, parser, run, write
from gflow.snapshots import open_run
from gflow.postprocess.plot import curve_panel, density_panel
from gflow.postprocess.runs import faces, marginal

MODELS = {"two-layer": "quickstart", "random features": "random_feature"}


def marginal_change(r, axis: int) -> float:
    """L1 norm of the change of the marginal on `axis` from the first to the last snapshot."""
    f = faces(r)
    change = marginal(r.density(len(r.time) - 1), f, (axis,)) - marginal(r.density(0), f, (axis,))
    return float(np.sum(np.abs(change) * np.diff(f[axis])))


def study(out: Path, overrides=()) -> dict:
    """Per model: {"run", "risk" (final), "w_moved" (L1 of the w-marginal's change)}."""
    result = {}
    for label, name in MODELS.items():
        r = open_run(run(CASES / f"{name}.toml", out / name, overrides))
        result[label] = {"run": r, "risk": float(r.risk[-1]), "w_moved": marginal_change(r, 1),
                         "a_moved": marginal_change(r, 0)}
    return result


def report(result: dict) -> None:
    t = result["two-layer"]["run"].time[-1]
    print(f"\nat t = {t:g}:")
    for label, r in result.items():
        print(f"  {label:>16}: risk {r['risk']:.3g}, L1 change of the w-marginal {r['w_moved']:.3g}, "
              f"of the a-marginal {r['a_moved']:.3g}")
    ratio = result["random features"]["risk"] / result["two-layer"]["risk"]
    print(f"random-feature risk / two-layer risk = {ratio:.3g}")


def draw(result: dict, path) -> None:
    fig = figure(13.0, 3.4)
    axes = fig.subplots(1, 4)
    runs = [r["run"] for r in result.values()]
    curve_panel(axes[0], runs, "risk", list(result))
    for ax, (label, r) in zip(axes[1:3], result.items()):
        density_panel(ax, r["run"], r["run"].snapshot(len(r["run"].time) - 1))
        ax.set_title(f"{label}, t = {r['run'].time[-1]:g}")
    ax = axes[3]
    for k, (label, r) in enumerate(result.items()):
        f = faces(r["run"])
        w = 0.5 * (f[1][1:] + f[1][:-1])
        ax.plot(w, marginal(r["run"].density(len(r["run"].time) - 1), f, (1,)), color=f"C{k}", label=f"{label}, end")
    ax.plot(w, marginal(runs[0].density(0), faces(runs[0]), (1,)), "k:", label="both, t = 0")
    ax.set(xlabel="w", ylabel="w-marginal density", title="the w-marginal")
    ax.legend(fontsize="small")
    write(fig, path)


def main(argv=None) -> int:
    args = parser(__doc__, "random_feature").parse_args(argv)
    result = study(Path(args.runs), args.set)
    report(result)
    draw(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
