"""Every fast evaluation of V and grad V equals the plain reference to 1e-12."""
import numpy as np
import pytest

from gflow.models.units import ACTIVATIONS
from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.models.reference import two_layer_reference


def _problem(activation, bias, d, lam=0.3, train=None):
    axes = 1 + d + bias
    neurons = ", ".join(
        f"{{ a = {a}, w = {[0.7 * (k + 1) * s for k in range(d)]}{', b = 0.2' if bias else ''} }}"
        for a, s in ((1.2, 1.0), (-0.8, -1.3)))
    text = f"""
[model]
kind = "two_layer"
activation = "{activation}"
bias = {str(bias).lower()}
input_dim = {d}
{f'train = {train}' if train else ''}
[target]
neurons = [{neurons}]
[data]
distribution = "gaussian"
nodes = 5
[regularization]
weight_decay = {lam}
[initial]
mean = {[0.0] * axes}
std = {[1.0] * axes}
[grid]
bounds = {[[-2.0, 2.5]] * axes}
cells = {[7, 6, 5][:axes] if axes <= 3 else [4] * axes}
[time]
end = 1.0
"""
    return build_problem(case_from_text(text))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("bias,d", [(False, 1), (True, 1), (False, 2)])
def test_grid_operator_matches_reference(activation, bias, d):
    problem = _problem(activation, bias, d)
    model, grid = problem.model, problem.grid
    op = problem.grid_operator()
    rng = np.random.default_rng(1)
    rho = rng.random(grid.shape)
    rho /= grid.mass(rho)
    source, q = grid.points(), rho.ravel() * grid.cell_volume
    risk, V, _ = two_layer_reference(model.spec.activation, bias, model.x, model.p, model.y, source, q,
                                     source, model.weight_decay)
    assert op.risk(rho) == pytest.approx(risk, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(op.potential(rho).ravel(), V, rtol=1e-12, atol=1e-13)
    for axis, v in enumerate(op.face_velocities(rho)):
        coords = grid.face_mesh(axis)
        full = np.meshgrid(*[np.ravel(c) for c in coords], indexing="ij")
        faces = np.stack([c.ravel() for c in full], axis=1)
        _, _, grad = two_layer_reference(model.spec.activation, bias, model.x, model.p, model.y, source, q,
                                         faces, model.weight_decay)
        np.testing.assert_allclose(v.ravel(), -grad[:, axis], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("bias,d", [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_point_path_matches_reference(activation, bias, d):
    problem = _problem(activation, bias, d)
    model = problem.model
    rng = np.random.default_rng(2)
    u = rng.normal(size=(50, 1 + d + bias))
    q = rng.random(50)
    q /= q.sum()
    risk, V, grad = two_layer_reference(model.spec.activation, bias, model.x, model.p, model.y, u, q, u,
                                        model.weight_decay)
    r = model.residual(u, q)
    assert model.risk(u, q) == pytest.approx(risk, rel=1e-12)
    np.testing.assert_allclose(model.potential(u, r), V, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.gradient(u, r), grad, rtol=1e-12, atol=1e-13)


def test_frozen_axes_do_not_move():
    problem = _problem("tanh", False, 1, train='["a"]')
    op = problem.grid_operator()
    rho = problem.initial_density()
    v = op.face_velocities(rho)
    assert v[0] is not None and v[1] is None
    u = np.random.default_rng(0).normal(size=(10, 2))
    vel = problem.model.velocity(u, problem.model.residual(u, np.full(10, 0.1)))
    assert np.all(vel[:, 1] == 0) and np.any(vel[:, 0] != 0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives(name):
    sigma, dsigma = ACTIVATIONS[name]
    z = np.linspace(-3, 3, 61) + 0.013   # away from relu's kink
    h = 1e-6
    np.testing.assert_allclose(dsigma(z), (sigma(z + h) - sigma(z - h)) / (2 * h), rtol=1e-7, atol=1e-8)
