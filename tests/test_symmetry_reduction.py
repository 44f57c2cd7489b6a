"""The model reduced by rotations against the full d-dimensional one (`two_layer_symmetry`).

The full model's E_x is a tensor Gauss-Hermite rule in R^d and its rotation-invariant density
is a set of neurons spread evenly over the spheres of w_perp (a trapezoid rule on the circle
for d = 3, Gauss-Legendre x trapezoid on S^2 for d = 4): brute force, sharing nothing with the
reduced model's chi and Gegenbauer rules. With the entire unit cos both converge faster than
round-off accumulates, so the reduced V and grad V must equal the full ones to 1e-10.
"""
from __future__ import annotations

import numpy as np
import pytest

from gflow.case import case_from_text
from gflow.models.data import DataMeasure
from gflow.models.two_layer import TwoLayerModel
from gflow.models.two_layer_case import TwoLayerSpec
from gflow.problem import build_problem

TARGET = "cos(1.5*x1) + 0.2*r**2 - 0.1*x1*r**2"
#: Gauss-Legendre nodes in z and trapezoid nodes in phi of the rule on S^2
SPHERE = (16, 32)


def reduced_case(d: int, nodes, activation="cos", bias=True, target=TARGET, extra=""):
    w_bounds = [[-3, 3], [0, 3]] if "x1" in target else [[0, 3]]
    bounds = [[-3, 3], *w_bounds, *([[-3, 3]] if bias else [])]
    axes = len(bounds)
    return case_from_text(f"""
[model]
kind = "two_layer"
activation = "{activation}"
bias = {str(bias).lower()}
symmetry = "rotations"
[data]
distribution = "gaussian"
dim = {d}
nodes = {nodes}
{extra}
[target]
expression = "{target}"
[initial]
distribution = "gaussian"
mean = {[0.0] * axes}
std = {[0.5] * axes}
[grid]
bounds = {bounds}
cells = {[4] * axes}
[time]
end = 1.0
[solver]
kind = "particle"
""", "<test>")


def sphere_directions(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of R^k and weights integrating trigonometric-like functions on S^{k-1}."""
    if k == 2:
        phi = 2 * np.pi * np.arange(64) / 64
        return np.column_stack([np.cos(phi), np.sin(phi)]), np.full(64, 1 / 64)
    z, wz = np.polynomial.legendre.leggauss(SPHERE[0])
    phi = 2 * np.pi * np.arange(SPHERE[1]) / SPHERE[1]
    Z, PHI = np.meshgrid(z, phi, indexing="ij")
    rho = np.sqrt(1 - Z**2)
    dirs = np.column_stack([rho.ravel() * np.cos(PHI.ravel()), rho.ravel() * np.sin(PHI.ravel()), Z.ravel()])
    return dirs, (np.repeat(wz, SPHERE[1]) / 2 / SPHERE[1])


def full_model(d: int, nodes: tuple[int, int], bias: bool, activation="cos", target=TARGET):
    """The d-dimensional model on a tensor Gauss-Hermite rule, nodes[0] in x1 (where the target
    varies fastest) and nodes[1] in each other coordinate."""
    from gflow.expr import parse_expression

    ws = tuple(f"w{i + 1}" for i in range(d))
    axes = ("a", *ws, *(("b",) if bias else ()))
    spec = TwoLayerSpec("two_layer", axes, activation, bias, d, axes)
    f = parse_expression(target, ["x1", "r"])
    rules = [np.polynomial.hermite_e.hermegauss(n) for n in (nodes[0], *[nodes[1]] * (d - 1))]
    x = np.stack([g.ravel() for g in np.meshgrid(*[t for t, _ in rules], indexing="ij")], axis=1)
    p = np.ones(())
    for _, w in rules:
        p = np.multiply.outer(p, w / w.sum())
    return TwoLayerModel(spec, DataMeasure(x, p.ravel(), None), lambda x: f(x[:, 0], np.linalg.norm(x, axis=1)))


def lifted(v: np.ndarray, q: np.ndarray, d: int):
    """Each reduced neuron (a, w_par, w_perp, b) spread over its sphere of w_perp."""
    dirs, wd = sphere_directions(d - 1)
    n, K = len(v), len(dirs)
    u = np.zeros((n * K, d + 2))
    u[:, 0] = np.repeat(v[:, 0], K)
    u[:, 1] = np.repeat(v[:, 1], K)
    u[:, 2:1 + d] = np.repeat(v[:, 2:3], K, axis=0) * np.tile(dirs, (n, 1))
    u[:, -1] = np.repeat(v[:, 3], K)
    return u, np.outer(q, wd).ravel()


def embed(v: np.ndarray, d: int) -> np.ndarray:
    """The point (a, w_par e1 + w_perp e2, b) of the full space with invariants v."""
    u = np.zeros((len(v), d + 2))
    u[:, :3] = v[:, :3]
    u[:, -1] = v[:, 3]
    return u


@pytest.mark.parametrize("d, full_nodes", [(3, (28, 24)), (4, (28, 14))])
def test_reduced_potential_and_gradient_equal_the_full_ones(d, full_nodes):
    rng = np.random.default_rng(d)
    reduced = build_problem(reduced_case(d, 24)).model
    full = full_model(d, full_nodes, bias=True)
    # a rotation-invariant density of 3 spheres of neurons, and random points to evaluate at
    v = np.column_stack([rng.normal(0, 1, 3), rng.normal(0, 0.6, 3), rng.uniform(0.1, 0.9, 3), rng.normal(0, 0.5, 3)])
    q = np.array([0.5, 0.3, 0.2])
    u_full, q_full = lifted(v, q, d)
    points = np.column_stack([rng.normal(0, 1, 6), rng.normal(0, 0.7, 6), rng.uniform(0.0, 1.0, 6), rng.normal(0, 0.5, 6)])

    r_red, r_full = reduced.residual(v, q), full.residual(u_full, q_full)
    assert reduced.risk_from_residual(r_red) == pytest.approx(full.risk_from_residual(r_full), abs=1e-10)
    V_red, V_full = reduced.potential(points, r_red), full.potential(embed(points, d), r_full)
    np.testing.assert_allclose(V_red, V_full, rtol=0, atol=1e-10)
    g_red, g_full = reduced.gradient(points, r_red), full.gradient(embed(points, d), r_full)
    np.testing.assert_allclose(g_red, g_full[:, [0, 1, 2, -1]], rtol=0, atol=1e-10)
    # the gradient has no component across the plane of e1 and w_perp (the velocity is equivariant)
    np.testing.assert_allclose(g_full[:, 3:1 + d], 0.0, atol=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_fused_kernel_averages_over_the_cosines_as_the_numpy_path_does(activation):
    reduced = build_problem(reduced_case(40, "[16, 8, 8]", activation=activation,
                                         extra="")).model
    rng = np.random.default_rng(5)
    u = np.column_stack([rng.normal(0, 1, 500), rng.normal(0, 0.5, 500), rng.uniform(0, 2, 500), rng.normal(0, 0.5, 500)])
    q = np.full(500, 1 / 500)
    np.testing.assert_allclose(reduced.velocity(u, q, kernel="numba"), reduced.velocity(u, q, kernel="numpy"),
                               rtol=0, atol=1e-12)
    assert reduced.risk(u, q, kernel="numba") == pytest.approx(reduced.risk(u, q, kernel="numpy"), abs=1e-13)


def test_the_radial_drift_and_the_free_energy_with_noise():
    """T > 0: the particle velocity and the grid's centre velocities carry the same drift
    (d - 2) T / w_perp, and fv's free energy (with -T (d - 2) int rho log w_perp) decreases."""
    from gflow.solver_options import defaults
    from gflow.solvers import make_stepper

    case = reduced_case(12, "[16, 8, 8]", activation="tanh", bias=False)
    text = case.text_for(case.solvers[0]).replace('kind = "particle"', 'kind = "fv"')
    text += "\n[regularization]\ntemperature = 0.01\nweight_decay = 0.05\n"
    problem = build_problem(case_from_text(text, "<noisy>", overrides=["grid.cells=[16, 16, 20]",
                                                                       "initial.std=[0.5, 0.5, 0.25]"]))
    stepper = make_stepper("fv", problem, defaults("fv"))
    op, grid = stepper.operator, problem.grid
    centres = np.stack([c.ravel() for c in np.meshgrid(*grid.centres, indexing="ij")], axis=1)
    rho = stepper.rho
    masses = (rho * grid.cell_volume).ravel()
    v_model = problem.model.velocity(centres, masses, kernel="numpy")
    v_grid = np.stack([v.ravel() for v in op.centre_velocities(rho)], axis=1)
    np.testing.assert_allclose(v_model, v_grid, rtol=0, atol=1e-12)
    model = problem.model
    plain = -model.gradient(centres, model.residual(centres, masses))[:, 2]
    np.testing.assert_allclose(v_model[:, 2] - plain, 10 * 0.01 / centres[:, 2], rtol=1e-12)
    energies, t = [stepper.observe().energy], 0.0
    for target in (0.25, 0.5, 0.75, 1.0):
        while t < target * (1 - 1e-14):
            t += stepper.step(target - t)
        obs = stepper.observe()
        energies.append(obs.energy)
        assert abs(obs.mass - 1) < 1e-12 and stepper.rho.min() >= 0
    assert np.all(np.diff(energies) < 0), energies


def test_the_isotropic_reduction_equals_the_full_model():
    """A target in |x| only: invariants (a, w_norm, b), cosine weight (1 - c^2)^((d-3)/2), |x| ~ chi_d.
    Against d = 3 with each neuron spread over its sphere S^2 of w."""
    target = "cos(r) + 0.1*r**2"
    rng = np.random.default_rng(7)
    reduced = build_problem(reduced_case(3, 24, target=target, extra="")).model
    assert reduced.axes == ("a", "w_norm", "b")
    full = full_model(3, (24, 24), bias=True, target=target)
    v = np.column_stack([rng.normal(0, 1, 3), rng.uniform(0.1, 0.9, 3), rng.normal(0, 0.5, 3)])
    q = np.array([0.5, 0.3, 0.2])
    dirs, wd = sphere_directions(3)
    u_full = np.zeros((3 * len(dirs), 5))
    u_full[:, 0] = np.repeat(v[:, 0], len(dirs))
    u_full[:, 1:4] = np.repeat(v[:, 1:2], len(dirs), axis=0) * np.tile(dirs, (3, 1))
    u_full[:, 4] = np.repeat(v[:, 2], len(dirs))
    q_full = np.outer(q, wd).ravel()
    points = np.column_stack([rng.normal(0, 1, 6), rng.uniform(0.0, 1.0, 6), rng.normal(0, 0.5, 6)])
    at = np.zeros((6, 5))
    at[:, [0, 1, 4]] = points            # w = w_norm e1
    r_red, r_full = reduced.residual(v, q), full.residual(u_full, q_full)
    assert reduced.risk_from_residual(r_red) == pytest.approx(full.risk_from_residual(r_full), abs=1e-10)
    np.testing.assert_allclose(reduced.potential(points, r_red), full.potential(at, r_full), rtol=0, atol=1e-10)
    g_full = full.gradient(at, r_full)
    np.testing.assert_allclose(reduced.gradient(points, r_red), g_full[:, [0, 1, 4]], rtol=0, atol=1e-10)
    np.testing.assert_allclose(g_full[:, 2:4], 0.0, atol=1e-10)
