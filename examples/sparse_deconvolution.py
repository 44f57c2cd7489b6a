"""Chizat's sparse deconvolution by conic particles (Wasserstein-Fisher-Rao), against his PGD_1D.

Runs cases/sparse_deconvolution_wfr.toml (github lchizat/2019-sparse-optim-measures,
illustration_deconv1D.jl; Chizat, "Sparse optimization on measures with over-parameterized
gradient descent", Math. Program. 2022): five signed spikes seen through the Dirichlet kernel
phi (nf = 4) are recovered by m = 30 spikes under

    d_t mu = -alpha V mu + beta div(mu grad V),   V = a E_x[(f - f*) phi(x - theta)] + lambda,

the loss 1/2 |f - f*|^2 + lambda |mu| (lambda = 0.3), a signed measure as two species a = -1, +1
(docs/wfr.md). The particles take his 1000 iterations exactly (lr = 1, fisher_rao = 4 alpha,
transport = beta), and fv solves the PDE of the same case on 2 x 256 cells. Beside them runs a
numpy port of his `PGD_1D` (examples/peer_ports.py) from gflow's initial particles, with his
r = sign(a) sqrt(m q) for a particle of mass q: the positions, the masses r^2 / m and his loss
agree with gflow's to round-off at every snapshot.

His picture follows each particle's (theta, r), with the observed signal f_obs / 2, the limit
points red where r > 0 and blue where r < 0.

    python examples/sparse_deconvolution.py -o sparse_deconvolution.png [--runs DIR] [--set KEY=VALUE]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import peer_ports
from common import CASES, figure, run, run_study, write

from gflow.problem import problem_from_text
from gflow.snapshots import open_run

CASE = CASES / "sparse_deconvolution_wfr.toml"
#: the case's observed spikes (its [target] expression): positions and signed weights w_k = ss(r_k^obs)
SPIKES = np.array([0.9, 1.9, 2.6, 4.0, 5.2])
WEIGHTS = np.array([0.2, -0.15, 0.275, -0.225, 0.15])


def port(r) -> dict:
    """His PGD_1D from the run's initial particles with the run's alpha, beta, lambda and step: the
    largest gaps in theta, in the masses r^2 / m and in his loss against gflow's energy, over the
    snapshots, and his trajectories there."""
    model = problem_from_text(r.case_text).model
    x = model.x[:, 0]
    if np.abs(model.y - peer_ports.dirichlet(x[:, None] - SPIKES) @ WEIGHTS).max() > 1e-12:
        raise SystemExit("the case's target is not the five spikes this port observes")
    lr = float(r.solver_options["lr"])
    steps = np.rint(r.time / lr).astype(int)
    if not np.allclose(steps * lr, r.time, rtol=0, atol=1e-9 * lr):
        raise SystemExit(f"the snapshot times are not multiples of the step {lr:g}: PGD_1D takes whole steps")
    dynamics = r.case.dynamics
    u0, q0 = r.positions(0), r.weights_at(0)
    m = len(q0)
    r0 = np.sign(u0[:, 0]) * np.sqrt(m * q0)
    r_obs = np.sign(WEIGHTS) * np.sqrt(np.abs(WEIGHTS))
    rs, thetas, loss = peer_ports.pgd_1d(r0, u0[:, 1], r_obs, SPIKES, r.case.mass_penalty,
                                         dynamics.fisher_rao * lr / 4, dynamics.transport * lr, int(steps[-1]))
    theta_gap = max(float(np.abs(r.positions(i)[:, 1] - thetas[k]).max()) for i, k in enumerate(steps))
    mass_gap = max(float(np.abs(r.weights_at(i) - rs[k] ** 2 / m).max()) for i, k in enumerate(steps))
    return {"theta_gap": theta_gap, "mass_gap": mass_gap, "loss_gap": float(np.abs(loss[steps] - r.energy).max()),
            "rs": rs[steps], "thetas": thetas[steps], "loss": loss[steps], "mass": (rs[steps] ** 2).sum(axis=1) / m}


def study(out: Path, overrides=(), vary=()) -> dict:
    """{"particles", "fv": Run, "port": port(particles)}."""
    if vary:
        raise SystemExit(f"--vary: {CASE.name} has no [sweep] table; use --set")
    # one solver per command: a run of both would also draw their comparison (compare.png)
    particles = open_run(run(CASE, out / "particle", list(overrides), solver="particle"))
    fv = open_run(run(CASE, out / "fv", list(overrides), solver="fv"))
    return {"particles": particles, "fv": fv, "port": port(particles)}


def report(result: dict) -> None:
    p, fv, port_ = result["particles"], result["fv"], result["port"]
    print(f"\nhis PGD_1D (numpy port) against gflow's conic particles, {len(p.time)} snapshots to t = {p.time[-1]:g}:")
    print(f"  max |theta_gflow - theta_port| = {port_['theta_gap']:.2g}, max |q_gflow - r^2/m| = "
          f"{port_['mass_gap']:.2g} (largest q {p.weights_at(-1).max():.3g}), "
          f"max |loss - energy| = {port_['loss_gap']:.2g}")
    print(f"energy 1/2 |f - f*|^2 + lambda |mu|, risk and mass at t = {p.time[-1]:g} (mass 0.25 at t = 0):")
    print(f"  particles E = {p.energy[-1]:.5g}, risk {p.risk[-1]:.4g}, mass {p.mass[-1]:.5g}")
    print(f"  port      E = {port_['loss'][-1]:.5g}, mass {port_['mass'][-1]:.5g}")
    print(f"  fv        E = {fv.energy[-1]:.5g}, risk {fv.risk[-1]:.4g}, mass {fv.mass[-1]:.5g}")


def draw(result: dict, path) -> None:
    p, fv, port_ = result["particles"], result["fv"], result["port"]
    fig = figure(14.0, 4.0)
    axes = fig.subplots(1, 3)
    m = len(p.weights_at(0))
    theta = np.stack([p.positions(i)[:, 1] for i in range(len(p.time))])                 # (T, m)
    r = np.sign(p.positions(0)[:, 0]) * np.sqrt(m * np.stack([p.weights_at(i) for i in range(len(p.time))]))
    ax = axes[0]
    xs = np.linspace(0, 2 * np.pi, 400)
    ax.plot(xs, peer_ports.dirichlet(xs[:, None] - SPIKES) @ WEIGHTS / 2, ":", color="C1", label="observed / 2")
    for shift in (-2 * np.pi, 0.0, 2 * np.pi):      # his periodic copies
        ax.plot(theta + shift, r, "k", lw=0.8)
        for sign, colour in ((1, "C3"), (-1, "C0")):
            end = np.sign(r[-1]) == sign
            ax.plot(theta[-1, end] + shift, r[-1, end], ".", color=colour, ms=8,
                    label=("limit of the flow" if sign > 0 and shift == 0 else None))
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlim=(0, 2 * np.pi), ylim=(-2.5, 2.5), xlabel="theta", ylabel="r = sign(a) sqrt(m q)",
           title=f"gflow conic particles, t = 0..{p.time[-1]:g}")
    ax.legend(fontsize="x-small", loc="lower left")
    ax = axes[1]
    # signed masses: the species a = -1 below the axis, the same units as the spikes' w_k
    mass = fv.density(-1) * fv.cell_volume
    for row, (label, colour) in enumerate((("a = -1", "C0"), ("a = +1", "C3"))):
        ax.plot(fv.coordinates[1], (2 * row - 1) * mass[row], color=colour, label=f"fv, species {label}: mass per cell")
    ax.vlines(SPIKES, 0, WEIGHTS, color="0.5", lw=4, alpha=0.5, label="observed spikes w_k")
    final = np.sign(p.positions(-1)[:, 0]) * p.weights_at(-1)
    ax.plot(theta[-1], final, "k.", ms=6, label="particles: sign(a) q")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel="theta", ylabel="signed mass", xlim=(0, 2 * np.pi),
           title=f"fv density of the two species, t = {fv.time[-1]:g}")
    ax.legend(fontsize="x-small")
    ax = axes[2]
    ax.plot(p.time, p.energy, color="C1", label="particles: energy")
    ax.plot(p.time, port_["loss"], "k+", ms=5, label="PGD_1D (port): loss")
    ax.plot(fv.time, fv.energy, "--", color="C2", label="fv: energy")
    ax.plot(p.time, p.mass, color="C4", label="particles: mass")
    ax.plot(p.time, port_["mass"], "kx", ms=4, label="port: sum r^2 / m")
    ax.plot(fv.time, fv.mass, "--", color="C5", label="fv: mass")
    ax.set(xlabel="t (iterations)", title="energy and mass")
    ax.legend(fontsize="x-small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "sparse_deconvolution", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
