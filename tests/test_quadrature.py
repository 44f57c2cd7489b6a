"""Quadrature particles (issue 10): the rules integrate exactly what they should, the risk
error falls spectrally in the nodes per axis on a smooth case while random particles of the
same count are far worse, quadrature and random runs agree within the random error bar,
weighted blobs carry the entropy term, and the files pass the snapshot checker."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import check_snapshot
from gflow.case import case_from_text
from gflow.app.cli import main as gflow_main
from gflow.problem import build_problem
from gflow.solver_options import defaults
from gflow.solvers.blob import BlobStepper
from gflow.solvers.particle import ParticleStepper
from gflow.solvers.quadrature import WEIGHT_CUTOFF, gauss_hermite, prune, quadrature_particles
from test_particle import OU_CASE, QUICKSTART, advance


def options(kind="particle", **kw):
    return {**defaults(kind), **kw}


QUICK = build_problem(case_from_text(QUICKSTART))


def final_risk(t_end: float, **kw) -> tuple[float, int]:
    """Risk at t_end of a quickstart particle run (RK4, lr = 0.02 unless given), and m."""
    s = ParticleStepper(QUICK, options(**{"integrator": "rk4", "lr": 0.02, **kw}))
    advance(s, t_end)
    return s.observe().risk, len(s.weights)


# ----------------------------------------------------------------------------- the rules

def test_gauss_hermite_rule_is_exact_to_degree_2n_minus_1():
    """N(mean, diag std^2) in 2D with 6 nodes per axis: every moment of degree <= 11 per axis exact."""
    mean, std = np.array([0.3, -1.0]), np.array([0.5, 2.0])
    u, q = gauss_hermite(mean, std, 6)
    assert u.shape == (36, 2) and q.sum() == pytest.approx(1.0, abs=1e-15)
    z = (u - mean) / std
    gaussian_moments = {0: 1, 2: 1, 4: 3, 6: 15, 8: 105, 10: 945}
    for i in range(12):
        for j in range(12):
            want = gaussian_moments.get(i, 0) * gaussian_moments.get(j, 0)
            monomial = z[:, 0] ** i * z[:, 1] ** j
            assert q @ monomial == pytest.approx(want, abs=1e-13 * (q @ np.abs(monomial)))
    # degree 12 is beyond the rule (E z^12 = 10395)
    assert abs(q @ z[:, 0] ** 12 - 10395) > 1


@pytest.mark.parametrize("n", [200, 201, 600])
def test_large_rules_stay_finite_and_exact(n):
    """numpy's hermegauss gives NaN weights at n = 384; the rules used beyond n = 200 do not."""
    u, q = gauss_hermite([1.0], [2.0], n)
    assert np.all(np.isfinite(q)) and q.sum() == pytest.approx(1.0, abs=1e-14)
    assert q @ u[:, 0] == pytest.approx(1.0, rel=1e-12)
    assert q @ (u[:, 0] - 1.0) ** 4 == pytest.approx(3 * 2.0 ** 4, rel=1e-12)


def test_pruning_drops_tiny_weights_and_renormalises():
    u, q = gauss_hermite([0.0, 0.0], [1.0, 1.0], 48)
    kept_u, kept_q = prune(u, q)
    assert len(kept_q) < 0.5 * len(q)
    assert kept_q.sum() == pytest.approx(1.0, abs=1e-15)
    assert kept_q.min() >= WEIGHT_CUTOFF * kept_q.max() * (1 - 1e-12)
    # the dropped mass is negligible: the second moment is still exact to 1e-10
    assert kept_q @ (kept_u ** 2).sum(axis=1) == pytest.approx(2.0, rel=1e-10)


def test_mixture_and_uniform_rules():
    """Mixture: a rule per component, weights times the component weight; uniform: the cell
    centres with equal weights (case grid, or `nodes` cells per axis)."""
    mixture = QUICKSTART.replace('distribution = "gaussian"\nmean = [0.0, 0.0]\nstd = [0.5, 0.8]',
                                 'distribution = "mixture"\ncomponents = [{ weight = 1.0, mean = [1.0, 0.0], '
                                 'std = [0.3, 0.3] }, { weight = 3.0, mean = [-1.0, 0.5], std = [0.4, 0.2] }]')
    problem = build_problem(case_from_text(mixture))
    u, q = quadrature_particles(problem, options(nodes=10))
    assert q.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(q @ u, 0.25 * np.array([1.0, 0.0]) + 0.75 * np.array([-1.0, 0.5]), atol=1e-13)
    assert q @ u[:, 0] ** 2 == pytest.approx(0.25 * (1 + 0.3 ** 2) + 0.75 * (1 + 0.4 ** 2), rel=1e-13)

    uniform = QUICKSTART.replace('distribution = "gaussian"\nmean = [0.0, 0.0]\nstd = [0.5, 0.8]',
                                 'distribution = "uniform"')
    problem = build_problem(case_from_text(uniform))
    u, q = quadrature_particles(problem, options(nodes=0))
    assert len(q) == problem.grid.size
    np.testing.assert_allclose(q, 1.0 / problem.grid.size, rtol=1e-12)
    np.testing.assert_allclose(np.sort(np.unique(u[:, 1])), problem.grid.centres[1])
    u, q = quadrature_particles(problem, options(nodes=5))
    assert len(q) == 25


# ----------------------------------------------------------------------------- accuracy

def test_spectral_convergence_on_smooth_tanh_case():
    """Quickstart (tanh, 2D) to t = 1 against 48^2 nodes: the risk error falls more than 10x
    from 16^2 to 24^2 nodes; random particles of the same count are 100x worse.

    RK4 with lr = 0.02 for all runs: its time error is common to them, so it cancels from the
    differences (with Euler it would not: its O(dt) error of the mean-field flow is 1e-3).
    """
    reference, _ = final_risk(1.0, init="quadrature", nodes=48)
    error = {}
    for n in (16, 24):
        risk, m = final_risk(1.0, init="quadrature", nodes=n)
        error[n] = abs(risk - reference) / reference
    random = np.mean([abs(final_risk(1.0, particles=m, seed=s)[0] - reference) / reference for s in range(4)])
    print(f"relative risk error: 16^2 nodes {error[16]:.2e}, 24^2 nodes {error[24]:.2e} "
          f"(m = {m}), random m = {m}: {random:.2e}")
    assert error[24] < error[16] / 10
    assert error[16] < 1e-4
    assert random > 100 * error[24]


def test_quadrature_and_random_runs_agree():
    """The quadrature risk (24^2 nodes) lies within the error bar of random runs (8 seeds of 2000)
    at t = 1, and so do the mean neuron (a, w)."""
    s = ParticleStepper(QUICK, options(init="quadrature", nodes=24))
    assert s.integrator == "rk4" and "quadrature, rk4" in s.summary()
    advance(s, 1.0)
    risk_q, mean_q = s.observe().risk, s.weights @ s.u
    risks, means = [], []
    for seed in range(8):
        r = ParticleStepper(QUICK, options(particles=2000, seed=seed, integrator="rk4", lr=0.1))
        advance(r, 1.0)
        risks.append(r.observe().risk)
        means.append(r.weights @ r.u)
    bar = 3 * np.std(risks, ddof=1) / np.sqrt(len(risks))
    assert abs(risk_q - np.mean(risks)) < bar
    bar = 3 * np.std(means, axis=0, ddof=1) / np.sqrt(len(means))
    assert np.all(np.abs(mean_q - np.mean(means, axis=0)) < bar)


def test_weighted_blobs_for_the_entropy_term():
    """2D Ornstein-Uhlenbeck (T = 0.5) with quadrature blobs on the case grid: mean0 e^-t to 1e-5
    and T + (var0 - T) e^-2t to 1.5%, deterministically (the seed plays no part)."""
    problem = build_problem(case_from_text(OU_CASE))
    runs = []
    for seed in (0, 1):
        blobs = BlobStepper(problem, options("blob", init="quadrature", seed=seed))
        q, u0 = blobs.weights, blobs.u.copy()
        advance(blobs, 1.0)
        runs.append(blobs.u)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len(set(q)) > 1 and q.sum() == pytest.approx(1.0, abs=1e-14)
    mean0, var0 = q @ u0, q @ (u0 - q @ u0) ** 2
    mean, var = q @ blobs.u, q @ (blobs.u - q @ blobs.u) ** 2
    np.testing.assert_allclose(mean, mean0 * np.exp(-1.0), rtol=1e-5)
    np.testing.assert_allclose(var, 0.5 + (var0 - 0.5) * np.exp(-2.0), rtol=0.015)


def test_quadrature_refuses_the_plain_sum():
    with pytest.raises(ValueError, match="scaling = mean_field"):
        ParticleStepper(QUICK, options(init="quadrature", scaling="conventional"))


# ----------------------------------------------------------------------------- files

def test_snapshot_files_carry_the_weights(tmp_path):
    """gflow run with quadrature particles (quickstart) and quadrature blobs (OU, T > 0): the files
    pass the checker and store the quadrature weights, which sum to 1."""
    runs = [(QUICKSTART, "particle", 'solvers=[{kind="particle", init="quadrature", nodes=12}]'),
            (OU_CASE, "blob", 'solvers=[{kind="blob", init="quadrature", nodes=20}]')]
    for i, (text, kind, table) in enumerate(runs):
        case = tmp_path / f"case{i}.toml"
        case.write_text(text)
        out = tmp_path / f"run{i}"
        code = gflow_main(["run", str(case), "-o", str(out), "--solver", kind, "--set", table,
                           "--set", "time.end=0.2", "--set", "time.snapshots=3"])
        assert code == 0
        check_snapshot(out / f"{kind}.h5")
        with h5py.File(out / f"{kind}.h5", "r") as f:
            weights = f["weights"][()]
            assert f["positions"].shape[1] == len(weights)
        assert weights.sum() == pytest.approx(1.0, abs=1e-13)
        assert weights.max() > 2 * weights.min()
