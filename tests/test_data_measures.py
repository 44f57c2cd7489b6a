"""Data measures (issue 18, item 2): the Lebesgue measure of uniform data, data given inline,
points on a sphere, and [target] refused beside data that carry y.

The Lebesgue risk is held to exact integrals: 1/2 int (f - f*)^2 dx of a polynomial residual
(in rational arithmetic) and of a Gaussian (by erf), and minibatch SGD on it stays unbiased.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from gflow.solvers import make_stepper
from gflow.solvers.particle import ParticleStepper, particle_velocity
from scipy.special import erf

from gflow.case import case_from_text
from gflow.errors import InputError
from gflow.models import data_case
from gflow.models.data import build_data
from gflow.models.two_layer_case import DataSpec, data_nodes
from gflow.problem import build_problem
from gflow.solver_options import defaults

REST = """
[initial]
mean = [MEAN]
std = [STD]
[grid]
bounds = [BOUNDS]
cells = [CELLS]
[time]
end = 0.1
snapshots = 2
"""


def case_text(data: str, target: str | None = 'expression = "x**3 - 2*x + 1"', activation: str = "linear",
              input_dim: int = 1) -> str:
    ndim = 1 + input_dim
    rest = (REST.replace("MEAN", ", ".join(["0.0"] * ndim)).replace("STD", ", ".join(["0.5"] * ndim))
            .replace("BOUNDS", ", ".join(["[-3.0, 3.0]"] * ndim)).replace("CELLS", ", ".join(["8"] * ndim)))
    head = f'[model]\nkind = "two_layer"\nactivation = "{activation}"\ninput_dim = {input_dim}\n'
    return head + (f"[target]\n{target}\n" if target else "") + f"[data]\n{data}\n" + rest


def model_of(text: str):
    return build_problem(case_from_text(text, "c.toml")).model


def refused(text: str, key: str, words: str, tmp_path=None) -> str:
    with pytest.raises(InputError) as info:
        case_from_text(text, "c.toml", base_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"c.toml: {key}: " in message and words in message, message
    return message


# ----------------------------------------------------------------------------- the Lebesgue measure

def exact_square_integral(coefficients: list[Fraction], low: int, high: int) -> Fraction:
    """int_low^high r(x)^2 dx for the polynomial r = sum_k c_k x^k, in exact arithmetic."""
    square = [Fraction(0)] * (2 * len(coefficients) - 1)
    for i, a in enumerate(coefficients):
        for j, b in enumerate(coefficients):
            square[i + j] += a * b
    return sum(c * (Fraction(high) ** (k + 1) - Fraction(low) ** (k + 1)) / (k + 1) for k, c in enumerate(square))


def test_the_lebesgue_risk_is_the_exact_l2_error_of_a_polynomial():
    """Linear units f(x) = (sum_j q_j a_j w_j) x = c x against f* = x^3 - 2x + 1 on [-1, 3]: the
    residual is a cubic, and 32 Gauss-Legendre nodes integrate its square (degree 6) exactly."""
    model = model_of(case_text('low = -1.0\nhigh = 3.0\nnodes = 32\nmeasure = "lebesgue"'))
    u = np.array([[1.5, 2.0], [-0.5, 1.0]])
    q = np.array([0.25, 0.75])
    c = Fraction(1, 4) * 3 + Fraction(3, 4) * Fraction(-1, 2)          # 3/8, exact in binary
    exact = Fraction(1, 2) * exact_square_integral([Fraction(-1), c + 2, Fraction(0), Fraction(-1)], -1, 3)
    assert model.risk(u, q, kernel="numpy") == pytest.approx(float(exact), rel=1e-13, abs=0)
    assert model.risk(u, q) == pytest.approx(float(exact), rel=1e-13, abs=0)       # the fused kernel too
    assert model.p.sum() == pytest.approx(4.0, rel=1e-15) and model.data.total == 4.0
    # the probability measure on the same nodes is the Lebesgue one over the length
    prob = model_of(case_text("low = -1.0\nhigh = 3.0\nnodes = 32"))
    np.testing.assert_array_equal(prob.x, model.x)
    np.testing.assert_allclose(model.p, 4.0 * prob.p, rtol=1e-15, atol=0)
    assert prob.risk(u, q) == pytest.approx(float(exact) / 4, rel=1e-13, abs=0)


def test_the_lebesgue_risk_of_a_gaussian_bump_is_its_erf_integral():
    """f = 0 (no neurons' weight) against the bump f* = exp(-(x - 1/2)^2 / (2 s^2)), s^2 = 0.5, on
    [-6, 6]: R = 1/2 int f*^2 dx = (1/2) sqrt(pi s^2)/2 [erf((6 - 1/2)/s) - erf((-6 - 1/2)/s)]."""
    target = 'expression = "exp(-(x - 0.5)**2/(2*0.5))"'
    model = model_of(case_text('low = -6.0\nhigh = 6.0\nnodes = 128\nmeasure = "lebesgue"', target))
    s = math.sqrt(0.5)
    exact = 0.5 * math.sqrt(math.pi * 0.5) / 2 * (erf(5.5 / s) - erf(-6.5 / s))
    risk = model.risk(np.zeros((1, 2)), np.zeros(1))
    assert risk == pytest.approx(exact, rel=1e-12, abs=0)


def test_the_lebesgue_measure_in_two_inputs_weighs_the_area():
    """[0, 2]^2: the weights sum to 4 and R = 1/2 int (x1^2 x2)^2 dx = 1/2 (32/5)(8/3) = 128/15."""
    model = model_of(case_text('low = 0.0\nhigh = 2.0\nnodes = 6\nmeasure = "lebesgue"', 'expression = "x1**2*x2"',
                               input_dim=2))
    assert model.p.sum() == pytest.approx(4.0, rel=1e-15)
    assert model.risk(np.zeros((1, 3)), np.zeros(1)) == pytest.approx(128 / 15, rel=1e-13, abs=0)


def test_uniform_samples_on_the_lebesgue_measure_weigh_the_length_over_n():
    spec = DataSpec("samples", low=-1.0, high=3.0, samples=50, seed=2, measure="lebesgue")
    data = build_data(spec, 1)
    np.testing.assert_array_equal(data.p, np.full(50, 4.0 / 50))
    assert data.total == 4.0 and data.x.min() >= -1.0 and data.x.max() <= 3.0
    # the same draws as the probability measure's
    np.testing.assert_array_equal(data.x, build_data(DataSpec("samples", low=-1.0, high=3.0, samples=50,
                                                              seed=2), 1).x)


def test_the_grid_risk_scales_with_the_volume():
    """The fv solver's risk (the separable grid operator) is the volume times the probability one."""
    text = case_text("low = -1.0\nhigh = 3.0\nnodes = 16\nDATA", 'expression = "x**2"', activation="tanh")
    risks = []
    for extra in ("", 'measure = "lebesgue"'):
        problem = build_problem(case_from_text(text.replace("DATA", extra), "c.toml"))
        risks.append(make_stepper("fv", problem, defaults("fv")).observe().risk)
    assert risks[1] == pytest.approx(4.0 * risks[0], rel=1e-13, abs=0)


def test_minibatches_of_a_lebesgue_measure_are_unbiased():
    """SGD draws from p / P and weighs each draw P / batch: the mean minibatch velocity is the
    full one (with weights 1 / batch it would be a quarter of it here, P = 4)."""
    text = case_text('low = -1.0\nhigh = 3.0\nnodes = 16\nmeasure = "lebesgue"', 'expression = "x**2"',
                     activation="tanh")
    problem = build_problem(case_from_text(text, "c.toml"))
    s = ParticleStepper(problem, {**defaults("particle"), "particles": 20, "batch": 4})
    batch = s._draw_batch()
    assert batch[1].tolist() == [1.0] * 4                    # P / batch = 4 / 4
    full = particle_velocity(s.model, s.u, s.weights)
    draws = np.array([particle_velocity(s.model, s.u, s.weights, s._draw_batch()) for _ in range(3000)])
    stderr = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - full) < 4 * stderr + 1e-12)
    assert np.abs(full).max() > 10 * stderr.max()           # the check can tell a factor 4


def test_the_lebesgue_measure_is_refused_where_it_has_no_meaning(tmp_path):
    words = '"lebesgue" is for uniform data'
    refused(case_text('distribution = "gaussian"\nmeasure = "lebesgue"'), "data.measure", words)
    refused(case_text('distribution = "samples"\nsampler = "gaussian"\nmeasure = "lebesgue"'), "data.measure", words)
    refused(case_text('x = [0.0, 1.0]\nmeasure = "lebesgue"'), "data.measure", "inline points")
    refused(case_text('distribution = "sphere"\nmeasure = "lebesgue"', input_dim=2, target='expression = "x1"'),
            "data.measure", "sphere")
    (tmp_path / "d.csv").write_text("x\n0.0\n1.0\n")
    refused(case_text('file = "d.csv"\nmeasure = "lebesgue"'), "data.measure", "data file", tmp_path)
    refused(case_text('distribution = "gaussian"\ndim = 3\nmeasure = "lebesgue"', 'expression = "x1"', input_dim=3),
            "data.measure", "probability law")
    refused(case_text('measure = "counting"'), "data.measure", "unknown value 'counting'")


# ----------------------------------------------------------------------------- inline data

def test_inline_points_and_targets_are_the_data():
    model = model_of(case_text("x = [-1.0, 0, 0.5]\ny = [1.0, 2.0, -3]", target=None))
    assert model.x[:, 0].tolist() == [-1.0, 0.0, 0.5] and model.y.tolist() == [1.0, 2.0, -3.0]
    np.testing.assert_array_equal(model.p, np.full(3, 1 / 3))
    # d = 2: lists of two numbers; without y the target gives the values
    model = model_of(case_text("x = [[0.0, 1.0], [2.0, -1.0]]", 'expression = "x1 + 10*x2"', input_dim=2))
    assert model.x.tolist() == [[0.0, 1.0], [2.0, -1.0]] and model.y.tolist() == [10.0, -8.0]
    # d = 1 may write each point as a list too
    assert model_of(case_text("x = [[0.5], [1.5]]")).x.tolist() == [[0.5], [1.5]]
    case = case_from_text(case_text("x = [0.0, 1.0, 2.0]"), "c.toml")
    assert data_nodes(case.model.data, 1) == 3


def test_bad_inline_data_are_refused_in_one_line(monkeypatch):
    refused(case_text("x = [0.0, 1.0]\ny = [1.0]", target=None), "data.y", "1 values for the 2 points")
    refused(case_text("x = [0.0, nan]"), "data.x[1]", "finite")
    refused(case_text("x = [0.0, inf]\ny = [1.0, 2.0]", target=None), "data.x[1]", "finite")
    refused(case_text("x = [0.0, 1.0]\ny = [1.0, -inf]", target=None), "data.y[1]", "finite")
    refused(case_text("x = [0.0, true]"), "data.x[1]", "finite numbers, got True")
    refused(case_text('x = [0.0, "1"]'), "data.x[1]", "got '1'")
    refused(case_text("x = []"), "data.x", "non-empty list")
    refused(case_text("x = 1.0"), "data.x", "non-empty list")
    refused(case_text("x = [[0.0, 1.0], [2.0]]", 'expression = "x1"', input_dim=2), "data.x[1]", "list of 2 numbers")
    refused(case_text("x = [0.0, 1.0]", 'expression = "x1"', input_dim=2), "data.x[0]", "list of 2 numbers")
    refused(case_text("x = [[0.0, 1.0], [2.0, nan]]", 'expression = "x1"', input_dim=2), "data.x[1]", "finite")
    refused(case_text("x = [0.0, 1e400]"), "data.x[1]", "finite")           # TOML reads 1e400 as inf
    refused(case_text("x = [0.0, 1]\ny = [1, 1" + "0" * 400 + "]", target=None), "data.y", "too large for a float")
    refused(case_text("y = [1.0, 2.0]", target=None), "data.y", "give data.x")
    refused(case_text('x = [0.0]\ndistribution = "uniform"'), "data.distribution", "unknown value 'uniform'")
    refused(case_text("x = [0.0]\nnodes = 3"), "data.nodes", "unknown key")
    monkeypatch.setattr(data_case, "MAX_DATA_NODES", 3)
    refused(case_text("x = [0.0, 1.0, 2.0, 3.0]"), "data.x", "at most 3 points")
    refused(case_text("x = [0.0, 1.0, 2.0]\ny = [0.0, 1.0, 2.0, 3.0]", target=None), "data.y", "at most 3 numbers")


def test_a_target_beside_data_with_y_is_refused(tmp_path):
    refused(case_text("x = [0.0, 1.0]\ny = [1.0, 2.0]"), "target", "data.y gives the targets")
    (tmp_path / "d.csv").write_text("x,y\n0.0,1.0\n1.0,2.0\n")
    refused(case_text('file = "d.csv"'), "target", "the y column of data.file gives the targets", tmp_path)
    # without y the target stays required
    refused(case_text("x = [0.0, 1.0]", target=None), "target", "missing value")
    (tmp_path / "d.csv").write_text("x\n0.0\n1.0\n")
    refused(case_text('file = "d.csv"', target=None), "target", "missing value", tmp_path)
    case_from_text(case_text('file = "d.csv"'), "c.toml", base_dir=tmp_path)


# ----------------------------------------------------------------------------- points on a sphere

def test_sphere_points_lie_on_the_sphere_uniformly():
    text = case_text('distribution = "sphere"\nsamples = 4000\nradius = 2.0\nseed = 7', 'expression = "x1*x2"',
                     input_dim=2)
    model = model_of(text)
    np.testing.assert_allclose(np.linalg.norm(model.x, axis=1), 2.0, rtol=1e-15)
    np.testing.assert_array_equal(model.p, np.full(4000, 1 / 4000))
    # uniform on the circle of radius 2: mean 0, covariance (r^2 / d) I = 2 I (within 5 standard errors)
    assert np.all(np.abs(model.x.mean(axis=0)) < 5 * np.sqrt(2.0 / 4000))
    cov = np.cov(model.x.T)
    assert np.all(np.abs(cov - 2.0 * np.eye(2)) < 5 * 2.0 * np.sqrt(2 / 4000))
    np.testing.assert_array_equal(model_of(text).x, model.x)                   # seeded
    assert not np.array_equal(model_of(text.replace("seed = 7", "seed = 8")).x, model.x)
    # the unit circle by default, in any d >= 2 (Chizat's 15 points in R^2)
    model = model_of(case_text('distribution = "sphere"\nsamples = 15', 'expression = "x1"', input_dim=3))
    assert model.x.shape == (15, 3)
    np.testing.assert_allclose(np.linalg.norm(model.x, axis=1), 1.0, rtol=1e-15)
    case = case_from_text(case_text('distribution = "sphere"\nsamples = 15', 'expression = "x1"', input_dim=3))
    assert data_nodes(case.model.data, 3) == 15


def test_bad_sphere_data_are_refused():
    refused(case_text('distribution = "sphere"'), "data.distribution", "input_dim = d >= 2")
    refused(case_text('distribution = "sphere"\nradius = 0.0', 'expression = "x1"', input_dim=2), "data.radius",
            "positive")
    refused(case_text('distribution = "sphere"\nnodes = 4', 'expression = "x1"', input_dim=2), "data.nodes",
            "unknown key")
    refused(case_text("radius = 2.0"), "data.radius", "distribution = \"sphere\"")
