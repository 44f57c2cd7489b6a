"""Every fast evaluation of V and grad V equals the plain reference to 1e-12."""
import numpy as np
import pytest

from gflow.models.units import ACTIVATIONS
from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.models.reference import potential_reference, two_layer_reference


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
    vel = problem.model.velocity(u, np.full(10, 0.1), kernel="numpy")
    assert np.all(vel[:, 1] == 0) and np.any(vel[:, 0] != 0)


POTENTIAL = """
[model]
kind = "potential"
axes = ["x", "y"]
potential = "0.5*(x**2 + 2*y**2) + 0.3*x*y"
interaction = "{W}"
[regularization]
weight_decay = 0.2
[initial]
mean = [0.1, -0.2]
std = [0.6, 0.5]
[grid]
bounds = [[-2.5, 2.5], [-2.5, 2.5]]
cells = [{n}, {n}]
[time]
end = 1.0
"""


@pytest.mark.parametrize("W", ["0.5*r**2 - log(r)", "exp(-r**2)", "r"])
def test_potential_point_path_matches_reference(W):
    """Particle velocity and risk of the potential model against the plain double sums."""
    model = build_problem(case_from_text(POTENTIAL.format(W=W, n=8))).model
    rng = np.random.default_rng(3)
    u = rng.normal(size=(40, 2))
    q = rng.random(40)
    q /= q.sum()
    risk, _, grad = potential_reference(model.P, model.W, model.weight_decay, u, q)
    assert model.risk(u, q) == pytest.approx(risk, rel=1e-12)
    # central differences of step 1e-5: ~1e-9 relative
    np.testing.assert_allclose(model.velocity(u, q), -grad, rtol=1e-7, atol=1e-7)


def test_potential_grid_operator_converges_to_reference():
    """The grid's V (FFT sum of cell integrals of a smooth W) approaches the reference midpoint
    sum over the cell centres at second order in h (the two differ by the cell quadrature and
    the own cell, which the point sum leaves out: both O(h^2)); measured 5.5e-2, 1.7e-2, 3.9e-3.
    So do the centre velocities, -grad V, against central differences of the point sum
    (measured 1.5e-2, 2.4e-3, 6.3e-4)."""
    errors, velocity_errors = [], []
    for n in (12, 24, 48):
        problem = build_problem(case_from_text(POTENTIAL.format(W="exp(-r**2)", n=n)))
        grid, op = problem.grid, problem.grid_operator()
        rho = problem.initial_density()
        source, q = grid.points(), rho.ravel() * grid.cell_volume
        # the same 4 physical points on every grid: centres of 12^2 cells, refined by 2 and 4
        n12 = np.array([[3, 4], [6, 6], [8, 2], [5, 9]])
        index = n12 * (n // 12) + (n // 12 - 1) // 2
        flat = np.ravel_multi_index(index.T, grid.shape)
        _, V, grad = potential_reference(problem.model.P, problem.model.W, problem.model.weight_decay,
                                         source, q, source[flat])
        V_grid = op.potential(rho).ravel()[flat]
        v_grid = np.stack([v.ravel()[flat] for v in op.centre_velocities(rho)], axis=1)
        errors.append(np.abs(V_grid - V).max())
        velocity_errors.append(np.abs(v_grid + grad).max())
    for e, bound in ((errors, 6e-3), (velocity_errors, 1.5e-3)):
        slope = np.polyfit(np.log([12, 24, 48]), np.log(e), 1)[0]
        assert e[-1] < bound and slope < -1.8, (e, slope)
