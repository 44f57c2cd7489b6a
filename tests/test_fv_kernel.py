"""The fused numba stage equals the plain numpy path to round-off, in 2D and 3D."""
import numpy as np
import pytest

from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.solvers import fv_kernels
from gflow.solvers.fv import FiniteVolumeStepper

pytestmark = pytest.mark.skipif(fv_kernels.numba is None, reason="numba not installed")

BASE = """
[model]
kind = "two_layer"
activation = "{act}"
bias = {bias}
{train}
[target]
neurons = [{{ a = 1.2, w = 1.5{b} }}]
[data]
nodes = 9
[regularization]
weight_decay = {lam}
temperature = {T}
[initial]
mean = {mean}
std = {std}
[grid]
bounds = {bounds}
cells = {cells}
[time]
end = 1.0
"""


def make(bias, act="tanh", lam=0.0, T=0.0, train=""):
    D = 3 if bias else 2
    text = BASE.format(act=act, bias=str(bias).lower(), b=", b = 0.3" if bias else "", lam=lam, T=T,
                       train=train, mean=[0.2] * D, std=[0.6] * D, bounds=[[-3.0, 3.0]] * D,
                       cells=[14, 11, 9][:D])
    return build_problem(case_from_text(text))


@pytest.mark.parametrize("bias,act,lam,T,train", [
    (False, "tanh", 0.0, 0.0, ""),
    (False, "relu", 0.5, 0.05, ""),
    (False, "tanh", 0.1, 0.0, 'train = ["a"]'),
    (False, "tanh", 0.1, 0.05, 'train = ["a"]'),
    (True, "relu", 0.1, 0.05, 'train = ["a", "b"]'),
    (False, "tanh", 0.1, 0.0, 'train = ["w"]'),
    (True, "tanh", 0.2, 0.02, ""),
    (True, "sigmoid", 0.0, 0.0, 'train = ["a", "b"]'),
])
def test_fused_stage_equals_numpy(bias, act, lam, T, train):
    problem = make(bias, act, lam, T, train)
    fused = FiniteVolumeStepper(problem, {"kernel": "numba"})
    plain = FiniteVolumeStepper(problem, {"kernel": "numpy"})
    assert fused.fused and not plain.fused
    for _ in range(5):
        dt_f, dt_p = fused.step(0.05), plain.step(0.05)
        assert dt_f == pytest.approx(dt_p, rel=1e-12)
    scale = np.abs(plain.rho).max()
    np.testing.assert_allclose(fused.rho, plain.rho, rtol=0, atol=1e-12 * scale)
    assert fused.grid.mass(fused.rho) == pytest.approx(1.0, abs=1e-13)


RESNET = """
[model]
kind = "resnet"
activation = "{act}"
bias = {bias}
layers = {layers}
{train}
{msa}
[target]
expression = "x**2 - 0.3*x"
[data]
nodes = 9
[regularization]
weight_decay = {lam}
temperature = {T}
[initial]
mean = {mean}
std = {std}
[grid]
bounds = {bounds}
cells = {cells}
[time]
end = 1.0
"""


@pytest.mark.parametrize("bias,act,lam,T,train,msa,layers", [
    (False, "tanh", 0.0, 0.0, "", "", 4),
    (False, "relu", 0.1, 0.02, 'train = ["w"]', "", 3),
    (True, "tanh", 0.1, 0.02, "", "", 3),
    (True, "sigmoid", 0.0, 0.0, 'train = ["a", "b"]', "refresh = 3", 2),
    (False, "tanh", 0.05, 0.0, "", "refresh = 4\nmsa_rho = 0.5", 3),
])
def test_fused_resnet_stage_equals_numpy(bias, act, lam, T, train, msa, layers):
    """Every layer of a ResNet through the fused stage, with the sweep (and its refresh schedule,
    and the extended-MSA terms) as the numpy path has it: equal to round-off."""
    D = 3 if bias else 2
    text = RESNET.format(act=act, bias=str(bias).lower(), lam=lam, T=T, train=train, msa=msa, layers=layers,
                         mean=[0.2] * D, std=[0.6] * D, bounds=[[-3.0, 3.0]] * D, cells=[14, 11, 9][:D])
    runs = []
    for kernel in ("numba", "numpy"):
        problem = build_problem(case_from_text(text))
        stepper = FiniteVolumeStepper(problem, {"kernel": kernel})
        assert stepper.fused == (kernel == "numba")
        dts = []
        for i in range(6):
            problem.model.begin_step(i == 0)
            dts.append(stepper.step(0.05))
        runs.append((stepper, dts, problem.model.schedule.sweeps))
    (fused, dt_f, sweeps_f), (plain, dt_p, sweeps_p) = runs
    assert dt_f == pytest.approx(dt_p, rel=1e-12) and sweeps_f == sweeps_p
    scale = np.abs(plain.rho).max()
    np.testing.assert_allclose(fused.rho, plain.rho, rtol=0, atol=1e-12 * scale)
    assert np.abs(fused.rho - problem.initial_density()).max() > 1e-3 * scale    # it moved
    layer_mass = fused.rho.reshape(layers, -1).sum(axis=1) * fused.grid.cell_volume
    np.testing.assert_allclose(layer_mass, 1.0 / layers, rtol=0, atol=1e-13)
