"""The time integrators, once for every stepper: orders of accuracy and the controller's tolerance."""
import numpy as np
import pytest

from gflow.solvers.integrators import DormandPrince, euler_in_place, rk4_in_place, ssprk3


def rhs(u):
    """du/dt = -u + sin(u): nonlinear, smooth; the exact flow is not needed, a fine RK4 run is."""
    return -u + np.sin(u)


def solve(step, n, t=1.0):
    u = np.array([[1.3, -0.4]])
    h = t / n
    for _ in range(n):
        u = step(u, h)
    return u


def _euler(u, h):
    u = u.copy()
    euler_in_place(u, rhs(u), h)
    return u


def _rk4(u, h):
    u = u.copy()
    rk4_in_place(u, rhs, h, rhs(u))
    return u


def _ssprk3(u, h):
    return ssprk3(u, rhs, h)


@pytest.mark.parametrize("step,order", [(_euler, 1), (_ssprk3, 3), (_rk4, 4)])
def test_observed_order(step, order):
    exact = solve(_rk4, 4096)
    ns = np.array([16, 32, 64])
    errors = [np.abs(solve(step, n) - exact).max() for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, (errors, slope)


def test_ssprk3_uses_the_given_first_stage():
    u = np.array([[0.7, 0.1]])
    np.testing.assert_array_equal(ssprk3(u, rhs, 0.1), ssprk3(u, rhs, 0.1, first=rhs(u)))


def test_dormand_prince_meets_its_tolerance_and_adapts():
    exact = solve(_rk4, 4096)
    for tol in (1e-4, 1e-8):
        dp = DormandPrince(tol, first_step=0.5)
        u, t, steps = np.array([[1.3, -0.4]]), 0.0, 0
        k = rhs(u)
        while t < 1.0:
            u, h, k = dp.step(u, rhs, min(dp.h_next, 1.0 - t), k, np.ones(1), 1.0 - t)
            t = 1.0 if h >= (1.0 - t) * (1 - 1e-12) else t + h
            steps += 1
        assert np.abs(u - exact).max() < 30 * tol
        if tol == 1e-4:
            coarse = steps
    assert steps > coarse      # a tighter tolerance takes more steps
