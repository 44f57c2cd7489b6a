"""A linear two-layer net with weight decay: the risk curve in closed form, and every grid solver.

f(x) = E_rho[a w] x learns f* = c x on x ~ U[-1, 1] (s2 = E x^2 = 1/3) with weight decay lam
and no noise. V(a, w) = (M - c) s2 a w + lam (a^2 + w^2) / 2 with M = E[a w], so each neuron
moves linearly and the moments M and S = E[a^2 + w^2] obey the closed system

    M' = -(M - c) s2 S - 2 lam M,    S' = -4 (M - c) s2 M - 2 lam S,

with R = s2 (M - c)^2 / 2. Integrated to 1e-12 by scipy, it is the reference each solver's
risk is held to (relative to R(0), the largest error over 9 snapshot times). The Gaussian
stays Gaussian, stretched along a = w and compressed along a = -w: smooth, inside the box.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from conftest import has_module
from gflow.case import case_from_text
from gflow.errors import RunError
from gflow.problem import build_problem
from gflow.solver_options import defaults
from gflow.solvers import make_stepper

LAM, C, END, S2 = 0.2, 2.0, 4.0, 1.0 / 3.0
TEXT = f"""
[model]
kind = "two_layer"
activation = "linear"
bias = false
input_dim = 1
[target]
expression = "{C}*x"
[data]
distribution = "uniform"
low = -1.0
high = 1.0
nodes = 8
[regularization]
weight_decay = {LAM}
[initial]
distribution = "gaussian"
mean = [0.3, 0.2]
std = [0.4, 0.4]
[grid]
bounds = [[-4.0, 4.0], [-4.0, 4.0]]
cells = [64, 64]
[time]
end = {END}
"""
TIMES = np.linspace(0.0, END, 9)


def exact_risk() -> np.ndarray:
    def moments(t, y):
        M, S = y
        return [-(M - C) * S2 * S - 2 * LAM * M, -4 * (M - C) * S2 * M - 2 * LAM * S]
    # the box holds the Gaussian to e^-(3.7/0.4)^2 / 2: its moments are the untruncated ones
    M0, S0 = 0.3 * 0.2, 0.3**2 + 0.2**2 + 2 * 0.4**2
    sol = solve_ivp(moments, (0.0, END), [M0, S0], rtol=1e-12, atol=1e-14, dense_output=True)
    return 0.5 * S2 * (sol.sol(TIMES)[0] - C) ** 2


EXACT = exact_risk()


def risk_error(kind: str, n: int, **options) -> float:
    """max_t |R_h(t) - R(t)| / R(0) over the snapshot times."""
    problem = build_problem(case_from_text(TEXT, overrides=[f"grid.cells=[{n},{n}]"]))
    stepper = make_stepper(kind, problem, {**defaults(kind), **options})
    t, errors = 0.0, [abs(stepper.observe().risk - EXACT[0])]
    for target, exact in zip(TIMES[1:], EXACT[1:]):
        while t < target * (1 - 1e-14):
            t += stepper.step(target - t)
        errors.append(abs(stepper.observe().risk - exact))
    return max(errors) / EXACT[0]


def test_fv_is_second_order_to_the_closed_form():
    """Measured 3.2e-3 on 80^2, 8.8e-4 on 160^2 (the initial cell averages' h^2/12 included)."""
    coarse, fine = risk_error("fv", 80), risk_error("fv", 160)
    assert fine < 1e-3 and fine < coarse / 3.0, (coarse, fine)


def test_spectral_is_spectrally_accurate_where_it_resolves_the_compressed_gaussian():
    """160^2: 1.2e-5 (fv: 8.8e-4). On 80^2 the Gaussian, compressed along a = -w at rate
    ~0.85, falls below the grid's resolution near t = 2.8: the run stops and says so."""
    assert risk_error("spectral", 160) < 5e-5
    with pytest.raises(RunError, match="concentrates"):
        risk_error("spectral", 80)


@pytest.mark.skipif(not has_module("fipy"), reason="needs FiPy")
def test_fipy_tvd_is_closer_than_upwind():
    """40^2 at the default cfl 5: tvd 1.0e-2, upwind 1.6e-2; at cfl 1, tvd 6.2e-3 (fv 6.5e-3):
    at cfl 5 backward Euler's time error dominates (docs/solvers.md)."""
    tvd, upwind = risk_error("fipy", 40), risk_error("fipy", 40, convection="upwind")
    assert tvd < 0.012 and tvd < 0.75 * upwind, (tvd, upwind)
