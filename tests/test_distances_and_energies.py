"""Issue 14, items 4 and 5: the distances of `gflow compare` and what risk and energy mean.

- A translation by s moves any measure exactly |s| in W1 and W2; the projection bounds of the
  sliced fallback are exact for it (the old code raised W_p^p to the power p again: 3.60 for two
  point masses 3 apart in 3-D) and never exceed the exact transport.
- The 1D marginal W1 is exact between the runs' own densities or particles.
- The particle energy with T > 0 is the free energy E of the grid solvers, its entropy term
  estimated from the cloud (Kozachenko-Leonenko); the potential-model risk is SPEC's R of the
  empirical measure, self-interaction included for a W finite at 0.
"""
from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy.stats import wasserstein_distance

import gflow.postprocess.compare as compare
from gflow.case import case_from_text
from gflow.grids import CartesianGrid
from gflow.problem import build_problem
from gflow.snapshots import open_run
from gflow.solver_options import defaults
from gflow.solvers.entropy import kl_neg_entropy
from gflow.solvers.fv import FiniteVolumeStepper
from gflow.solvers.particle import ParticleStepper
from runfiles import CASE_1D, gaussian, write_grid_run, write_particle_run
from test_particle import OU_CASE

CASE_3D = (CASE_1D.replace('axes = ["x"]', 'axes = ["x", "y", "z"]')
           .replace('potential = "0.5*x**2"', 'potential = "0.5*(x**2 + y**2 + z**2)"')
           .replace("mean = [0.0]", "mean = [0.0, 0.0, 0.0]").replace("std = [1.0]", "std = [1.0, 1.0, 1.0]")
           .replace("bounds = [[-6.0, 6.0]]", "bounds = [[-5.0, 5.0], [-5.0, 5.0], [-5.0, 5.0]]")
           .replace("cells = [64]", "cells = [30, 30, 30]"))


# ----------------------------------------------------------------------------- item 4: compare

@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_sliced_w_of_two_point_masses_is_their_distance(ndim):
    a, b = np.zeros((1, ndim)), np.zeros((1, ndim))
    b[0] = 3.0 / np.sqrt(ndim)               # 3 apart, off every axis
    w1, w2 = compare.wasserstein(a, np.ones(1), b, np.ones(1), "sliced")
    assert w1 == pytest.approx(3.0, abs=1e-12) and w2 == pytest.approx(3.0, abs=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_sliced_w_of_shifted_gaussians_is_the_shift(tmp_path, monkeypatch, ndim):
    """Grid runs (shift by whole cells) and particle clouds shifted by any s: W1 = W2 = |s|."""
    monkeypatch.setattr(compare, "PAIR_MAX", 10)
    if ndim == 2:
        box, cells, case, axes = [[-4.0, 4.0]] * 2, (32, 32), None, ("a", "w")
        shift = np.array([0.5, -0.75])
    else:
        box, cells, case, axes = [[-5.0, 5.0]] * 3, (30, 30, 30), CASE_3D, ("x", "y", "z")
        shift = np.array([1.0, -2.0, 1.0]) / 3.0
    kw = {} if case is None else {"case_text": case, "axes": axes}
    std = [0.6, 0.5, 0.7][:ndim]
    a = write_grid_run(tmp_path / "a.h5", box, cells, [gaussian(box, cells, np.zeros(ndim), std)], **kw)
    b = write_grid_run(tmp_path / "b.h5", box, cells, [gaussian(box, cells, shift, std)], **kw)
    c = compare.compare_runs(open_run(a), open_run(b))
    assert c.transport.method == "sliced"
    row = c.rows[0]
    assert row["W1"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)
    assert row["W2"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)
    x = np.random.default_rng(2).normal(0.0, std, size=(400, ndim))
    s = np.random.default_rng(3).normal(size=ndim)
    w1, w2 = compare.wasserstein(x, np.full(400, 1 / 400), x + s, np.full(400, 1 / 400), "sliced")
    assert w1 == pytest.approx(np.linalg.norm(s), rel=1e-12) and w2 == pytest.approx(np.linalg.norm(s), rel=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_sliced_values_bound_exact_transport_from_below(ndim):
    """Different Gaussians and weights: W1 <= W2, each at most the exact (emd) value."""
    rng = np.random.default_rng(ndim)
    xa, xb = rng.normal(0.0, 0.6, size=(150, ndim)), rng.normal(0.3, 1.1, size=(120, ndim))
    ma, mb = rng.random(150), rng.random(120)
    ma, mb = ma / ma.sum(), mb / mb.sum()
    w1, w2 = compare.wasserstein(xa, ma, xb, mb, "sliced")
    e1, e2 = compare.wasserstein(xa, ma, xb, mb, "emd")
    assert w1 <= w2 and w1 <= e1 + 1e-12 and w2 <= e2 + 1e-12
    assert w2 > 0.7 * e2                  # a useful bound, not just a small number


def test_projected_costs_match_pot():
    rng = np.random.default_rng(5)
    pa, pb = rng.normal(size=(300, 7)), rng.normal(0.2, 1.3, size=(200, 7))
    ma, mb = rng.random(300), np.full(200, 1 / 200)
    ma /= ma.sum()
    w1, w2sq = compare.projected_costs(pa, ma, pb, mb)
    np.testing.assert_allclose(w1, ot.wasserstein_1d(pa, pb, ma, mb, p=1), rtol=1e-12)
    np.testing.assert_allclose(w2sq, ot.wasserstein_1d(pa, pb, ma, mb, p=2), rtol=1e-12)


def test_marginal_w1_is_exact_between_a_grid_density_and_particles(tmp_path):
    """64^2 cells against 1000 particles: the transport is coarsened to 32^2 cells, the
    marginal W1 is not (checked against each cell split into 2000 equal point masses)."""
    box, cells = [[-4.0, 4.0]] * 2, (64, 64)
    rho = gaussian(box, cells, [0.2, -0.1], [0.7, 0.9])
    x = np.random.default_rng(7).normal(0.0, [0.8, 0.6], size=(1000, 2))
    a = write_grid_run(tmp_path / "g.h5", box, cells, [rho])
    b = write_particle_run(tmp_path / "p.h5", box, cells, [x])
    c = compare.compare_runs(open_run(a), open_run(b))
    assert "coarsened" in c.transport.description
    grid = CartesianGrid(box, cells)
    sub = 2000
    for k, name in enumerate(("a", "w")):
        masses = rho.sum(axis=1 - k) * grid.cell_volume
        f = grid.faces[k]
        points = (f[:-1, None] + (np.arange(sub) + 0.5) / sub * np.diff(f)[:, None]).ravel()
        exact = wasserstein_distance(points, x[:, k], np.repeat(masses / sub, sub))
        # the split into point masses moves W1 by at most h / (4 sub)
        assert c.rows[0][f"marginal_W1_{name}"] == pytest.approx(exact, abs=grid.spacing[k] / sub)
    assert compare.marginal_w1(("grid", np.array([0.0, 1.0]), np.ones(1)),
                               ("points", np.array([0.5]), np.ones(1))) == pytest.approx(0.25, abs=1e-15)


def test_table_shows_marginal_w1_and_flags_unresolved_distances(tmp_path, capsys):
    box, cells = [[-4.0, 4.0]] * 2, (16, 16)
    near = [gaussian(box, cells, [0.0, 0.0], [0.8, 0.8]), gaussian(box, cells, [0.0, 0.0], [0.8, 0.8])]
    far = [near[0], gaussian(box, cells, [2.0, 0.0], [0.8, 0.8])]
    a = write_grid_run(tmp_path / "a.h5", box, cells, near)
    b = write_grid_run(tmp_path / "b.h5", box, cells, far)
    c = compare.compare_runs(open_run(a), open_run(b), progress=None)
    text = compare.table(c).splitlines()
    first = text.index("") + 1
    titles = text[first].split()
    assert titles[titles.index("W2") + 1:][:2] == ["W1[a]", "W1[w]"]
    rows = [line.split() for line in text[first + 1:first + 3]]     # t, risk A, risk B, A - B, W1, W2, ...
    assert rows[0][4].endswith("*") and rows[0][5].endswith("*")            # 0 < bound
    assert not rows[1][4].endswith("*") and not rows[1][5].endswith("*")    # ~2 > bound
    assert float(rows[1][6]) == pytest.approx(c.rows[1]["marginal_W1_a"], rel=1e-3)
    assert text[-1].startswith("*: below the stated bound")
    assert c.rows[1]["W_bound"] == c.transport.resolution > 0


def test_slow_compare_reports_progress_on_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare, "PROGRESS_AFTER", 0.0)
    box, cells = [[-4.0, 4.0]] * 2, (8, 8)
    rho = [gaussian(box, cells, [0.0, 0.0], [0.8, 0.8])] * 2
    a = write_grid_run(tmp_path / "a.h5", box, cells, rho)
    compare.compare_runs(open_run(a), open_run(a))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith("gflow compare: t = 1 (2 of 2 times")


# ----------------------------------------------------------------------------- item 5: energy and risk

#: the Ornstein-Uhlenbeck case of test_particle.py (T = 0.5), run to t = 0.5
LANGEVIN = OU_CASE.replace("end = 1.0", "end = 0.5")


def test_kl_entropy_estimate_of_a_gaussian():
    """int rho log rho = -log(2 pi e s1 s2) for N(0, diag(s1^2, s2^2)); the estimate's spread is ~1e-2."""
    s = np.array([0.7, 1.3])
    u = np.random.default_rng(0).normal(0.0, s, size=(20000, 2))
    exact = -np.log(2 * np.pi * np.e * s.prod())
    assert kl_neg_entropy(u, np.full(20000, 1 / 20000)) == pytest.approx(exact, abs=0.02)


def test_langevin_particle_energy_is_the_free_energy_of_fv():
    """2-D Ornstein-Uhlenbeck, T = 0.5, t = 0.5, 4000 particles: the energies agree to 0.05
    (measured -0.006 to 0.015 over seeds, Monte Carlo of the risk included); without the entropy
    term the particle energy was 1.15 above fv's."""
    problem = build_problem(case_from_text(LANGEVIN))
    fv = FiniteVolumeStepper(problem, {})
    t = 0.0
    while t < 0.5 * (1 - 1e-12):
        t += fv.step(0.5 - t, False)
    particles = ParticleStepper(problem, {**defaults("particle"), "particles": 4000, "seed": 0})
    for _ in range(100):
        particles.step(0.005, True)
    e_fv, e_p = fv.observe().energy, particles.observe().energy
    assert abs(e_p - e_fv) < 0.05, (e_p, e_fv)


POTENTIAL = """
[model]
kind = "potential"
axes = ["x", "y"]
potential = "0.5*(x**2 + 2*y**2)"
interaction = "{W}"
[initial]
mean = [0.1, -0.2]
std = [0.6, 0.5]
[grid]
bounds = [[-2.5, 2.5], [-2.5, 2.5]]
cells = [8, 8]
[time]
end = 1.0
"""


def _pair_matrix(W, u):
    r = np.sqrt(((u[:, None, :] - u[None, :, :]) ** 2).sum(axis=2))
    with np.errstate(all="ignore"):
        return r, np.asarray(W(r), dtype=float) * np.ones_like(r)


def test_smooth_kernel_risk_is_the_functional_of_the_empirical_measure():
    """W = exp(-r^2): R = sum q_j P_j + 1/2 sum_{j,k} q_j q_k W(|u_j - u_k|), j = k included, so
    splitting each particle into two at the same place leaves R unchanged (m = 200: the
    self-interaction is 1/(2m) = 2.5e-3 here)."""
    model = build_problem(case_from_text(POTENTIAL.format(W="exp(-r**2)"))).model
    u = np.random.default_rng(1).normal(size=(200, 2))
    q = np.full(200, 1 / 200)
    _, w = _pair_matrix(model.W, u)
    P = 0.5 * (u[:, 0] ** 2 + 2 * u[:, 1] ** 2)
    assert model.risk(u, q) == pytest.approx(q @ P + 0.5 * q @ w @ q, rel=1e-13)
    assert model.risk(np.repeat(u, 2, axis=0), np.repeat(q / 2, 2)) == pytest.approx(model.risk(u, q), rel=1e-13)


def test_singular_kernel_risk_leaves_the_self_interaction_out():
    """W = -log r: W(0) is infinite, so R sums the pairs j != k at positive distance only."""
    model = build_problem(case_from_text(POTENTIAL.format(W="0.5*r**2 - log(r)"))).model
    u = np.random.default_rng(2).normal(size=(60, 2))
    q = np.random.default_rng(3).random(60)
    q /= q.sum()
    r, w = _pair_matrix(model.W, u)
    w[r == 0] = 0.0
    P = 0.5 * (u[:, 0] ** 2 + 2 * u[:, 1] ** 2)
    risk = model.risk(u, q)
    assert np.isfinite(risk) and risk == pytest.approx(q @ P + 0.5 * q @ w @ q, rel=1e-13)
