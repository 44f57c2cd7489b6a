"""The resnet's training schedules: `refresh = k` (frozen sweeps) and the extended MSA (`msa_rho`).

- the extended MSA's velocity is minus the gradient of its layer functional (finite
  differences, particles), and the grid's face velocities are the same formula at the faces;
- `refresh = k` sweeps once per k steps counted from each snapshot, and a run resumed from a
  snapshot continues bitwise;
- on a case where the plain MSA (refresh large, no penalty) overshoots, the penalty keeps
  the risk going down.
"""
from __future__ import annotations

import numpy as np
import pytest

from gflow.case import case_from_text
from gflow.models.resnet_depth import layer_gradient, msa_residuals
from gflow.problem import build_problem


def resnet_case(model: str = "", extra: str = "", d: int = 1, bias: bool = False, cells: int = 12) -> str:
    D = 2 * d + bias
    mean = [0.1, 0.3, 0.05][:D] if d == 1 else [0.1 * (i + 1) * (-1) ** i for i in range(D)]
    target = "tanh(2*x)" if d == 1 else "x1*x2"
    return f"""
[model]
kind = "resnet"
activation = "tanh"
layers = 3
input_dim = {d}
bias = {str(bias).lower()}
{model}
[target]
expression = "{target}"
[data]
distribution = "uniform"
nodes = 6
[initial]
mean = {mean}
std = {[0.4] * D}
[grid]
bounds = {[[-2.0, 2.0]] * D}
cells = {cells}
[time]
end = 1.0
snapshots = 3
{extra}
"""


def augmented(model, u, q, sw, rho):
    """sum_l (the extended MSA's layer functional with z_l, P_{l+1} of `sw` frozen):
    E[P . F_l] + rho/2 E|F_l - F_l^k|^2 + rho/2 E|J_l^T P - (J_l^T P)^k|^2."""
    total = 0.0
    for l, layer in enumerate(model.effective_layers(u, q, model.groups(u))):
        e, e2 = msa_residuals(layer, sw, l, model.sigma, model.dsigma)
        F = model.sigma(layer.preactivation(sw.z[l])) @ layer.A
        total += model.p @ (np.einsum("ij,ij->i", sw.P[l], F) + 0.5 * rho * np.einsum("ij,ij->i", e, e)
                            + 0.5 * rho * np.einsum("ij,ij->i", e2, e2))
    return total


@pytest.mark.parametrize("d, bias", [(1, True), (2, True)])
def test_msa_velocity_is_minus_the_gradient_of_the_augmented_functional(d, bias):
    rho = 0.7
    problem = build_problem(case_from_text(resnet_case(f"refresh = 5\nmsa_rho = {rho}", d=d, bias=bias)))
    model = problem.model
    rng = np.random.default_rng(3)
    u0 = problem.sample_initial(4, rng)
    q = np.full(len(u0), 1.0 / len(u0))
    model.begin_step(True)
    model.velocity(u0, q)                     # the sweep, frozen at u0
    u = u0 + 0.1 * rng.standard_normal(u0.shape) * model.trained
    v = model.velocity(u, q)                  # frozen sweep, current neurons
    sw = model.schedule.frozen[0]
    h = 1e-6
    fd = np.zeros_like(u)
    for j in range(len(u)):
        for k in range(1, u.shape[1]):
            up, um = u.copy(), u.copy()
            up[j, k] += h
            um[j, k] -= h
            fd[j, k] = (augmented(model, up, q, sw, rho) - augmented(model, um, q, sw, rho)) / (2 * h)
    expected = -fd / (model.layers * q[:, None])
    assert np.abs(v - expected).max() < 1e-8 * np.abs(v).max()
    # and it is not the plain gradient: the penalty acts once rho moved away from the sweep's
    plain = -np.concatenate([np.zeros((len(u), 1)), np.concatenate([
        layer_gradient(u[idx, 1:], sw.z[l], sw.P[l], model.p, d, bias, model.sigma, model.dsigma)
        for l, idx in enumerate(model.groups(u))])], axis=1)
    assert np.abs(v - plain).max() > 1e-3 * np.abs(v).max()


def test_grid_msa_velocities_are_the_particle_formula_at_the_faces():
    """Each face velocity of the grid operator is -(dV/du_k) of `layer_gradient` (msa terms
    included) at the face point, for the effective neurons of the current grid density."""
    problem = build_problem(case_from_text(resnet_case("refresh = 4\nmsa_rho = 0.9", bias=True, cells=8)))
    model, grid = problem.model, problem.grid
    op = problem.grid_operator()
    rho0 = problem.initial_density()
    model.begin_step(True)
    op.face_velocities(rho0)                  # freezes the sweep at rho0
    sw = model.schedule.frozen
    rho = rho0 * (1 + 0.3 * np.sin(np.arange(rho0.size)).reshape(rho0.shape))
    v = op.face_velocities(rho)
    layers = op.layers(rho)
    for axis in (1, 2, 3):
        mesh = np.meshgrid(*[grid.faces[i] if i == axis else grid.centres[i] for i in range(1, 4)], indexing="ij")
        points = np.stack([c.ravel() for c in mesh], axis=1)
        for l in range(model.layers):
            msa = (0.9, *msa_residuals(layers[l], sw, l, model.sigma, model.dsigma), model.d2sigma)
            g = layer_gradient(points, sw.z[l], sw.P[l], model.p, 1, True, model.sigma, model.dsigma, msa)
            expected = -g[:, axis - 1].reshape(mesh[0].shape)
            np.testing.assert_allclose(v[axis][l], expected, rtol=1e-12, atol=1e-14)


def test_refresh_counts_sweeps_per_snapshot_interval():
    """refresh = k: one sweep at the first step after each snapshot and every k steps after it."""
    from gflow.solvers.loop import run
    from gflow.solvers import make_stepper

    case = case_from_text(resnet_case("refresh = 4", extra='[solver]\nkind = "particle"\nparticles = 50\nlr = 0.01'))
    problem = build_problem(case)
    stepper = make_stepper("particle", problem, case.solvers[0].options)
    run(stepper, np.linspace(0, 1.0, 3))      # 50 steps per snapshot interval
    assert problem.model.schedule.sweeps == 2 * int(np.ceil(50 / 4))


def test_refresh_resumes_bitwise(tmp_path):
    from gflow.app.execute import run_case
    from gflow.snapshots import open_run

    text = resnet_case("refresh = 7\nmsa_rho = 0.5", extra='[solver]\nkind = "fv"')
    quiet = dict(progress=False, echo=lambda *a: None)
    whole = run_case(case_from_text(text), tmp_path / "whole", **quiet)[0]

    def stop_after_first(index, t, obs):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_case(case_from_text(text), tmp_path / "part", on_snapshot=stop_after_first, **quiet)
    resumed = run_case(case_from_text(text), tmp_path / "part", resume=True, **quiet)[0]
    a, b = open_run(whole.path), open_run(resumed.path)
    assert np.array_equal(a.snapshot(-1).density, b.snapshot(-1).density)
    assert np.array_equal(a.risk, b.risk)


def test_extended_msa_keeps_descending_where_plain_msa_overshoots(tmp_path):
    """A long frozen interval (200 steps of 0.05 between sweeps) lets the plain MSA run far down
    a stale potential: on f* = 3x its risk goes from 0.65 to 15 in one interval, while the
    feasibility penalty (msa_rho = 1) keeps the same schedule descending (to 0.14)."""
    from gflow.app.execute import run_case
    from gflow.snapshots import open_run

    risks = {}
    for rho in (0.0, 1.0):
        model = "refresh = 200" + (f"\nmsa_rho = {rho}" if rho else "")
        text = resnet_case(model, extra='[solver]\nkind = "particle"\nparticles = 40\nlr = 0.05', cells=8)
        text = text.replace("tanh(2*x)", "3*x").replace("end = 1.0", "end = 10.0").replace("snapshots = 3",
                                                                                            "snapshots = 2")
        run = run_case(case_from_text(text), tmp_path / str(rho), progress=False, echo=lambda *a: None,
                       warn=lambda *a: None)[0]
        risks[rho] = open_run(run.path).risk
    assert risks[0.0][-1] > 10 * risks[0.0][0]      # the plain MSA overshot
    assert risks[1.0][-1] < 0.3 * risks[1.0][0]     # the extended MSA went down
