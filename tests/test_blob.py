"""The blob method: deterministic heat flow, Ornstein-Uhlenbeck statistics, the mollified
density on the grid, and the neighbour search against the plain O(m^2) sums."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.solver_options import defaults
from gflow.grids import CartesianGrid
from gflow.solvers.blob import MAX_NEIGHBOURS, BlobKernel, BlobStepper, epsilon_rule
from gflow.solvers.deposit import gaussian_blobs
from test_particle import OU_CASE as OU_2D, advance       # the same OU case for both Lagrangian solvers

HEAT_1D = """
[model]
kind = "potential"
axes = ["x"]
potential = "0"
[regularization]
temperature = 1.0
[initial]
distribution = "gaussian"
mean = [0.0]
std = [1.0]
[grid]
bounds = [[-8.0, 8.0]]
cells = [160]
[time]
end = 0.25
"""


def options(**kw):
    return {**defaults("blob"), **kw}


def weighted_moments(u, q):
    mean = q @ u / q.sum()
    return mean, q @ (u - mean) ** 2 / q.sum()


def test_heat_lattice_blobs_keep_the_exact_variance():
    """Blobs on a lattice with Gaussian weights (the published setting): var(t) = 1 + 2 T t to 1%.

    Non-uniform weights exercise the quadrature path; the centre of mass stays put to round-off.
    """
    problem = build_problem(case_from_text(HEAT_1D))
    x = np.linspace(-6.0, 6.0, 241)
    q = np.exp(-x ** 2 / 2)
    q /= q.sum()
    blobs = BlobStepper(problem, options(particles=len(x), epsilon=epsilon_rule(x[1] - x[0])))
    blobs.u[:, 0], blobs.weights[:] = x, q
    energies = [blobs.observe().energy]
    for _ in range(5):
        advance(blobs, 0.05)
        energies.append(blobs.observe().energy)
    mean, var = weighted_moments(blobs.u[:, 0], q)
    assert abs(var - 1.5) < 0.01 * 1.5
    assert abs(mean) < 1e-13
    # the regularised energy (T sum q log rho_eps) is dissipated
    assert np.all(np.diff(energies) < 0)
    # the reconstructed density is the heat kernel's N(0, 1.5), mass exactly 1
    obs = blobs.observe()
    grid = problem.grid
    exact = np.diff(ndtr(grid.faces[0] / np.sqrt(1.5))) / grid.cell_volume
    assert obs.mass == pytest.approx(1.0, abs=1e-13)
    assert np.abs(obs.density - exact).sum() * grid.cell_volume < 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_heat_random_blobs_default_epsilon(seed):
    """400 random blobs, default epsilon: var(t) = var(0) + 2 T t within 1% (no noise anywhere)."""
    problem = build_problem(case_from_text(HEAT_1D))
    blobs = BlobStepper(problem, options(particles=400, seed=seed))
    _, var0 = weighted_moments(blobs.u[:, 0], blobs.weights)
    advance(blobs, 0.25)
    _, var = weighted_moments(blobs.u[:, 0], blobs.weights)
    assert abs(var - (var0 + 0.5)) < 0.01 * (var0 + 0.5)


def test_ornstein_uhlenbeck_lattice_blobs():
    """2D OU from lattice blobs with Gaussian weights: mean0 e^-t and T + (var0 - T) e^-2t to 1%."""
    problem = build_problem(case_from_text(OU_2D))
    h = 0.2
    x, y = np.meshgrid(np.arange(-2.0, 4.0 + h / 2, h), np.arange(-5.0, 4.0 + h / 2, h), indexing="ij")
    u = np.stack([x.ravel(), y.ravel()], axis=1)
    q = np.exp(-0.5 * ((u[:, 0] - 1.0) / 0.6) ** 2 - 0.5 * ((u[:, 1] + 0.5) / 1.2) ** 2)
    q /= q.sum()
    blobs = BlobStepper(problem, options(particles=len(u), epsilon=epsilon_rule(h)))
    blobs.u[:], blobs.weights[:] = u, q
    mean0, var0 = weighted_moments(u, q)
    advance(blobs, 1.0)
    mean, var = weighted_moments(blobs.u, q)
    np.testing.assert_allclose(mean, mean0 * np.exp(-1.0), rtol=1e-3)
    np.testing.assert_allclose(var, 0.5 + (var0 - 0.5) * np.exp(-2.0), rtol=0.01)


def test_neighbour_sums_equal_the_plain_sums():
    """The chunked, truncated pair sums equal the O(m^2) sums with the same cutoff."""
    rng = np.random.default_rng(2)
    u = rng.normal(size=(300, 2)) * [1.0, 0.5]
    q = rng.random(300)
    q /= q.sum()
    kernel = BlobKernel(2, 0.05, 3.0)
    d = u[:, None, :] - u[None, :, :]
    r = np.sqrt((d * d).sum(axis=2))
    phi = np.where(r <= kernel.radius, np.exp(-r ** 2 / 0.1) / (2 * np.pi * 0.05), 0.0)
    rho = phi @ q
    v = 0.7 / 0.05 * np.einsum("ij,ijk->ik", phi * q * (1 / rho[:, None] + 1 / rho[None, :]), d)
    import gflow.solvers.blob as blob
    chunk, blob.PAIR_CHUNK = blob.PAIR_CHUNK, 500      # several chunks
    try:
        np.testing.assert_allclose(kernel.density(u, q), rho, rtol=1e-12)
        np.testing.assert_allclose(kernel.diffusion_velocity(u, q, 0.7), v, rtol=1e-10, atol=1e-12)
    finally:
        blob.PAIR_CHUNK = chunk


def test_gaussian_blob_deposit():
    """Cell averages of the blobs: exact mass (tails folded in, centres outside left out), exact shape."""
    grid = CartesianGrid([(-2.0, 2.0), (-1.0, 3.0)], (40, 20))
    eps = 0.04
    u = np.array([[0.3, 1.1], [1.95, -0.9], [7.0, 7.0]])
    q = np.array([0.5, 0.3, 0.2])
    rho = gaussian_blobs(grid, u, q, eps, cutoff=4.0)
    # the blob centred outside the box is left out (issue 14: outside_mass holds it)
    assert grid.mass(rho) == pytest.approx(0.8, rel=1e-14)
    assert rho.min() >= 0
    # the first blob lies well inside: its cells hold the exact Gaussian cell integrals
    first = gaussian_blobs(grid, u[:1], q[:1], eps, cutoff=6.0)
    sd = np.sqrt(eps)
    mx = np.diff(ndtr((grid.faces[0] - 0.3) / sd))
    my = np.diff(ndtr((grid.faces[1] - 1.1) / sd))
    np.testing.assert_allclose(first * grid.cell_volume, 0.5 * np.outer(mx, my), atol=1e-10)
    # nothing of the particle outside the box reaches its corner
    assert rho[-1, -1] * grid.cell_volume < 1e-12


def test_blob_runs_reproduce_and_resume_bitwise():
    """Same seed, same positions bitwise; a restored stepper continues exactly."""
    problem = build_problem(case_from_text(OU_2D))
    a, b = (BlobStepper(problem, options(particles=600, seed=9)) for _ in range(2))
    for s in (a, b):
        advance(s, 0.05)
    np.testing.assert_array_equal(a.u, b.u)
    resumed = BlobStepper(problem, options(particles=600, seed=9))
    resumed.restore(None, a.observe().positions, a.restart_state())
    for s in (a, resumed):
        advance(s, 0.05)
    np.testing.assert_array_equal(a.u, resumed.u)


def test_default_epsilon_caps_the_neighbours():
    """Cost per step ~ m x neighbours: the default epsilon keeps the average blob near MAX_NEIGHBOURS."""
    problem = build_problem(case_from_text(OU_2D))
    counts = {}
    for m in (2000, 32000):
        blobs = BlobStepper(problem, options(particles=m))
        counts[m] = sum(len(i) for _, _, i, _, _ in blobs.kernel.pair_chunks(blobs.u)) / m
    assert counts[32000] < 1.5 * MAX_NEIGHBOURS
    assert counts[32000] < 2 * counts[2000]
