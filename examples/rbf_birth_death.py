"""Birth-death on Rotskoff and Vanden-Eijnden's Gaussian-RBF network, against their notebook.

Runs cases/rbf_birth_death.toml (units c N(x; y, 0.5), u = (a, y) with a their c, the three-bump
target in L^2(R, dx), 200 particles, gradient descent with step 0.01 to t = 30) three ways, the
first two its [sweep] over dynamics.birth_death = [0.0, 5.0] (as `gflow sweep` runs it, with
particles and with fv), the third one more run of kappa = 5:

    gradient descent                 d_t rho = div(rho grad V)                      particles and fv
    birth-death, weights             d_t rho = div(rho grad V) - kappa (V - <V>) rho  particles and fv
    birth-death, stochastic          kill/clone with probability kappa |V - <V>| dt   particles

with kappa = 5 (the notebook's alpha = 0.05 per step of 0.01) until t = 20 and plain transport
after it (the quench of the last 1000 steps). Beside them runs a numpy port of the notebook's own
`run_traj` and `run_traj_scheme1` (examples/peer_ports.py) from gflow's initial particles: the
gradient-descent energies agree to round-off. The exact minimiser has the a-moment
m1*(y) = int a rho* da = (1/3) delta_-2 + (1/3) delta_2 - (2/3) N(y; 0, 0.5) (tests/test_rbf_closed_form.py);
each run's m1 is measured against it weakly, max_c |int g_c (m1 - m1*) dy| over normal densities
g_c of variance 0.25 centred at c = -3, -2, ..., 3 (Rotskoff, Jelassi, Bruna, Vanden-Eijnden,
"Global convergence of neuron birth-death dynamics", ICML 2019).

    python examples/rbf_birth_death.py -o rbf_birth_death.png [--runs DIR] [--set KEY=VALUE] [--vary dynamics.birth_death=0,KAPPA]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import peer_ports
from common import CASES, figure, run, run_study, sweep, write
from gflow.postprocess.runs import faces

from gflow.snapshots import open_run

CASE = CASES / "rbf_birth_death.toml"
#: the sweep's key: 0 is gradient descent, the notebook's alpha = 0.05 per step of 0.01 is kappa = 5
#: (the case's birth_death_until = 20 quenches it)
KAPPA = "dynamics.birth_death"
STOCHASTIC = ['solver.birth_death_scheme="stochastic"']
#: the seed of the port's own kill/clone draws
PORT_SEED = 0
#: the weak test functions: normal densities of variance 0.25 centred at -3, -2, ..., 3
TEST_CENTRES, TEST_VAR = np.arange(-3.0, 3.5, 1.0), 0.25


def normal(y, mean, var):
    return np.exp(-(y - mean) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)


def optimum_moments() -> np.ndarray:
    """int g_c m1* dy for each test function g_c (m1*'s deltas and its normal part in closed form)."""
    c = TEST_CENTRES
    return (normal(-2.0, c, TEST_VAR) + normal(2.0, c, TEST_VAR)) / 3 - 2 / 3 * normal(c, 0.0, TEST_VAR + 0.5)


def measure(r, index: int) -> dict:
    """The a-moment of snapshot `index` as point masses (y_k, m_k): the particles' (y_j, q_j a_j),
    or the cells' (y, int a rho da dy); its weak error and the network f on X."""
    snap = r.snapshot(index)
    if snap.positions is not None:
        y, mass = snap.positions[:, 1], snap.weights * snap.positions[:, 0]
    else:
        fa, fy = faces(r)
        a = 0.5 * (fa[1:] + fa[:-1])
        y = 0.5 * (fy[1:] + fy[:-1])
        mass = (a * np.diff(fa)) @ snap.density * np.diff(fy)
    weak = float(np.abs(normal(y[:, None], TEST_CENTRES, TEST_VAR).T @ mass - optimum_moments()).max())
    return {"y": y, "mass": mass, "weak": weak, "f": normal(X[:, None], y, peer_ports.S2) @ mass}


#: where f is drawn
X = np.linspace(-5.0, 5.0, 201)


def port_runs(gd, kappa: float, until: float | None) -> dict:
    """The notebook's run_traj and run_traj_scheme1 from the gradient-descent run's initial
    particles, with its step: their energies at the run's snapshot times, and the largest gap
    between the port's particles and the run's at a snapshot."""
    dt = float(gd.solver_options["lr"])
    steps = np.rint(gd.time / dt).astype(int)
    if not np.allclose(steps * dt, gd.time, rtol=0, atol=1e-9 * dt):
        raise SystemExit(f"the snapshot times are not multiples of the step {dt:g}: the port steps whole steps")
    u0 = gd.positions(0)
    y0, c0 = u0[:, 1], u0[:, 0]
    gd_energy, gd_states = peer_ports.run_traj(y0, c0, int(steps[-1]), dt)
    quench = 0 if until is None else max(0, int(steps[-1]) - round(until / dt))
    bd_energy, _ = peer_ports.run_traj_scheme1(y0, c0, int(steps[-1]), dt, kappa * dt, quench,
                                                        np.random.default_rng(PORT_SEED))
    moved = max(float(np.abs(gd.positions(i) - np.column_stack(gd_states[k][::-1])).max())
                for i, k in enumerate(steps))
    return {"gd": gd_energy[steps], "bd": bd_energy[steps], "position_gap": moved, "steps": steps}


def study(out: Path, overrides=(), vary=()) -> dict:
    """{"runs": {label: Run}, "measures": {label: measure at the end}, "port": port_runs, "energy_gap"}."""
    overrides = list(overrides)
    # the case's sweep, one solver per command (a run of both would also draw compare.png)
    swept = {kind: sweep(CASE, out, overrides, vary, solver=kind) for kind in ("particle", "fv")}
    kappas = [r.values[KAPPA] for r in swept["fv"]]
    if len(kappas) != 2 or kappas[0] != 0 or not kappas[1] > 0 or any(len(r.values) != 1 for r in swept["fv"]):
        raise SystemExit(f"the study needs the sweep {KAPPA} = [0, kappa > 0] and no other key, not {kappas}")
    for r in (*swept["particle"], *swept["fv"]):
        if not r.finished:
            raise SystemExit(f"{r.path} did not finish")
    bd = [*overrides, f"{KAPPA}={kappas[1]!r}", *STOCHASTIC]
    paths = {"GD, particles": swept["particle"][0].path, "GD, fv": swept["fv"][0].path,
             "birth-death (weights), particles": swept["particle"][1].path, "birth-death, fv": swept["fv"][1].path,
             "birth-death (stochastic), particles": run(CASE, out / "birth_death_stochastic", bd, solver="particle")}
    runs = {label: open_run(p) for label, p in paths.items()}
    dynamics = runs["birth-death, fv"].case.dynamics
    port = port_runs(runs["GD, particles"], dynamics.birth_death, dynamics.birth_death_until)
    last = {label: measure(r, len(r.time) - 1) for label, r in runs.items()}
    first = measure(runs["GD, fv"], 0)
    gap = float(np.abs(runs["GD, particles"].energy - port["gd"]).max())
    return {"runs": runs, "measures": last, "initial_weak": first["weak"], "port": port, "energy_gap": gap,
            "until": dynamics.birth_death_until, "kappa": dynamics.birth_death}


def report(result: dict) -> None:
    runs, port = result["runs"], result["port"]
    t = runs["GD, particles"].time[-1]
    print(f"\nthe notebook's run_traj (numpy port) against gflow's gradient descent, {len(port['steps'])} snapshots:")
    print(f"  max |E_gflow - E_port| = {result['energy_gap']:.2g}, max |u_gflow - u_port| = {port['position_gap']:.2g}")
    print(f"\nenergy 1/2 int (f - f*)^2 dx at t = {t:g} (kappa = {result['kappa']:g} until t = {result['until']:g}), "
          f"and the weak error of m1 against m1* (t = 0: {result['initial_weak']:.3g}):")
    for label, r in runs.items():
        print(f"  {label:>36}: E = {r.energy[-1]:.4g}, weak error {result['measures'][label]['weak']:.3g}")
    print(f"  {'port, run_traj':>36}: E = {port['gd'][-1]:.4g}")
    print(f"  {'port, run_traj_scheme1':>36}: E = {port['bd'][-1]:.4g}")


STYLE = {"GD, particles": ("C0", "-"), "GD, fv": ("C0", "--"), "birth-death (weights), particles": ("C1", "-"),
         "birth-death, fv": ("C1", "--"), "birth-death (stochastic), particles": ("C2", "-")}


def draw(result: dict, path) -> None:
    runs, port, measures = result["runs"], result["port"], result["measures"]
    fig = figure(16.0, 3.8)
    axes = fig.subplots(1, 4)
    ax = axes[0]
    for label, r in runs.items():
        colour, line = STYLE[label]
        ax.plot(r.time, r.energy, line, color=colour, label=label)
    t = runs["GD, particles"].time
    ax.plot(t[::2], port["gd"][::2], "k+", ms=6, label="notebook run_traj (port)")
    ax.plot(t[::2], port["bd"][::2], "x", color="C2", ms=4, label="notebook run_traj_scheme1 (port)")
    if result["until"] is not None and result["until"] < t[-1]:
        ax.axvline(result["until"], color="0.6", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="t", ylabel="E = 1/2 int (f - f*)^2 dx", title="energy")
    ax.legend(fontsize="x-small")
    ax = axes[1]
    yb = np.linspace(-5.0, 5.0, 51)        # bins of two fv cells
    for label in ("GD, fv", "birth-death, fv", "birth-death (weights), particles"):
        colour, line = STYLE[label]
        m = measures[label]
        density, _ = np.histogram(m["y"], bins=yb, weights=m["mass"])
        ax.stairs(density / np.diff(yb), yb, color=colour, ls=line, label=label)
    y = np.linspace(-5.0, 5.0, 401)
    ax.plot(y, -2 / 3 * normal(y, 0.0, 0.5), "k", lw=1, label="m1*: -(2/3) N(y; 0, 0.5)")
    for centre in (-2.0, 2.0):
        ax.annotate("", (centre, 1.2), (centre, 0.0), arrowprops={"arrowstyle": "->", "color": "k"})
    ax.text(2.1, 1.1, "(1/3) delta", fontsize="small")
    ax.set(xlabel="y", ylabel="m1(y) = int a rho da (bins of 0.2)", ylim=(-0.8, 1.4),
           title=f"a-moment at t = {t[-1]:g}")
    ax.legend(fontsize="x-small", loc="upper left")
    ax = axes[2]
    for label in ("GD, particles", "birth-death (weights), particles", "birth-death (stochastic), particles"):
        snap = runs[label].snapshot(len(runs[label].time) - 1)
        ax.scatter(snap.positions[:, 1], snap.positions[:, 0], s=12 * snap.weights * len(snap.weights),
                   color=STYLE[label][0], label=label)
    ax.set(xlabel="y", ylabel="a (their c)", xlim=(-5, 5), title=f"particles at t = {t[-1]:g} (size: weight)")
    ax.legend(fontsize="x-small")
    ax = axes[3]
    ax.plot(X, peer_ports.target(X), "k", lw=2, label="f*")
    for label in ("GD, particles", "birth-death (weights), particles", "birth-death, fv"):
        colour, line = STYLE[label]
        ax.plot(X, measures[label]["f"], line, color=colour, label=label)
    ax.set(xlabel="x", ylabel="f(x)", title=f"the network at t = {t[-1]:g}")
    ax.legend(fontsize="x-small")
    write(fig, path)


def main(argv=None) -> int:
    return run_study(__doc__, "rbf_birth_death", study, report, draw, argv)


if __name__ == "__main__":
    sys.exit(main())
