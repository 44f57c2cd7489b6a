"""The mean-field ResNet's gallery: the five bundled `resnet` cases, run, measured and drawn.

The flow-based model of E, Ma, Wu (2019): z_0 = x, z_{l+1} = z_l + (1/L) E_{rho_l}[a sigma(w.z_l + b)],
f(x) = 1^T z_L, one Wasserstein gradient flow per layer density rho_l (docs/gallery.md,
sections 7-11). Each case runs through the Python API (`gflow.load_case`, `gflow.run`; the
equivalent `gflow run` command is printed first as `$ gflow ...`), and each picture is drawn
from the run files (`gflow.open_run`) and the case's model (`gflow.problem.build_problem`):

- resnet_monotone.png: cases/resnet_monotone.toml (f* = 2 x, L = 8): risk curves of fv and
  particles, the learned f, and the a- and w-marginals of every layer (depth against a or w)
  at the start and the end.
- resnet_random_feature.png: cases/resnet_random_feature.toml (train = ["a"]) against the
  fully trained model: the w-marginals never move, the risk stops higher.
- resnet_nonmonotone.png: cases/resnet_nonmonotone.toml (f* = x^2): a 1-D flow map is
  increasing, so the risk stays above the isotonic regression's (computed here on the data
  nodes with their weights); a long particle run (t = 200) shows the plateau.
- resnet_2d_state.png: cases/resnet_2d_state.toml (d = 2, particles): the fit of
  sin(3 x1) + x2, which folds along x1 where no 1-D flow could.
- resnet_haber_ruthotto.png: cases/resnet_haber_ruthotto.toml, the three W of its [sweep]
  table: a ring of inputs through 20 layers z_{j+1} = z_j + 0.1 tanh(W z_j), at t = 0 and after
  training.

    python examples/resnet_gallery.py -o docs/images/gallery [--runs DIR] [--set KEY=VALUE]
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
from scipy.optimize import isotonic_regression

import gflow
from common import CASES, figure, write
from gflow.app.sweep import expand, parse_vary, sweep_axes
from gflow.models.resnet_depth import forward
from gflow.problem import build_problem

#: the long particle run of the non-monotone case: the plateau at t = 200 (lr 0.2 gives the
#: lr 0.05 curve to 5e-5 in risk)
LONG = ["time.end=200", "time.snapshots=21", "solver.lr=0.2", "grid.bounds=[[-12,12],[-12,12],[-12,12]]"]
#: the inputs drawn through depth in the Haber-Ruthotto picture
RING = 24


# ----------------------------------------------------------------------------- running
def run_case(name: str, out: Path, overrides=(), solvers=("fv", "particle")) -> dict:
    """Run each solver of cases/<name>.toml into `out`; {kind: (Run, wall seconds)}."""
    path = CASES / f"{name}.toml"
    runs = {}
    for kind in solvers:
        sets = [a for o in overrides for a in ("--set", o)]
        print("$ gflow " + shlex.join(["run", str(path.relative_to(CASES.parent)), "--solver", kind,
                                       *sets, "-o", str(out), "--force"]), flush=True)
        case = gflow.load_case(path, list(overrides), solvers=[kind])
        start = time.perf_counter()
        (r,) = gflow.run(case, output=out, force=True, echo=print)
        runs[kind] = (r, time.perf_counter() - start)
    return runs


def study(out: Path, overrides=()) -> dict:
    """Every run of the gallery, and the numbers measured on them."""
    overrides = list(overrides)
    res = {"monotone": run_case("resnet_monotone", out / "resnet_monotone", overrides),
           "random_feature": run_case("resnet_random_feature", out / "resnet_random_feature", overrides),
           "nonmonotone": run_case("resnet_nonmonotone", out / "resnet_nonmonotone", overrides),
           "long": run_case("resnet_nonmonotone", out / "resnet_nonmonotone_long", [*LONG, *overrides],
                            ("particle",)),
           "2d": run_case("resnet_2d_state", out / "resnet_2d_state", overrides, ("particle",))}
    hr_case = CASES / "resnet_haber_ruthotto.toml"
    res["haber_ruthotto"] = {}
    # the case's own [sweep] table: gflow sweep's directory names
    for combo in expand(sweep_axes(gflow.load_case(hr_case, overrides), parse_vary([]))):
        points = dict(combo.assignments)["initial.points"]
        W = np.array([points[0][2:], points[1][2:]])
        runs = run_case("resnet_haber_ruthotto", out / "resnet_haber_ruthotto" / combo.name,
                        [*overrides, *combo.overrides], ("particle",))
        res["haber_ruthotto"][str(W.tolist())] = {"W": W, **runs}
    measure(res)
    return res


# ----------------------------------------------------------------------------- measuring
def model_of(r):
    return build_problem(r.case).model


def isotonic_bound(model) -> tuple[float, np.ndarray, np.ndarray]:
    """The least risk of an increasing f on the data nodes (d = 1): R_iso, the nodes, the fit."""
    x, p, y = model.x[:, 0], model.p, model.y
    order = np.argsort(x)
    fit = isotonic_regression(y[order], weights=p[order]).x
    return 0.5 * float(p[order] @ (fit - y[order]) ** 2), x[order], fit


def rowwise_bound(model) -> float:
    """The least risk of an f increasing in x1 on every row x2 = const of the tensor data rule."""
    x, p, y = model.x, model.p, model.y
    total = 0.0
    for x2 in np.unique(x[:, 1]):
        row = np.flatnonzero(x[:, 1] == x2)
        row = row[np.argsort(x[row, 0])]
        fit = isotonic_regression(y[row], weights=p[row]).x
        total += 0.5 * float(p[row] @ (fit - y[row]) ** 2)
    return total


def grid_states(r, index: int, x: np.ndarray) -> np.ndarray:
    """z_0..z_L at the inputs x (N, 1) of an fv run's snapshot, from the grid's own effective
    neurons (one per (w, b) cell, amplitude int a rho_l da dw db), shape (L + 1, N, 1)."""
    problem = build_problem(r.case)
    op = problem.model.grid_operator(problem.grid)
    z, _ = forward(op.layers(r.snapshot(index).density), x, problem.model.sigma, 1.0 / problem.layers)
    return np.stack(z)


def particle_states(r, index: int, x: np.ndarray) -> np.ndarray:
    s = r.snapshot(index)
    return model_of(r).states(s.positions, r.weights, x)


def states(r, index: int, x: np.ndarray) -> np.ndarray:
    return grid_states(r, index, x) if r.solver == "fv" else particle_states(r, index, x)


def depth_marginal(r, index: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer l's marginal density on parameter `axis` (1 = the first after the layer axis):
    (faces along the axis, values (L, n))."""
    lo, hi = r.case.bounds[axis]
    n = r.case.cells[axis]
    edges = np.linspace(lo, hi, n + 1)
    L = r.layers
    s = r.snapshot(index)
    if s.positions is None:
        h = [np.diff(np.linspace(*r.case.bounds[k], r.case.cells[k] + 1))[0] for k in range(len(r.axes))]
        others = tuple(k for k in range(1, len(r.axes)) if k != axis)
        return edges, s.density.sum(axis=others) * float(np.prod([h[k] for k in others]))
    u = s.positions
    layer = np.clip(np.rint(u[:, 0] * L), 0, L - 1)
    # layer l's measure is sum_{j in l} L q_j delta_{u_j}
    hist, _, _ = np.histogram2d(layer, u[:, axis], bins=[np.arange(L + 1) - 0.5, edges], weights=L * r.weights)
    return edges, hist / np.diff(edges)


def w_moved(r) -> float:
    """max over layers of the L1 change of the w-marginal from the first to the last snapshot."""
    w_axis = r.axes.index("w")
    edges, start = depth_marginal(r, 0, w_axis)
    _, end = depth_marginal(r, len(r.time) - 1, w_axis)
    return float(np.max(np.abs(end - start) @ np.diff(edges)))


def layer_factor(r, index: int) -> np.ndarray:
    """min over x in [-1, 1] of each layer's dz_{l+1}/dz_l = 1 + F_l'(z_l) / L (d = 1): the Euler
    step of layer l is increasing, as the flow map is, only while it stays positive."""
    x = np.linspace(-1, 1, 2001)[:, None]
    slope = np.diff(states(r, index, x)[:, :, 0], axis=1)
    return np.min(slope[1:] / slope[:-1], axis=1)


def haber_ruthotto_check(r, W: np.ndarray) -> float:
    """max |z_L(model) - z_L(numpy z + 0.1 tanh(W z))| at the ring, at t = 0."""
    x = ring()
    z = x.copy()
    for _ in range(r.layers):
        z = z + 0.1 * np.tanh(z @ W.T)
    return float(np.abs(particle_states(r, 0, x)[-1] - z).max())


def ring() -> np.ndarray:
    angle = 2 * np.pi * np.arange(RING) / RING
    return np.column_stack([np.cos(angle), np.sin(angle)])


def measure(res: dict) -> None:
    nm = res["nonmonotone"]["fv"][0]
    res["bound"], res["iso_x"], res["iso_fit"] = isotonic_bound(model_of(nm))
    x = np.linspace(-1, 1, 2001)[:, None]
    for key in ("nonmonotone", "long"):
        for kind, (r, _) in res[key].items():
            f = states(r, len(r.time) - 1, x)[-1][:, 0]
            res[key][kind] = (*res[key][kind][:2], float(np.min(np.diff(f)) / (x[1, 0] - x[0, 0])))
    long = res["long"]["particle"][0]
    res["fold"] = layer_factor(long, len(long.time) - 1)
    res["rf_w_moved"] = {k: w_moved(r) for k, (r, _) in res["random_feature"].items()}
    r2 = res["2d"]["particle"][0]
    res["row_bound"] = rowwise_bound(model_of(r2))
    g = np.linspace(-1, 1, 201)
    X1, X2 = np.meshgrid(g, g, indexing="ij")
    f = particle_states(r2, len(r2.time) - 1, np.column_stack([X1.ravel(), X2.ravel()]))[-1].sum(axis=1)
    res["2d_f"] = (g, f.reshape(X1.shape))
    res["2d_min_slope"] = float(np.min(np.diff(res["2d_f"][1], axis=0)) / (g[1] - g[0]))
    for item in res["haber_ruthotto"].values():
        r = item["particle"][0]
        item["exact"] = haber_ruthotto_check(r, item["W"])
        z = particle_states(r, 0, ring())
        item["radius"] = float(np.mean(np.linalg.norm(z[-1], axis=1)))
        # back-propagation through the same layers: the costates P_1 against P_L (rms over the data)
        s = r.snapshot(0)
        P = model_of(r).depth_sweep(s.positions, r.weights).P
        item["costate"] = float(np.sqrt(np.mean(np.sum(P[0] ** 2, axis=1)) / np.mean(np.sum(P[-1] ** 2, axis=1))))


# ----------------------------------------------------------------------------- reporting
def report(res: dict) -> None:
    def line(label, runs):
        for kind, (r, wall, *rest) in runs.items():
            extra = f", min df/dx {rest[0]:.3g}" if rest else ""
            print(f"  {label:>22} {kind:>8}: risk {r.risk[0]:.4g} -> {r.risk[-1]:.4g} at t = {r.time[-1]:g}"
                  f"{extra}, wall {wall:.1f} s")
    print()
    line("monotone", res["monotone"])
    line("random features", res["random_feature"])
    print("  random features: max over layers of the w-marginal's L1 change: "
          + ", ".join(f"{k} {v:.2g}" for k, v in res["rf_w_moved"].items()))
    line("non-monotone", res["nonmonotone"])
    line("non-monotone, long", res["long"])
    print(f"  non-monotone: isotonic bound {res['bound']:.4g}; final risk / bound: "
          + ", ".join(f"{k} {r.risk[-1] / res['bound']:.3g}" for k, (r, *_) in
                      [*res["nonmonotone"].items(), ("long", res["long"]["particle"])]))
    print("  non-monotone, long: min_x dz_{l+1}/dz_l per layer " + " ".join(f"{v:.2g}" for v in res["fold"]))
    line("2-D state", res["2d"])
    print(f"  2-D state: best f increasing in x1 per row {res['row_bound']:.4g}; "
          f"min df/dx1 of the fit {res['2d_min_slope']:.3g}")
    for key, item in res["haber_ruthotto"].items():
        r, wall = item["particle"]
        print(f"  Haber-Ruthotto W = {key}: |z_L - numpy| {item['exact']:.1e}, mean |z_L| of the unit ring "
              f"{item['radius']:.3g}, |P_1| / |P_L| {item['costate']:.3g}, risk {r.risk[0]:.4g} -> {r.risk[-1]:.4g}, wall {wall:.1f} s")


# ----------------------------------------------------------------------------- drawing
def risk_panel(ax, curves, title, bound=None) -> None:
    for label, r, style in curves:
        ax.plot(r.time, r.risk, style, label=label)
    if bound is not None:
        ax.axhline(bound, color="k", ls=":", label=f"isotonic bound {bound:.3g}")
    ax.set(yscale="log", xlabel="t", ylabel="risk", title=title)
    ax.legend(fontsize="small")


def depth_panel(fig, ax, r, index: int, axis: int) -> None:
    edges, values = depth_marginal(r, index, axis)
    L = r.layers
    mesh = ax.pcolormesh(edges, (np.arange(L + 1) - 0.5) / L, values, shading="flat", cmap="viridis")
    fig.colorbar(mesh, ax=ax, shrink=0.8)
    ax.set(xlabel=r.axes[axis], ylabel="depth tau = l / L",
           title=f"{r.axes[axis]}-marginal per layer, {r.solver}, t = {r.time[index]:g}")


def fit_panel(ax, runs, model, extra=None) -> None:
    x = np.linspace(-1, 1, 401)[:, None]
    ax.plot(x[:, 0], model.target(x), "k", lw=2.5, alpha=0.4, label="target f*")
    for label, r, style in runs:
        ax.plot(x[:, 0], states(r, len(r.time) - 1, x)[-1][:, 0], style, label=label)
    if extra:
        extra(ax)
    ax.set(xlabel="x", ylabel="f(x) = z_L(x)", title="the learned f")
    ax.legend(fontsize="small")


def draw_monotone(res, path) -> None:
    fv, pa = res["monotone"]["fv"][0], res["monotone"]["particle"][0]
    fig = figure(14.0, 7.0)
    axes = fig.subplots(2, 3)
    risk_panel(axes[0, 0], [("fv", fv, "C0-"), ("particles, M = 1000 per layer", pa, "C1--")],
               "resnet_monotone: f* = 2x, L = 8")
    fit_panel(axes[0, 1], [(f"fv, t = {fv.time[-1]:g}", fv, "C0-"), ("particles", pa, "C1--")], model_of(fv))
    x = np.linspace(-1, 1, 401)[:, None]
    axes[0, 1].plot(x[:, 0], states(fv, 0, x)[-1][:, 0], "C0:", label="fv, t = 0")
    axes[0, 1].legend(fontsize="small")
    last = len(fv.time) - 1
    depth_panel(fig, axes[0, 2], fv, last, 1)
    depth_panel(fig, axes[1, 0], fv, 0, 2)
    depth_panel(fig, axes[1, 1], fv, last, 2)
    depth_panel(fig, axes[1, 2], pa, last, 2)
    write(fig, path)


def draw_random_feature(res, path) -> None:
    rf, full = res["random_feature"]["fv"][0], res["monotone"]["fv"][0]
    fig = figure(14.0, 7.0)
    axes = fig.subplots(2, 3)
    risk_panel(axes[0, 0], [("trained a and w (resnet_monotone)", full, "C0-"),
                            ("random features: a only", rf, "C3-"),
                            ("random features, particles", res["random_feature"]["particle"][0], "C3--")],
               "flow-based random features")
    fit_panel(axes[0, 1], [("a and w", full, "C0-"), ("a only", rf, "C3-")], model_of(rf))
    last = len(rf.time) - 1
    depth_panel(fig, axes[0, 2], rf, last, 1)
    depth_panel(fig, axes[1, 0], rf, 0, 2)
    depth_panel(fig, axes[1, 1], rf, last, 2)
    depth_panel(fig, axes[1, 2], full, last, 2)
    axes[1, 2].set_title(f"w-marginal per layer, a and w trained, t = {full.time[-1]:g}")
    write(fig, path)


def draw_nonmonotone(res, path) -> None:
    fv, pa = res["nonmonotone"]["fv"][0], res["nonmonotone"]["particle"][0]
    long = res["long"]["particle"][0]
    fig = figure(14.0, 7.0)
    axes = fig.subplots(2, 3)
    risk_panel(axes[0, 0], [("fv", fv, "C0-"), ("particles", pa, "C1--"),
                            ("particles, lr 0.2, to t = 200 (snapshots: dots)", long, "C2.-")],
               "resnet_nonmonotone: f* = x^2", res["bound"])
    axes[0, 0].set_xscale("symlog", linthresh=1.0)
    axes[0, 0].set_xlim(left=0)

    def iso(ax):
        ax.plot(res["iso_x"], res["iso_fit"], "k.:", label="best increasing fit (nodes)")
    fit_panel(axes[0, 1], [(f"fv, t = {fv.time[-1]:g}", fv, "C0-"), (f"particles, t = {long.time[-1]:g}", long, "C2-")],
              model_of(fv), iso)
    # the states of a few inputs through depth: [-1, 1/2] contracts towards one value
    ax = axes[0, 2]
    x = np.linspace(-1, 1, 21)[:, None]
    z = states(long, len(long.time) - 1, x)[:, :, 0]
    depth = np.arange(long.layers + 1) / long.layers
    for k in range(len(x)):
        ax.plot(depth, z[:, k], color="C3" if x[k, 0] <= 0.5 else "C2", lw=1)
    ax.set(xlabel="depth tau", ylabel="z_l(x)", title=f"states through depth, particles, t = {long.time[-1]:g}")
    last = len(fv.time) - 1
    for ax, axis in zip(axes[1], (1, 2, 3)):
        depth_panel(fig, ax, fv, last, axis)
    write(fig, path)


def draw_2d(res, path) -> None:
    r = res["2d"]["particle"][0]
    model = model_of(r)
    g, f = res["2d_f"]
    fig = figure(14.0, 7.0)
    axes = fig.subplots(2, 3)
    ax = axes[0, 0]
    ax.plot(r.time, r.risk, "C1-", label="particles, M = 500 per layer")
    ax.axhline(res["row_bound"], color="k", ls=":",
               label=f"best f increasing in x1: {res['row_bound']:.3g}")
    ax.set(yscale="log", xlabel="t", ylabel="risk", title="resnet_2d_state: f* = sin(3 x1) + x2")
    ax.legend(fontsize="small")
    X1, X2 = np.meshgrid(g, g, indexing="ij")
    target = model.target(np.column_stack([X1.ravel(), X2.ravel()])).reshape(X1.shape)
    for ax, values, title in ((axes[0, 1], target, "target f*"), (axes[0, 2], f, f"learned f, t = {r.time[-1]:g}")):
        # every other point: the picture stays small
        mesh = ax.pcolormesh(g[::2], g[::2], values[::2, ::2].T, shading="nearest", cmap="RdBu_r", vmin=-2, vmax=2)
        fig.colorbar(mesh, ax=ax, shrink=0.8)
        ax.set(xlabel="x1", ylabel="x2", title=title, aspect="equal")
    ax = axes[1, 0]
    for k, x2 in enumerate((-0.5, 0.0, 0.5)):
        i = int(np.argmin(np.abs(g - x2)))
        ax.plot(g, target[:, i], color=f"C{k}", lw=2.5, alpha=0.4)
        ax.plot(g, f[:, i], color=f"C{k}", label=f"x2 = {x2:g}")
    ax.set(xlabel="x1", ylabel="f(x1, x2)", title="slices: thick f*, thin the fit")
    ax.legend(fontsize="small")
    last = len(r.time) - 1
    depth_panel(fig, axes[1, 1], r, last, r.axes.index("a1"))
    depth_panel(fig, axes[1, 2], r, last, r.axes.index("w1"))
    write(fig, path)


def draw_haber_ruthotto(res, path) -> None:
    items = list(res["haber_ruthotto"].values())
    fig = figure(13.0, 8.6)
    axes = fig.subplots(2, len(items))
    names = {(0, -1, 1, 0): "stable (rotation)", (-2, 0, 2, -2): "contracting", (2, -2, 0, 2): "expanding"}
    x = ring()
    cmap = matplotlib.colormaps["twilight"]
    for col, item in enumerate(items):
        r = item["particle"][0]
        for row, index in enumerate((0, len(r.time) - 1)):
            ax = axes[row, col]
            z = particle_states(r, index, x)
            # each input in its own colour (by its angle), so that a rotation shows
            colours = cmap(np.arange(len(x)) / len(x))
            for k in range(len(x)):
                ax.plot(z[:, k, 0], z[:, k, 1], color=colours[k], lw=0.9, alpha=0.7)
            ax.scatter(z[0, :, 0], z[0, :, 1], c=colours, s=14, marker="o", label="z_0 = x", zorder=3)
            ax.scatter(z[-1, :, 0], z[-1, :, 1], c=colours, s=30, marker="^", edgecolors="k",
                       linewidths=0.4, label="z_L", zorder=4)
            name = names.get(tuple(int(v) for v in item["W"].ravel()), "")
            when = "t = 0" if index == 0 else f"trained to t = {r.time[index]:g}"
            ax.set(xlabel="z1", ylabel="z2", aspect="equal", xlim=(-3.3, 3.3), ylim=(-3.3, 3.3),
                   title=f"W = {item['W'].astype(int).tolist()}\n{name}, {when}, risk {r.risk[index]:.2g}")
            if row == col == 0:
                ax.legend(fontsize="small", loc="lower right")
    write(fig, path)


DRAWINGS = {"resnet_monotone": draw_monotone, "resnet_random_feature": draw_random_feature,
            "resnet_nonmonotone": draw_nonmonotone, "resnet_2d_state": draw_2d,
            "resnet_haber_ruthotto": draw_haber_ruthotto}


def draw(res: dict, out_dir) -> None:
    for name, drawing in DRAWINGS.items():
        drawing(res, Path(out_dir) / f"{name}.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="docs/images/gallery",
                   help="the folder of the pictures resnet_*.png (default: %(default)s)")
    p.add_argument("--runs", default="runs/examples/resnet", help="where the runs go (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a case key in every run, as for gflow run")
    args = p.parse_args(argv)
    res = study(Path(args.runs), args.set)
    report(res)
    draw(res, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
