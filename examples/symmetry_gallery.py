"""High-dimensional data on a three-axis grid: the reduced PDE against gradient descent in R^d.

Each study runs one bundled case twice (docs/symmetry.md): with `symmetry = "rotations"`, the
PDE on the invariants solved by fv; with `symmetry = "none"`, online SGD of m neurons in
R^(1 + d [+ 1]) for several seeds (fresh batches each step, so that the dynamics is the
population's). Both write the same invariant axes, so the snapshots compare cell by cell.

- symmetry_single_index.png: cases/single_index_d40.toml at d = 20 (overrides) and d = 40,
  and cases/single_index_d400.toml. Rows: the risk of fv, of each seed, and the seeds' mean
  +- 2 standard errors; fv's risk minus that mean; the w_par and w_perp marginals at t = 0
  and at the end, fv (lines) against the pooled seeds (steps).
- symmetry_classification.png: cases/isotropic_classification.toml, MMN's isotropic Gaussians
  in d = 40; the invariants are (a, w_norm, b).

It prints, per study, the agreement table (fv's risk, the seeds' mean and standard error, and
the gap in standard errors at every snapshot) and the wall time of each run.

    python examples/symmetry_gallery.py -o docs/images/gallery [--runs DIR] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np

import gflow
from common import CASES, figure, write
from gflow.postprocess.runs import faces, marginal

#: name -> (case, overrides, particles, batch, seeds, label); each full run is one seed of online
#: SGD. At d = 400 m = 1000 neurons stay 3-4 standard errors above the PDE's risk at t = 1-2.5 (a
#: finite-width effect of order d / m, as in Mei, Montanari and Nguyen's bounds); m = 4000 closes it.
STUDIES = {
    "d20": ("single_index_d40", ["data.dim=20", "initial.std=[0.5, 0.22, 0.22]"], 2000, 8192, 4, "d = 20"),
    "d40": ("single_index_d40", [], 2000, 8192, 4, "d = 40"),
    "d400": ("single_index_d400", [], 4000, 4096, 3, "d = 400"),
    "classification": ("isotropic_classification", [], 2000, 8192, 4, "isotropic classes, d = 40"),
}
SINGLE_INDEX = ("d20", "d40", "d400")


#: with --reuse: run directory -> wall seconds from the last summary (runs already there are kept)
REUSE: dict[str, float] | None = None


def timed_run(case: str, out: Path, overrides: list[str], solver: str):
    path = CASES / f"{case}.toml"
    if REUSE is not None and (out / f"{solver}.h5").exists() and str(out) in REUSE:
        return gflow.open_run(out / f"{solver}.h5"), REUSE[str(out)]
    sets = [a for o in overrides for a in ("--set", o)]
    print("$ gflow " + shlex.join(["run", str(path.relative_to(CASES.parent)), "--solver", solver, *sets,
                                   "-o", str(out), "--force"]), flush=True)
    loaded = gflow.load_case(path, overrides, solvers=[solver])
    start = time.perf_counter()
    (r,) = gflow.run(loaded, output=out, force=True, echo=print)
    return r, time.perf_counter() - start


def study(name: str, runs: Path) -> dict:
    case, overrides, m, batch, seeds, label = STUDIES[name]
    reduced, t_reduced = timed_run(case, runs / name / "reduced", overrides, "fv")
    full, walls = [], []
    for seed in range(seeds):
        r, wall = timed_run(case, runs / name / f"full_seed{seed}", [
            *overrides, 'model.symmetry="none"', f"solver.particles={m}", f"solver.batch={batch}",
            f"solver.seed={seed}", f"data.seed={seed}"], "particle")
        full.append(r)
        walls.append(wall)
    risks = np.array([r.risk for r in full])
    mean, se = risks.mean(axis=0), risks.std(axis=0, ddof=1) / np.sqrt(seeds)
    return {"name": name, "label": label, "reduced": reduced, "full": full, "time": reduced.time,
            "R_reduced": reduced.risk, "R_full": risks, "mean": mean, "se": se,
            "wall_reduced": t_reduced, "wall_full": float(np.median(walls)), "walls_full": walls, "m": m, "batch": batch,
            "dim": reduced.case.model.data.dim, "neuron_dim": 1 + reduced.case.model.data.dim + reduced.case.model.bias}


def table(res: dict) -> str:
    lines = [f"**{res['label']}** (fv {res['wall_reduced']:.1f} s; each of {len(res['full'])} seeds of "
             f"m = {res['m']}, batch {res['batch']}: {res['wall_full']:.1f} s)", "",
             "| t | fv | full, mean +- se | gap / se |", "|---|---|---|---|"]
    for t, R, mu, se in zip(res["time"], res["R_reduced"], res["mean"], res["se"]):
        lines.append(f"| {t:.2g} | {R:.5f} | {mu:.5f} +- {se:.5f} | {(R - mu) / se:+.2f} |")
    return "\n".join(lines)


def marginals(run, index: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    f = faces(run)
    return f[axis], marginal(run.snapshot(index).density, f, (axis,))


def risk_panel(ax, res: dict) -> None:
    t = res["time"]
    for R in res["R_full"]:
        ax.plot(t, R, color="0.75", lw=0.8)
    ax.fill_between(t, res["mean"] - 2 * res["se"], res["mean"] + 2 * res["se"], color="C1", alpha=0.35,
                    label=f"GD in R^{res['neuron_dim']}: mean +- 2 se")
    ax.plot(t, res["R_reduced"], color="C0", lw=1.5, label="reduced PDE (fv)")
    ax.set(xlabel="t", ylabel="risk", title=res["label"])
    ax.legend(fontsize="small")


def gap_panel(ax, res: dict) -> None:
    """fv's risk minus the seeds' mean, against +- 2 standard errors of that mean."""
    t = res["time"]
    ax.fill_between(t, -2 * res["se"], 2 * res["se"], color="C1", alpha=0.35, label="+- 2 se of the GD mean")
    for R in res["R_full"]:
        ax.plot(t, R - res["mean"], color="0.75", lw=0.8)
    ax.plot(t, res["R_reduced"] - res["mean"], "C0o-", ms=3, lw=1.2, label="fv - GD mean")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set(xlabel="t", ylabel="risk difference")
    ax.legend(fontsize="small")


def marginal_panel(ax, res: dict, axis: int) -> None:
    reduced, full = res["reduced"], res["full"]
    last = len(res["time"]) - 1
    for index, style in ((0, ":"), (last, "-")):
        edges, values = marginals(reduced, index, axis)
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.plot(centres, values, "C0" + style, lw=1.2, label=f"fv, t = {res['time'][index]:.3g}")
    pooled = np.mean([marginals(r, last, axis)[1] for r in full], axis=0)
    ax.stairs(pooled, edges, color="C1", label=f"GD, t = {res['time'][last]:.3g}")
    ax.set(xlabel=reduced.axes[axis], ylabel="marginal density")
    ax.legend(fontsize="small")


def draw(results: dict, out: Path) -> None:
    fig = figure(13, 12)
    axes = fig.subplots(4, 3)
    for col, name in enumerate(SINGLE_INDEX):
        risk_panel(axes[0, col], results[name])
        gap_panel(axes[1, col], results[name])
        marginal_panel(axes[2, col], results[name], 1)
        marginal_panel(axes[3, col], results[name], 2)
    write(fig, out / "symmetry_single_index.png")
    res = results["classification"]
    fig = figure(13, 6.4)
    axes = fig.subplots(2, 2)
    risk_panel(axes[0, 0], res)
    gap_panel(axes[0, 1], res)
    marginal_panel(axes[1, 0], res, 1)
    marginal_panel(axes[1, 1], res, 2)
    write(fig, out / "symmetry_classification.png")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="docs/images/gallery", help="picture directory")
    p.add_argument("--runs", default="runs/examples/symmetry", help="where the runs go")
    p.add_argument("--only", nargs="*", choices=list(STUDIES), help="run only these studies (no pictures)")
    p.add_argument("--reuse", action="store_true", help="keep the runs of a previous call (redraw only)")
    args = p.parse_args(argv)
    runs, out = Path(args.runs), Path(args.output)
    global REUSE
    if args.reuse:
        REUSE = json.loads((runs / "walls.json").read_text())
    results = {name: study(name, runs) for name in (args.only or STUDIES)}
    walls = {str(runs / name / d): w for name, res in results.items()
             for d, w in [("reduced", res["wall_reduced"]),
                          *((f"full_seed{i}", wall) for i, wall in enumerate(res["walls_full"]))]}
    known = runs / "walls.json"
    if known.exists():           # keep the other studies' walls (a run of --only some)
        walls = {**json.loads(known.read_text()), **walls}
    known.write_text(json.dumps(walls, indent=1) + "\n")
    for res in results.values():
        print(table(res) + "\n")
    summary = {name: {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()
                      if k not in ("reduced", "full")} for name, res in results.items()}
    path = runs / "summary.json"
    if path.exists():
        summary = {**json.loads(path.read_text()), **summary}
    path.write_text(json.dumps(summary, indent=1) + "\n")
    if not args.only:
        draw(results, out)


if __name__ == "__main__":
    main()
