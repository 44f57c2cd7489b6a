"""Particles (GD, SGD, Langevin): exact GD identity, Ornstein-Uhlenbeck statistics,
convergence to the grid solution as m grows, reproducibility, and the command line."""
from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, check_snapshot
from gflow.case import case_from_text
from gflow.app.cli import main as gflow_main
from gflow.problem import build_problem
from gflow.grids import CartesianGrid
from gflow.solvers.deposit import cloud_in_cell, outside_mass
from gflow.solvers.fv import FiniteVolumeStepper
from gflow.solvers.particle import ParticleStepper, particle_velocity
from gflow.solver_options import defaults

QUICKSTART = (ROOT / "cases" / "quickstart.toml").read_text()


def options(**kw):
    """The particle options with their declared defaults, overridden by kw."""
    return {**defaults("particle"), **kw}


def advance(stepper, t_end: float, dt: float | None = None) -> int:
    """Step to t_end as the run loop does (dt_max = min(dt, remaining), fixed when the case
    gives [time].dt); return the steps."""
    t, steps = 0.0, 0
    fixed = getattr(getattr(stepper.problem, "case", None), "dt", None) is not None
    while t < t_end * (1 - 1e-12):
        remaining = t_end - t
        t += stepper.step(remaining if dt is None else min(dt, remaining), fixed)
        steps += 1
    return steps


# ----------------------------------------------------------------------------- GD identity

GD_CASE = """
[model]
kind = "two_layer"
activation = "tanh"
bias = true
input_dim = 2
[target]
neurons = [{ a = 1.2, w = [0.7, -1.1], b = 0.3 }, { a = -0.8, w = [-1.5, 0.4], b = 0.5 }]
[data]
distribution = "uniform"
low = -1.0
high = 1.0
nodes = 4
[regularization]
weight_decay = 0.05
[initial]
mean = [0.1, 0.0, 0.0, -0.2]
std = [1.0, 0.8, 0.9, 0.5]
[grid]
bounds = [[-4.0, 4.0], [-4.0, 4.0], [-4.0, 4.0], [-4.0, 4.0]]
cells = [4, 4, 4, 4]
[time]
end = 1.0
dt = 0.1
"""


@pytest.mark.parametrize("scaling", ["mean_field", "conventional"])
def test_euler_step_is_gradient_descent(scaling):
    """One forward-Euler step = one GD step on the hand-written loss of the network.

    mean_field: f_m = (1/m) sum_j a_j tanh(w_j.x + b_j), L = 1/2 E_x (f_m - y)^2 + lam/(2m) sum|u_j|^2,
    dL/du_j = (1/m) grad V(u_j), so Euler with step dt is GD on L with learning rate m dt.
    conventional: f = sum_j a_j tanh(w_j.x + b_j), L with lam/2 sum|u_j|^2, learning rate dt.
    """
    problem = build_problem(case_from_text(GD_CASE))
    m, dt, lam = 7, 0.1, 0.05
    stepper = ParticleStepper(problem, options(particles=m, seed=3, scaling=scaling))
    u = stepper.u.copy()
    assert stepper.step(dt, fixed=True) == dt

    # the data measure, written out: 4 x 4 Gauss-Legendre nodes on [-1, 1]^2
    t, wt = np.polynomial.legendre.leggauss(4)
    x = np.array([[t1, t2] for t1 in t for t2 in t])
    p = np.array([w1 * w2 for w1 in wt for w2 in wt]) / 4.0
    y = 1.2 * np.tanh(x @ [0.7, -1.1] + 0.3) - 0.8 * np.tanh(x @ [-1.5, 0.4] + 0.5)

    scale = 1.0 / m if scaling == "mean_field" else 1.0
    a, w, b = u[:, 0], u[:, 1:3], u[:, 3]
    z = w @ x.T + b[:, None]                                    # (m, M)
    f = scale * (a @ np.tanh(z))
    r = f - y
    dz = 1.0 - np.tanh(z) ** 2
    grad_L = np.empty_like(u)
    grad_L[:, 0] = scale * (np.tanh(z) @ (p * r))
    grad_L[:, 1:3] = scale * a[:, None] * ((dz * (p * r)) @ x)
    grad_L[:, 3] = scale * a * (dz @ (p * r))
    grad_L += scale * lam * u
    lr = dt / scale
    np.testing.assert_allclose(stepper.u, u - lr * grad_L, rtol=0, atol=1e-12)

    # the observed risk and energy are those of the same network
    obs = stepper.observe()
    f1 = scale * (stepper.u[:, 0] @ np.tanh(stepper.u[:, 1:3] @ x.T + stepper.u[:, 3:]))
    risk = 0.5 * p @ (f1 - y) ** 2
    assert obs.risk == pytest.approx(risk, rel=1e-12)
    assert obs.energy == pytest.approx(risk + 0.5 * scale * lam * np.sum(stepper.u ** 2), rel=1e-12)
    assert obs.mass == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(stepper.weights, np.full(m, 1.0 / m))


def test_conventional_scaling_has_no_wide_limit():
    """GD with lr 0.05 for t = 1 on quickstart: mean field is the same at every width; the plain
    sum moves each neuron less as m grows (lazy) and then blows up (no m -> infinity limit)."""
    problem = build_problem(case_from_text(QUICKSTART))
    risk, move = {}, {}
    for scaling in ("mean_field", "conventional"):
        for m in (10, 100, 1000):
            s = ParticleStepper(problem, options(particles=m, scaling=scaling, seed=1))
            u0 = s.u.copy()
            with np.errstate(over="ignore", invalid="ignore"):
                advance(s, 1.0)
                risk[scaling, m] = s.observe().risk
            move[scaling, m] = np.abs(s.u - u0).mean()
    assert risk["mean_field", 1000] == pytest.approx(risk["mean_field", 100], rel=0.1)
    assert move["mean_field", 1000] == pytest.approx(move["mean_field", 100], rel=0.1)
    assert move["conventional", 100] < 0.6 * move["conventional", 10]
    assert risk["conventional", 100] < 0.1 * risk["mean_field", 100]
    assert not risk["conventional", 1000] < 1e6


# ----------------------------------------------------------------------------- integrators

def test_integrator_orders():
    """Euler converges at order 1, RK4 at order 4; adaptive matches a fine RK4 run."""
    problem = build_problem(case_from_text(QUICKSTART))
    opts = options(particles=50, seed=1)

    def final(integrator, lr, **kw):
        s = ParticleStepper(problem, {**opts, "integrator": integrator, "lr": lr, **kw})
        advance(s, 1.0)
        return s

    reference = final("rk4", 1 / 256).u
    for integrator, lrs, order in (("euler", (1 / 16, 1 / 32, 1 / 64), 1), ("rk4", (1 / 4, 1 / 8, 1 / 16), 4)):
        errors = [np.abs(final(integrator, lr).u - reference).max() for lr in lrs]
        slope = np.polyfit(np.log(lrs), np.log(errors), 1)[0]
        assert abs(slope - order) < 0.3, (integrator, errors)
    adaptive = final("adaptive", 0.05, tolerance=1e-8)
    assert np.abs(adaptive.u - reference).max() < 1e-6
    assert "rejected" in adaptive.summary()


# ----------------------------------------------------------------------------- Ornstein-Uhlenbeck

OU_CASE = """
[model]
kind = "potential"
axes = ["x", "y"]
potential = "0.5*(x**2 + y**2)"
[regularization]
temperature = 0.5
[initial]
distribution = "gaussian"
mean = [1.0, -0.5]
std = [0.6, 1.2]
[grid]
bounds = [[-5.0, 5.0], [-6.0, 6.0]]
cells = [40, 48]
[time]
end = 1.0
dt = 0.005
"""


def test_ornstein_uhlenbeck_particles():
    """mean(t) = mean0 e^-t, var(t) = T + (var0 - T) e^-2t, each within three standard errors."""
    problem = build_problem(case_from_text(OU_CASE))
    m, T, t = 20000, 0.5, 1.0
    stepper = ParticleStepper(problem, options(particles=m, seed=11))
    advance(stepper, t, dt=0.005)
    u = stepper.u
    mean0, var0 = np.array([1.0, -0.5]), np.array([0.6, 1.2]) ** 2
    mean, var = mean0 * np.exp(-t), T + (var0 - T) * np.exp(-2 * t)
    assert np.all(np.abs(u.mean(axis=0) - mean) < 3 * np.sqrt(var / m))
    assert np.all(np.abs(u.var(axis=0, ddof=1) - var) < 3 * var * np.sqrt(2 / (m - 1)))
    obs = stepper.observe()
    assert obs.risk == pytest.approx(0.5 * np.sum(mean ** 2 + var), rel=0.02)


# ----------------------------------------------------------------------------- against the grid

def w1_marginals(grid: CartesianGrid, rho: np.ndarray, u: np.ndarray, q: np.ndarray) -> float:
    """Sum over axes of W1 between the 1D marginals of a grid density and weighted particles.

    W1 = int |F_grid - F_particles|, sampled at the cell faces, where both CDFs are exact
    (cell masses for the grid, weight counts for the particles).
    """
    total = 0.0
    for k in range(grid.ndim):
        other = tuple(i for i in range(grid.ndim) if i != k)
        F_grid = np.concatenate([[0.0], np.cumsum(rho.sum(axis=other) * grid.cell_volume)])
        order = np.argsort(u[:, k])
        F_cum = np.concatenate([[0.0], np.cumsum(q[order])])
        F_part = F_cum[np.searchsorted(u[order, k], grid.faces[k], side="right")]
        total += float(np.abs(F_part - F_grid).sum() * grid.spacing[k])
    return total


def particle_vs_grid(cells: int, t_end: float, ms, seeds, nodes: int = 32):
    """Mean W1 of marginals and mean |risk difference| against fv, per m (seeds(m) per m).

    RK4 with lr = 0.1 keeps the particles' time error far below their sampling error.
    """
    problem = build_problem(case_from_text(QUICKSTART, overrides=[f"grid.cells=[{cells}, {cells}]",
                                                                  f"data.nodes={nodes}"]))
    fv = FiniteVolumeStepper(problem, {})
    advance(fv, t_end)
    risk_fv = fv.operator.risk(fv.rho)
    w1, drisk = [], []
    for m in ms:
        runs = []
        for seed in seeds(m):
            s = ParticleStepper(problem, options(particles=m, seed=seed, integrator="rk4", lr=0.1))
            advance(s, t_end)
            runs.append((w1_marginals(problem.grid, fv.rho, s.u, s.weights), abs(s.observe().risk - risk_fv)))
        w1.append(np.mean([r[0] for r in runs]))
        drisk.append(np.mean([r[1] for r in runs]))
    return np.array(w1), np.array(drisk)


def _assert_rates(ms, w1, drisk):
    slope = np.polyfit(np.log(ms), np.log(w1), 1)[0]
    print(f"W1 of marginals {w1}, |risk difference| {drisk}, fitted W1 slope {slope:.3f}")
    assert -0.65 < slope < -0.35
    assert np.all(np.diff(w1) < 0)
    assert drisk[-1] < 0.3 * drisk[0]
    assert np.polyfit(np.log(ms), np.log(drisk), 1)[0] < -0.25


def test_particles_converge_to_fv():
    """Quickstart (16 data nodes) to t = 2: W1 of the 1D marginals falls like m^-1/2 against 64^2 fv.

    8 seeds per m below 3000, 4 above (the seed-to-seed spread of W1 shrinks with m).
    """
    ms = np.array([100, 316, 1000, 3162, 10000])
    w1, drisk = particle_vs_grid(64, 2.0, ms, seeds=lambda m: range(8 if m < 3000 else 4), nodes=16)
    _assert_rates(ms, w1, drisk)


@pytest.mark.slow
def test_particles_converge_to_fv_heavy():
    """The same study with the case's 32 nodes on a 192^2 grid to t = 4, m up to 10^5 (16 seeds, 4 above 10^4)."""
    ms = np.array([100, 316, 1000, 3162, 10000, 31623, 100000])
    w1, drisk = particle_vs_grid(192, 4.0, ms, seeds=lambda m: range(16 if m <= 10000 else 4))
    _assert_rates(ms[:5], w1[:5], drisk[:5])
    assert np.polyfit(np.log(ms), np.log(w1), 1)[0] < -0.35


# ----------------------------------------------------------------------------- deposit

def test_cloud_in_cell_mass_and_moments():
    """Binned mass = the weight inside the box (the rest is outside_mass); CIC keeps the mean."""
    grid = CartesianGrid([(-1.0, 1.0), (0.0, 3.0)], (8, 12))
    rng = np.random.default_rng(0)
    inside = rng.uniform([-0.85, 0.2], [0.85, 2.8], size=(500, 2))
    q = rng.random(500)
    q /= q.sum()
    rho = cloud_in_cell(grid, inside, q)
    assert grid.mass(rho) == pytest.approx(1.0, rel=1e-14)
    cell_masses = rho * grid.cell_volume
    for k, c in enumerate(grid.mesh()):
        assert float((cell_masses * c).sum()) == pytest.approx(q @ inside[:, k], rel=1e-12)
    # a particle on a cell centre stays in it; one far outside is left out (issue 14: the density
    # is that of the particles inside, outside_mass the rest); one in the outer half of a
    # boundary cell goes wholly to it
    centre = np.array([[grid.centres[0][3], grid.centres[1][5]], [9.0, -9.0], [0.99, 0.01]])
    weights = np.array([0.25, 0.5, 0.25])
    rho = cloud_in_cell(grid, centre, weights)
    assert rho[3, 5] * grid.cell_volume == pytest.approx(0.25)
    assert rho[-1, 0] * grid.cell_volume == pytest.approx(0.25)
    assert grid.mass(rho) == pytest.approx(0.5, rel=1e-14)
    assert outside_mass(grid, centre, weights) == 0.5


# ----------------------------------------------------------------------------- reproducibility

SGD_CASE = QUICKSTART.replace("[initial]", "[regularization]\ntemperature = 0.01\n\n[initial]")


def test_same_seed_bitwise_identical(tmp_path):
    """Same seed: identical files' arrays; other seed: different; batch leaves the initial draw."""
    setting = 'solvers=[{kind="particle", particles=300, seed=%d, batch=%d, integrator="%s"}]'
    case = tmp_path / "sgd.toml"
    case.write_text(SGD_CASE)
    arrays = {}
    for name, seed, batch, integrator in (("a", 5, 8, "rk4"), ("b", 5, 8, "rk4"), ("c", 6, 8, "rk4"),
                                         ("d", 5, 0, "euler")):
        out = tmp_path / name
        code = gflow_main(["run", str(case), "-o", str(out), "--solver", "particle", "--set",
                           setting % (seed, batch, integrator), "--set", "time.end=0.5", "--set", "time.snapshots=3"])
        assert code == 0
        with h5py.File(out / "particle.h5", "r") as f:
            arrays[name] = {k: f[k][()] for k in ("positions", "density", "risk", "energy", "weights")}
    for k, v in arrays["a"].items():
        np.testing.assert_array_equal(v, arrays["b"][k])
    assert not np.array_equal(arrays["a"]["positions"][-1], arrays["c"]["positions"][-1])
    np.testing.assert_array_equal(arrays["a"]["positions"][0], arrays["d"]["positions"][0])
    problem = build_problem(case_from_text(SGD_CASE))
    full = ParticleStepper(problem, options(particles=300, seed=5))
    np.testing.assert_array_equal(full.u, arrays["a"]["positions"][0])


def test_restore_continues_bitwise():
    """SGD + noise + adaptive steps: a stepper restored from a snapshot and its restart state
    continues exactly as the uninterrupted one (gflow run --resume)."""
    problem = build_problem(case_from_text(SGD_CASE))
    opts = options(particles=200, seed=2, batch=4, integrator="adaptive", tolerance=1e-5)
    straight = ParticleStepper(problem, opts)
    advance(straight, 0.3)
    resumed = ParticleStepper(problem, opts)
    resumed.restore(None, straight.observe().positions, straight.restart_state())
    for s in (straight, resumed):
        advance(s, 0.3)
    np.testing.assert_array_equal(straight.u, resumed.u)


def test_minibatch_velocity_is_unbiased():
    """The mean of the SGD velocity over many batches is the full-batch velocity."""
    problem = build_problem(case_from_text(QUICKSTART))
    s = ParticleStepper(problem, options(particles=50, batch=4))
    full = particle_velocity(s.model, s.u, s.weights)
    draws = np.array([particle_velocity(s.model, s.u, s.weights, s._draw_batch()) for _ in range(4000)])
    stderr = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - full) < 4 * stderr + 1e-12)
    assert np.abs(draws[0] - full).max() > 1e-3      # a single batch is noisy


# ----------------------------------------------------------------------------- command line

CASES = sorted((ROOT / "cases").glob("*.toml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_cases_run_with_lagrangian_solvers(case: Path, tmp_path, capsys):
    """`gflow run CASE --solver particle,blob` at a smoke size writes files the checker accepts."""
    # a case that lists its times (chizat_relu: whole steps of lr = 1) keeps its first three
    times = ["time.times=[0, 1, 2]"] if "times" in tomllib.loads(case.read_text())["time"] else \
        ["time.end=0.2", "time.snapshots=3"]
    code = gflow_main(["run", str(case), "--solver", "particle,blob", "-o", str(tmp_path), "--set",
                       "solver.particles=400", *[a for t in times for a in ("--set", t)]])
    assert code == 0, capsys.readouterr().err
    for kind in ("particle", "blob"):
        check_snapshot(tmp_path / f"{kind}.h5")
        with h5py.File(tmp_path / f"{kind}.h5", "r") as f:
            # a layered (resnet) run has 400 particles per layer: (T, L, M, D)
            layers = (f["layer"].shape[0],) if "layer" in f else ()
            # (a case's own point masses, or its quadrature rule, set their count)
            text = case.read_text()
            m = f["weights"].shape[0] if "points" in text or (kind == "particle" and 'init = "quadrature"' in text) else 400
            assert f["positions"].shape == (3, *layers, m, len(f.attrs["axes"]))
            assert f.attrs["solver"] == kind


def test_quadrature_with_noise_is_refused_in_one_line(write_case, capsys):
    """Langevin noise would undo the quadrature: the particle solver sends T > 0 to the blob solver."""
    path = write_case(SGD_CASE)
    code = gflow_main(["run", str(path), "--solver", "particle", "--set",
                       'solvers=[{kind="particle", init="quadrature"}]'])
    assert code == 2
    err = capsys.readouterr().err
    assert "init = quadrature with temperature > 0: use the blob solver" in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["particle", "blob"])
def test_frozen_axes_neither_drift_nor_diffuse(kind):
    """Random-feature Langevin: with train = ["a"] no particle moves along w, noise or not."""
    from gflow.case import case_from_text
    from gflow.problem import build_problem
    from gflow.solvers import make_stepper
    text = (ROOT / "cases" / "quickstart.toml").read_text().replace('input_dim = 1', 'input_dim = 1\ntrain = ["a"]')
    case = case_from_text(text, "rf", ["regularization.temperature=0.05", "solver.particles=300"], [kind])
    stepper = make_stepper(kind, build_problem(case), case.solvers[0].options)
    before = stepper.u.copy()
    for _ in range(3):
        stepper.step(0.05)
    # (the blob's Runge-Kutta stages recombine u itself: round-off, no motion)
    np.testing.assert_allclose(stepper.u[:, 1], before[:, 1], rtol=0, atol=1e-14)
    assert np.abs(stepper.u[:, 0] - before[:, 0]).max() > 1e-3
