"""The explicit finite-volume solver against exact solutions, invariants and its order."""
import numpy as np
import pytest

from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.grids import gaussian_cell_average
from gflow.solvers.fv import FiniteVolumeStepper


def potential_case(D, n, potential, temperature=0.0, mean=None, std=0.6, L=4.0, interaction=None):
    axes = ["x", "y", "z"][:D]
    mean = mean or [1.0, -0.5, 0.3][:D]
    return f"""
[model]
kind = "potential"
axes = {axes}
potential = "{potential}"
{f'interaction = "{interaction}"' if interaction else ''}
[regularization]
temperature = {temperature}
[initial]
mean = {mean}
std = {[std] * D}
[grid]
bounds = {[[-L, L]] * D}
cells = {[n] * D}
[time]
end = 1.0
"""


def advance(stepper, end):
    t = 0.0
    while t < end:
        dt = stepper.step(end - t)
        t = end if dt >= end - t else t + dt
    return stepper


def moments(grid, rho):
    vol = grid.cell_volume
    mesh = grid.mesh()
    mean = np.array([(c * rho).sum() * vol for c in mesh])
    var = np.array([((c - m) ** 2 * rho).sum() * vol for c, m in zip(mesh, mean)])
    return mean, var


@pytest.mark.parametrize("potential,T,law", [
    ("0.5*(x**2 + y**2)", 0.5, "ou"),      # Ornstein-Uhlenbeck
    ("0", 0.3, "heat"),                     # heat equation
])
def test_gaussian_stays_gaussian_2d(potential, T, law):
    """Mean and variance follow the closed form (moments of exact cell averages, so the
    h^2/12 of cell averaging cancels and what remains is the scheme's error)."""
    end, mean0, var0 = 1.0, np.array([1.0, -0.5]), 0.36
    problem = build_problem(case_from_text(potential_case(2, 64, potential, T, L=5.0)))
    stepper = advance(FiniteVolumeStepper(problem, {}), end)
    if law == "ou":
        mean, var = mean0 * np.exp(-end), T + (var0 - T) * np.exp(-2 * end)
    else:
        mean, var = mean0, var0 + 2 * T * end
    exact = gaussian_cell_average(problem.grid, mean, [np.sqrt(var)] * 2)
    m_num, v_num = moments(problem.grid, stepper.rho)
    m_ex, v_ex = moments(problem.grid, exact)
    np.testing.assert_allclose(m_num, m_ex, atol=1e-3)
    np.testing.assert_allclose(v_num, v_ex, rtol=1e-2)   # second order: 0.55% at h = 0.16
    assert np.abs(stepper.rho - exact).sum() * problem.grid.cell_volume < 5e-3


def test_second_order_convergence():
    """L1 error against the exact Ornstein-Uhlenbeck solution: fitted slope near -2."""
    ns = [64, 128, 256]
    errors = []
    for n in ns:
        problem = build_problem(case_from_text(potential_case(1, n, "0.5*x**2", 0.5, mean=[1.0])))
        stepper = advance(FiniteVolumeStepper(problem, {}), 1.0)
        var = 0.5 + (0.36 - 0.5) * np.exp(-2.0)
        exact = gaussian_cell_average(problem.grid, [np.exp(-1.0)], [np.sqrt(var)])
        errors.append(np.abs(stepper.rho - exact).sum() * problem.grid.cell_volume)
    slope = np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert -2.3 < slope < -1.7, (errors, slope)
    assert errors[-1] < 3e-4


def test_semicircle_steady_state():
    """W = r^2/2 - log r in 1D: L1 distance to the semicircle at the centre of mass falls."""
    errors, drifts = [], []
    for n in (50, 100, 200):
        text = potential_case(1, n, "0", mean=[0.3], std=0.5, L=2.0, interaction="0.5*r**2 - log(r)")
        problem = build_problem(case_from_text(text))
        stepper = FiniteVolumeStepper(problem, {})
        x = problem.grid.centres[0]
        centre = (x * stepper.rho).sum() * problem.grid.cell_volume
        advance(stepper, 10.0)
        # the symmetric interaction conserves the centre of mass, up to the upwinding
        drifts.append(abs((x * stepper.rho).sum() * problem.grid.cell_volume - centre))
        exact = np.sqrt(np.clip(2 - (x - centre) ** 2, 0, None)) / np.pi
        errors.append(np.abs(stepper.rho - exact).sum() * problem.grid.cell_volume)
    assert errors[0] > errors[1] > errors[2]
    assert errors[-1] < 1.5e-3
    assert drifts[0] > drifts[-1] and drifts[-1] < 1e-4


def test_disk_steady_state():
    """W = r^2/2 - log r in 2D: the uniform density 1/pi on the unit disk."""
    errors = []
    for n in (24, 48):
        text = potential_case(2, n, "0", mean=[0.3, -0.2], std=0.5, L=2.0, interaction="0.5*r**2 - log(r)")
        problem = build_problem(case_from_text(text))
        stepper = advance(FiniteVolumeStepper(problem, {}), 6.0)
        X, Y = problem.grid.mesh()
        exact = ((X - 0.3) ** 2 + (Y + 0.2) ** 2 < 1) / np.pi
        errors.append(np.abs(stepper.rho - exact).sum() * problem.grid.cell_volume)
    assert errors[1] < 0.7 * errors[0]
    assert errors[1] < 0.06


LANGEVIN = """
[model]
kind = "two_layer"
activation = "tanh"
[target]
neurons = [{{ a = 1.5, w = 2.0 }}]
[data]
nodes = 16
[regularization]
weight_decay = 1.0
temperature = 0.1
[initial]
mean = [0.0, 0.0]
std = [0.5, 0.8]
[grid]
bounds = [[-3.0, 3.0], [-3.0, 3.0]]
cells = [{n}, {n}]
[time]
end = 12.0
"""


def test_mean_field_langevin_fixed_point():
    """At the steady state rho = exp(-V[rho]/T)/Z with V computed from rho itself."""
    errors = []
    for n in (24, 48):
        problem = build_problem(case_from_text(LANGEVIN.format(n=n)))
        stepper = advance(FiniteVolumeStepper(problem, {}), 12.0)
        V = stepper.operator.potential(stepper.rho)
        gibbs = np.exp(-(V - V.min()) / 0.1)
        gibbs /= problem.grid.mass(gibbs)
        errors.append(np.abs(stepper.rho - gibbs).sum() * problem.grid.cell_volume)
    assert errors[1] < 0.5 * errors[0]
    assert errors[1] < 0.03


def test_invariants_along_a_run():
    """Mass to 1e-12, rho >= 0 at every step, energy non-increasing (quickstart-like, T > 0)."""
    text = LANGEVIN.format(n=32).replace("end = 12.0", "end = 3.0")
    problem = build_problem(case_from_text(text))
    stepper = FiniteVolumeStepper(problem, {})
    energies, masses = [stepper.operator.energy(stepper.rho)], [problem.grid.mass(stepper.rho)]
    t = 0.0
    while t < 3.0:
        t += stepper.step(3.0 - t)
        assert stepper.rho.min() >= 0.0
        energies.append(stepper.operator.energy(stepper.rho))
        masses.append(problem.grid.mass(stepper.rho))
    assert np.max(np.abs(np.array(masses) - 1.0)) < 1e-12
    rises = np.diff(energies)
    assert rises.max() <= 1e-12 * abs(energies[0]), rises.max()
    assert energies[-1] < energies[0] - 0.01


def test_given_unstable_dt_is_shortened_not_run():
    problem = build_problem(case_from_text(potential_case(1, 64, "0.5*x**2", 0.5, mean=[1.0])))
    stepper = FiniteVolumeStepper(problem, {})
    taken = stepper.step(0.5)
    assert 0 < taken < 0.05 and stepper.limited_steps == 1


def test_frozen_axes_neither_drift_nor_diffuse():
    """Random-feature Langevin: with train = ["a"] the w-marginal stays exactly as it was."""
    text = LANGEVIN.format(n=24).replace('activation = "tanh"', 'activation = "tanh"\ntrain = ["a"]')
    problem = build_problem(case_from_text(text))
    for kernel in ("numba", "numpy"):
        stepper = FiniteVolumeStepper(problem, {"kernel": kernel})
        before = stepper.rho.sum(axis=0)
        advance(stepper, 1.0)
        np.testing.assert_allclose(stepper.rho.sum(axis=0), before, rtol=1e-12, atol=1e-15)
        assert np.abs(stepper.rho - problem.initial_density()).max() > 1e-3   # a did move
