"""Chizat's ReLU illustration: 20 neurons from the sphere of radius 2, against his GDfor2NN.

Runs cases/chizat_relu.toml (github lchizat/2019-sparse-optim-measures, illustration_reluNN.jl):
f(x) = (1/m) sum_i a_i (w_i . x)_+, u = (a, w1, w2) with a his b, 15 points on the unit circle
labelled by a random three-neuron teacher, 20 neurons whose whole vector starts uniform on the
sphere |u| = 2, gradient descent with step 1 for 1/2 MSE + (lambda/m) sum_i |u_i|^2 (lambda = 0.002,
gflow's weight_decay = 2 lambda) at his plotting grid of steps floor(exp(linspace(0, log 10^4, 100))) - 1;
and the PDE of the same case with fv on a 3-D grid, from a shell of width 0.2 about the sphere.
Beside them runs a numpy port of his `GDfor2NN` (examples/peer_ports.py) from gflow's initial
particles: the positions agree to round-off at every snapshot.

His picture follows each neuron's p_i = |a_i| w_i (the output of a ReLU unit is homogeneous:
a (w . x)_+ = sign(a) (|a| w . x)_+), red where the final a_i > 0 and blue where it is < 0. The fv
density's counterpart is the signed measure nu = (u -> |a| w)_# (sign(a) rho), from which
f = int (p . x)_+ dnu(p) follows alone (Chizat, "Sparse optimization on measures with
over-parameterized gradient descent", Math. Program. 2022; Chizat and Bach, NeurIPS 2018).

    python examples/chizat_relu.py -o chizat_relu.png [--runs DIR] [--set KEY=VALUE]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import peer_ports
from common import CASES, figure, run, run_study, write
from gflow.postprocess.runs import faces

from gflow.problem import problem_from_text
from gflow.snapshots import open_run

CASE = CASES / "chizat_relu.toml"
#: the picture of nu: bins of p = |a| w
P_BINS = np.linspace(-2.5, 2.5, 51)


def port(r) -> dict:
    """His GDfor2NN on the run's data from its initial particles, with its weight decay and step:
    the largest position gap at each snapshot, and his loss_train there."""
    model = problem_from_text(r.case_text).model
    lr = float(r.solver_options["lr"])
    steps = np.rint(r.time / lr).astype(int)
    if not np.allclose(steps * lr, r.time, rtol=0, atol=1e-9 * lr):
        raise SystemExit(f"the snapshot times are not multiples of the step {lr:g}: GDfor2NN takes whole steps")
    u0 = r.positions(0)
    # his rows are (w_i, b_i): gflow's (a, w1, w2) with a = b
    Ws, loss = peer_ports.gd_for_2nn(model.x, model.y, np.column_stack([u0[:, 1:], u0[:, 0]]),
                                     r.case.weight_decay / 2, lr, int(steps[-1]) + 1)
    gaps = np.array([np.abs(r.positions(i) - np.roll(Ws[k], 1, axis=1)).max() for i, k in enumerate(steps)])
    return {"gap": gaps, "loss": loss[steps], "steps": steps}


def projection(r, index: int) -> np.ndarray:
    """|p| nu(dp) for nu = (u -> p = |a| w)_# (sign(a) rho) of an fv snapshot, binned on P_BINS^2:
    the signed output weight f = int |p| (p/|p| . x)_+ dnu carries in each bin (mass near p = 0,
    the neurons weight decay has shrunk, carries none). Each cell's mass is split over 2^3
    sub-cell centres before the map, which is not linear, so the bins fill evenly."""
    f = faces(r)
    h = [np.diff(g)[0] for g in f]
    sub = [np.concatenate([g[:-1] + s * 0.25 * dh for s in (1, 3)]) for g, dh in zip(f, h)]
    a, w1, w2 = np.meshgrid(*sub, indexing="ij")
    # sub-cell i + s n of an axis of n cells lies in cell i: the density tiled twice per axis
    mass = np.tile(r.density(index), (2, 2, 2)) * np.prod(h) / 8
    p1, p2 = np.abs(a) * w1, np.abs(a) * w2
    nu, _, _ = np.histogram2d(p1.ravel(), p2.ravel(), bins=[P_BINS, P_BINS],
                              weights=(np.sign(a) * np.hypot(p1, p2) * mass).ravel())
    return nu


def study(out: Path, overrides=(), vary=()) -> dict:
    """{"particles", "fv": Run, "port": port(particles), "nu": the fv projection at the end}."""
    if vary:
        raise SystemExit(f"--vary: {CASE.name} has no [sweep] table; use --set")
    particles = open_run(run(CASE, out / "particle", list(overrides), solver="particle"))
    fv = open_run(run(CASE, out / "fv", list(overrides), solver="fv"))
    return {"particles": particles, "fv": fv, "port": port(particles), "nu": projection(fv, len(fv.time) - 1),
            "teacher": particles.case.model.target.neurons}


def report(result: dict) -> None:
    p, fv, port_ = result["particles"], result["fv"], result["port"]
    print(f"\nhis GDfor2NN (numpy port) against gflow's particles, {len(p.time)} snapshots to t = {p.time[-1]:g}:")
    print(f"  max |u_gflow - u_port| = {port_['gap'].max():.2g} (largest |u| {np.abs(p.positions(-1)).max():.3g}), "
          f"max |loss - energy| = {np.abs(port_['loss'] - p.energy).max():.2g}")
    print(f"objective 1/2 MSE + lambda/m sum |u|^2 (risk 1/2 MSE) at t = {p.time[-1]:g}:")
    print(f"  particles {p.energy[-1]:.4g} ({p.risk[-1]:.3g}), port {port_['loss'][-1]:.4g}, "
          f"fv {fv.energy[-1]:.4g} ({fv.risk[-1]:.3g}), fv mass {fv.mass[-1]:.12g}")
    final = p.positions(-1)
    print(f"  final neurons with |a| > 0.1: {int(np.sum(np.abs(final[:, 0]) > 0.1))} of {len(final)}")


def draw(result: dict, path) -> None:
    p, fv, port_ = result["particles"], result["fv"], result["port"]
    fig = figure(14.0, 4.2)
    axes = fig.subplots(1, 3)
    u = np.stack([p.positions(i) for i in range(len(p.time))])       # (T, m, 3)
    path_p = np.abs(u[..., :1]) * u[..., 1:]                          # |a| w
    positive = u[-1, :, 0] > 0
    circle = np.linspace(0, 2 * np.pi, 200)
    for ax in axes[:2]:
        ax.plot(2 * np.cos(circle), 2 * np.sin(circle), "k:", lw=0.8)
        for n in result["teacher"]:
            w = np.array(n["w"])
            ax.plot([0, 2.4 * w[0]], [0, 2.4 * w[1]], color="C3" if n["a"] > 0 else "C0", lw=0.6, alpha=0.6)
        ax.set(aspect="equal", xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), xlabel="|a| w1", ylabel="|a| w2")
    ax = axes[0]
    ax.plot(path_p[:, :, 0], path_p[:, :, 1], "k", lw=0.7)
    ax.scatter(path_p[-1, positive, 0], path_p[-1, positive, 1], 30, color="C3", zorder=3, label="a > 0 at the end")
    ax.scatter(path_p[-1, ~positive, 0], path_p[-1, ~positive, 1], 30, color="C0", zorder=3, label="a < 0")
    ax.set_title(f"gflow particles, t = 0..{p.time[-1]:g} (log grid)")
    ax.legend(fontsize="x-small", loc="lower left")
    ax = axes[1]
    nu = result["nu"] / np.diff(P_BINS)[0] ** 2
    top = np.abs(nu).max()
    image = ax.pcolormesh(P_BINS, P_BINS, nu.T, cmap="RdBu_r", vmin=-top, vmax=top, shading="flat")
    fig.colorbar(image, ax=ax, shrink=0.8, label="|p| nu(dp) / dp: signed output weight")
    ax.scatter(path_p[-1, :, 0], path_p[-1, :, 1], 12, facecolors="none", edgecolors="k", lw=0.6)
    ax.set_title(f"fv: p = |a| w, weighted sign(a) |p| rho, t = {fv.time[-1]:g}")
    ax = axes[2]
    k = port_["steps"] + 1
    ax.plot(k, p.energy, color="C1", label="gflow particles: objective")
    ax.plot(k, port_["loss"], "k+", ms=5, label="GDfor2NN (port): loss_train")
    ax.plot(np.rint(fv.time) + 1, fv.energy, "C2", label="fv: objective")
    ax.plot(k, p.risk, "--", color="C1", label="particles: 1/2 MSE")
    ax.plot(np.rint(fv.time) + 1, fv.risk, "--", color="C2", label="fv: 1/2 MSE")
    ax.set(xscale="log", yscale="log", xlabel="iteration (t + 1)", title="objective and risk")
    ax.legend(fontsize="x-small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "chizat_relu", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
