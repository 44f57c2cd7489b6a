"""The fused particle kernel equals the numpy path (`TwoLayerModel`) to round-off: every
activation, bias on and off, input_dim 1 to 3, frozen axes, weight decay, non-uniform
weights, minibatches; its tanh to 1e-15 everywhere; NaN stays NaN; results do not depend
on the thread count. Its float32 variant (precision = "float32") equals the numpy path to
float32 round-off, with the same checks, and keeps the solver state float64."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from gflow.case import case_from_text, load_case
from gflow.errors import InputError
from gflow.problem import build_problem
from gflow.solver_options import defaults
from gflow.models import two_layer_kernels as particle_kernels
from gflow.models.two_layer_kernels import ACTIVATION_CODES
from gflow.solvers.particle import ParticleStepper, particle_velocity
from gflow.models.two_layer_kernels import ParticleKernel, kernel_for

CASE = """
[model]
kind = "two_layer"
activation = "{activation}"
bias = {bias}
input_dim = {dim}
train = {train}
[target]
expression = "{target}"
[data]
distribution = "uniform"
low = -1.0
high = 1.0
nodes = {nodes}
[regularization]
weight_decay = {decay}
[initial]
mean = {mean}
std = {std}
[grid]
bounds = {bounds}
cells = {cells}
[time]
end = 1.0
"""

TARGETS = {1: "sin(2*x)", 2: "tanh(x1 - 0.5*x2)", 3: "x1*x2 + cos(x3)"}


def problem(activation="tanh", bias=False, dim=1, train=None, decay=0.0, nodes=8):
    D = 1 + dim + bias
    axes = ["a"] + [f"w{k + 1}" if dim > 1 else "w" for k in range(dim)] + (["b"] if bias else [])
    text = CASE.format(activation=activation, bias=str(bias).lower(), dim=dim,
                       train=str(train or axes).replace("'", '"'), target=TARGETS[dim], nodes=nodes,
                       decay=decay, mean=[0.2] * D, std=[1.1] * D, bounds=[[-6.0, 6.0]] * D, cells=[4] * D)
    return build_problem(case_from_text(text))


def particles(D, m=1500, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(0.2, 1.3, size=(m, D))
    q = rng.random(m)
    return u, q / q.sum()


def assert_close(got, want, rtol=1e-12):
    """Round-off: relative to the largest entry (entries near 0 are sums that cancel)."""
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("activation", sorted(ACTIVATION_CODES))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_kernel_matches_numpy(activation, bias, dim, monkeypatch):
    """Network and velocity of the kernel = the model's numpy methods, weights not uniform,
    with weight decay; chunks of more than one block (m > BLOCK, several chunks); the
    threaded and the one-thread variants both."""
    prob = problem(activation, bias, dim, decay=0.03, nodes=5 if dim == 3 else 8)
    model = prob.model
    u, q = particles(model.ndim)
    kernel = ParticleKernel(model)
    f, v = model.network(u, q), particle_velocity(model, u, q, kernel="numpy")
    for pairs in (1 << 62, 0):
        monkeypatch.setattr(particle_kernels, "PARALLEL_PAIRS", pairs)
        assert_close(kernel.network(u, q), f)
        assert_close(kernel.velocity(u, q), v)


@pytest.mark.parametrize("activation", sorted(ACTIVATION_CODES))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_float32_kernel_matches_numpy(activation, bias, dim, monkeypatch):
    """The float32 kernel = the numpy path (float64) to float32 round-off, threaded and not;
    its outputs are float64 arrays (the solver state's type)."""
    prob = problem(activation, bias, dim, decay=0.03, nodes=5 if dim == 3 else 8)
    model = prob.model
    u, q = particles(model.ndim)
    kernel = ParticleKernel(model, "float32")
    f, v = model.network(u, q), particle_velocity(model, u, q, kernel="numpy")
    for pairs in (1 << 62, 0):
        monkeypatch.setattr(particle_kernels, "PARALLEL_PAIRS", pairs)
        got_f, got_v = kernel.network(u, q), kernel.velocity(u, q)
        assert got_f.dtype == got_v.dtype == np.float64
        assert_close(got_f, f, 2e-6)
        assert_close(got_v, v, 2e-5)
        assert_close(particle_velocity(model, u, q, kernel="numba-float32"), v, 2e-5)


@pytest.mark.parametrize("train", [["a"], ["w1", "w2", "b"], ["a", "b"]])
def test_frozen_axes_and_minibatch(train):
    """Frozen axes get exactly zero velocity; a minibatch (x, p, y) replaces the data as in numpy."""
    model = problem("tanh", True, 2, train=train, decay=0.1).model
    u, q = particles(model.ndim, m=700, seed=1)
    v = particle_velocity(model, u, q, kernel="numba")
    assert_close(v, particle_velocity(model, u, q, kernel="numpy"))
    assert np.all(v[:, ~model.trained] == 0.0)
    rng = np.random.default_rng(2)
    idx = rng.choice(len(model.p), size=6, p=model.p)
    batch = model.x[idx], np.full(6, 1 / 6), model.y[idx]
    assert_close(particle_velocity(model, u, q, batch, kernel="numba"),
                 particle_velocity(model, u, q, batch, kernel="numpy"))
    x = rng.uniform(-1, 1, size=(9, 2))
    assert_close(kernel_for(model).network(u, q, x), model.network(u, q, x))


def test_tanh_is_accurate_everywhere():
    """The kernel's own tanh: 1e-15 relative from 1e-300 to saturation, odd, NaN -> NaN, +-inf -> +-1."""
    z = np.concatenate([np.logspace(-300, 2.5, 20001), np.linspace(-25, 25, 20001)])
    z = np.concatenate([z, -z])
    got = tanh_array(z)
    want = np.tanh(z)
    assert np.max(np.abs(got - want) / np.abs(np.where(want == 0, 1.0, want))) < 2e-15
    special = tanh_array(np.array([0.0, np.inf, -np.inf, np.nan, 1e308, -1e308]))
    np.testing.assert_array_equal(special[[0, 1, 2, 4, 5]], [0.0, 1.0, -1.0, 1.0, -1.0])
    assert np.isnan(special[3])


@numba.njit
def _tanh_loop(z, out):
    for i in range(z.size):
        out[i] = particle_kernels._tanh(z[i])


@numba.njit
def _tanh32_loop(z, out):
    for i in range(z.size):
        out[i] = particle_kernels._tanh32(z[i])


def tanh_array(z):
    out = np.empty_like(z)
    (_tanh32_loop if z.dtype == np.float32 else _tanh_loop)(z, out)
    return out


def test_float32_tanh_is_accurate_everywhere():
    """The float32 tanh: within 3e-7 relative (a few float32 ulp) from 1e-38 to saturation, in
    float32 throughout, odd, NaN -> NaN, +-inf -> +-1 to an ulp."""
    z = np.concatenate([np.logspace(-38, 1.5, 20001), np.linspace(-12, 12, 20001)]).astype(np.float32)
    z = np.concatenate([z, -z])
    got = tanh_array(z)
    assert got.dtype == np.float32
    want = np.tanh(z.astype(float))
    assert np.max(np.abs(got - want) / np.abs(np.where(want == 0, 1.0, want))) < 3e-7
    np.testing.assert_array_equal(got[:z.size // 2], -got[z.size // 2:])
    special = tanh_array(np.array([0.0, np.inf, -np.inf, np.nan, 3e38, -3e38], dtype=np.float32))
    assert special[0] == 0.0 and np.isnan(special[3])
    np.testing.assert_allclose(special[[1, 2, 4, 5]], [1.0, -1.0, 1.0, -1.0], rtol=1.2e-7, atol=0)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_blow_up_stays_visible(precision):
    """A NaN particle makes the network NaN (no 'nnan' fastmath hides it)."""
    model = problem().model
    u, q = particles(model.ndim, m=300)
    u[17, 1] = np.nan
    assert np.all(np.isnan(kernel_for(model, precision).network(u, q)))


def test_thread_count_does_not_change_results():
    """Fixed chunks summed in order: 1 thread and 2 threads give bitwise equal velocities.
    (The one-thread variants have names of their own: numba's cache keys on name and line,
    and under one name the serial build overwrote the threaded one in the cache.)"""
    for serial, threaded in ((particle_kernels.network_serial, particle_kernels.network_kernel),
                             (particle_kernels.velocity_serial, particle_kernels.velocity_kernel)):
        assert serial.py_func.__qualname__ != threaded.py_func.__qualname__
    for precision, kernels in particle_kernels.KERNELS.items():
        for serial, threaded in kernels.values():
            assert serial.py_func.__qualname__ != threaded.py_func.__qualname__, precision
    for dim, bias in ((2, True), (1, False)):
        model = problem("tanh", bias, dim).model
        u, q = particles(model.ndim, m=20000, seed=3)
        for precision in ("float64", "float32"):
            kernel = ParticleKernel(model, precision)
            threads = numba.get_num_threads()
            try:
                numba.set_num_threads(1)
                one = kernel.velocity(u, q)
                numba.set_num_threads(max(2, threads) if numba.config.NUMBA_NUM_THREADS > 1 else 1)
                two = kernel.velocity(u, q)
            finally:
                numba.set_num_threads(threads)
            np.testing.assert_array_equal(one, two)


def _twenty_gd_steps(**options):
    """A 500-particle stepper of the tanh case with bias after twenty Euler (GD) steps."""
    s = ParticleStepper(problem("tanh", True, 1, decay=0.01), {**defaults("particle"), "particles": 500, **options})
    for _ in range(20):
        s.step(0.05)
    return s


def test_stepper_kernels_agree():
    """Twenty Euler (GD) steps with either kernel end at the same particles and risk."""
    runs = {kernel: _twenty_gd_steps(kernel=kernel) for kernel in ("numba", "numpy")}
    assert_close(runs["numba"].u, runs["numpy"].u, 1e-11)
    assert runs["numba"].observe().risk == pytest.approx(runs["numpy"].observe().risk, rel=1e-11)


def test_float32_precision_run_stays_float64_and_close():
    """precision = "float32": twenty Euler steps stay within float32 round-off of float64's,
    the state (positions, risk) float64; the risk is the float64 kernel's of that state."""
    runs = {precision: _twenty_gd_steps(precision=precision) for precision in ("float64", "float32")}
    u32 = runs["float32"].u
    assert u32.dtype == np.float64
    assert_close(u32, runs["float64"].u, 1e-5)
    risk = runs["float32"].observe().risk
    assert risk == pytest.approx(runs["float64"].observe().risk, rel=1e-5)
    assert risk == pytest.approx(runs["float32"].problem.model.risk(u32, runs["float32"].q_net, "numba"), rel=1e-14)


QUICKSTART = "cases/quickstart.toml"


def test_precision_option_is_checked():
    """A bad precision is a one-line case error; float32 without the fused kernel is refused."""
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / QUICKSTART
    with pytest.raises(InputError) as info:
        load_case(path, ['solver.kind="particle"', 'solver.precision="float16"'])
    assert "solver.precision: unknown value 'float16'" in str(info.value) and "\n" not in str(info.value)
    case = load_case(path, ['solver.kind="particle"', 'solver.precision="float32"', 'solver.kernel="numpy"'])
    with pytest.raises(ValueError, match="precision = \"float32\" runs the fused numba kernel"):
        ParticleStepper(build_problem(case), case.solvers[0].options)
