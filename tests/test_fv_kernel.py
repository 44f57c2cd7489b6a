"""The fused numba stage equals the plain numpy path to round-off, in 2D and 3D, and gives the
same bits on one thread as on several."""
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


def _random_stage_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    n0, n1, n2 = shape
    u = rng.random(shape)
    H1 = rng.standard_normal((n1 + 1, n2)) if n1 > 1 else np.zeros((2, n2))
    return dict(u=u, u0=rng.random(shape), G=rng.standard_normal((n1, n2)), L0=rng.standard_normal(n0 + 1),
                ac=np.linspace(-1.0, 1.0, n0), H1=H1, L1=rng.standard_normal(H1.shape[0]),
                H2=rng.standard_normal((n1, n2 + 1)), L2=rng.standard_normal(n2 + 1),
                h=np.array([0.1, 0.2, 0.1]), T=np.array([0.01, 0.02 if n1 > 1 else 0.0, 0.01]))


def _run_stage(x, blocks, stage=None):
    out, m1 = np.empty_like(x["u"]), np.empty(x["u"].shape[1:])
    (stage or fv_kernels.stage)(x["u"], x["u0"], out, m1, 0.75, 0.25, 0.01, x["G"], x["L0"], x["ac"], x["H1"],
                                x["L1"], x["H2"], x["L2"], x["h"], 1.5, x["T"], blocks)
    return out, m1


@pytest.mark.parametrize("shape", [(70, 1, 33), (37, 12, 9)])
def test_stage_is_bitwise_independent_of_threads_and_blocks(shape):
    """The threaded stage gives the one-thread bits on any number of threads; the cell values
    do not depend on how the planes are blocked either (only m1's summation order does)."""
    x = _random_stage_inputs(shape)
    blocks = fv_kernels.plane_blocks(shape, cells=64, min_planes=4)
    assert len(blocks) > 4            # several blocks, with ragged last one
    numba = fv_kernels.numba
    numba.set_num_threads(1)
    try:
        one_out, one_m1 = _run_stage(x, blocks)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    out, m1 = _run_stage(x, blocks)
    assert np.array_equal(out, one_out) and np.array_equal(m1, one_m1)
    whole_out, whole_m1 = _run_stage(x, np.array([0, shape[0]]))
    assert np.array_equal(out, whole_out)
    # one block runs on the one-thread build of the same loops (`FiniteVolumeStepper`): same bits
    serial_out, serial_m1 = _run_stage(x, np.array([0, shape[0]]), fv_kernels.stage_serial)
    assert np.array_equal(serial_out, whole_out) and np.array_equal(serial_m1, whole_m1)
    assert all(np.array_equal(a, b) for a, b in zip(_run_stage(x, blocks, fv_kernels.stage_serial),
                                                     (out, m1)))
    np.testing.assert_allclose(m1, whole_m1, rtol=1e-13, atol=1e-13)
    # the moment of a density sums in the stage's order, so a restored run continues bitwise
    again = np.empty_like(m1)
    fv_kernels.a_moment(out, x["ac"], again, blocks)
    assert np.array_equal(again, m1)
    np.testing.assert_allclose(m1, np.tensordot(x["ac"], out, axes=(0, 0)), rtol=1e-12, atol=1e-13)


def test_plane_blocks_cover_the_grid_and_depend_on_shape_only():
    for shape in [(512, 1, 512), (128, 128, 128), (5, 3, 4), (17, 1, 2000)]:
        b = fv_kernels.plane_blocks(shape)
        assert b[0] == 0 and b[-1] == shape[0] and np.all(np.diff(b) > 0)
    assert len(fv_kernels.plane_blocks((512, 1, 512))) - 1 == 8


def test_stiff_maxima_equal_numpy_exactly():
    from gflow.solvers.fv import stiff_dt
    rng = np.random.default_rng(3)
    u0, u1, u2 = (rng.standard_normal((3, 41, 1, 2000)) for _ in range(3))   # ragged last chunk
    change, curve = fv_kernels.stiff_maxima(u0.reshape(-1), u1.reshape(-1), u2.reshape(-1), 1 << 15)
    assert change == np.abs(u1 - u0).max()
    assert curve == np.abs(4.0 * u2 - 2.0 * u0 - 2.0 * u1).max()
    assert fv_kernels.stiff_maxima_serial(u0.reshape(-1), u1.reshape(-1), u2.reshape(-1), 1 << 15) == (change, curve)
    assert stiff_dt(u0, u1, u2, 0.1, fused=True) == stiff_dt(u0, u1, u2, 0.1)
    small = [u[:, :3, :, :100] for u in (u0, u1, u2)]     # one chunk: the one-thread build
    assert stiff_dt(*small, 0.1, fused=True) == stiff_dt(*small, 0.1)
    assert stiff_dt(u0, u0, u2, 0.1, fused=True) == np.inf
