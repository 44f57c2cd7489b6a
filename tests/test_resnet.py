"""Issue 17: the mean-field ResNet (`resnet` model kind) held to numbers that can fail.

The network is forward Euler in depth with step h = 1/L (`gflow.models.resnet_depth`),

    z_0 = x,   z_{l+1} = z_l + h F_l(z_l),   F_l(z) = E_{rho_l} a sigma(w.z + b),   f = 1^T z_L,

trained by one Wasserstein gradient flow per layer with V_l(u) = E_x[P_{l+1} . a sigma(w.z_l + b)]
+ lam |u|^2 / 2, P the exact discrete adjoint. What is checked here:

1. the discrete adjoint: particle velocities are -(1/q_j) dE/du_j of the particle energy, and
   the grid's dR/drho is the cell volume times V_l at the centres, by finite differences (and
   the grid's face velocities are the particle model's at the faces);
2. particles with forward Euler are gradient descent on a hand-written numpy ResNet;
3. the linear ResNet: the moment ODE of every layer (derived below), followed by quadrature
   particles to round-off, by fv at second order in the grid (spectral far below), and its continuum limit
   L -> infinity in closed form (a hyperbolic rotation of each layer) with a depth error ~ 1/L;
4. a tanh case: fv on refined grids against quadrature particles against random particles;
5. invariants: each layer's mass, rho >= 0, energy decay (fv), bitwise resume (fv, particles),
   per-layer initial means, the refresh schedule's sweep count, the particles' free energy with noise.
"""
from __future__ import annotations


import h5py
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from conftest import check_snapshot, result_datasets
from gflow.app.execute import run_case
from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.snapshots import open_run
from gflow.solver_options import defaults
from gflow.solvers import make_stepper


def resnet_text(*, d=1, bias=False, layers=3, activation="tanh", train=None, refresh=1, target="tanh(2*x)",
                lam=0.0, temperature=0.0, nodes=5, mean=None, std=None, layer_means=None, bounds=None,
                cells=None, end=1.0, dt=None, snapshots=None, extra="") -> str:
    """A small resnet case; D = 2 d + bias parameter axes per layer, defaults on every axis."""
    D = 2 * d + bias
    lines = [
        "[model]", 'kind = "resnet"', f'activation = "{activation}"', f"bias = {str(bias).lower()}",
        f"input_dim = {d}", f"layers = {layers}", f"refresh = {refresh}",
        *([f"train = {list(train)!r}".replace("'", '"')] if train is not None else []),
        "[target]", f'expression = "{target}"',
        "[data]", 'distribution = "uniform"', "low = -1.0", "high = 1.0", f"nodes = {nodes}",
        "[regularization]", f"weight_decay = {lam}", f"temperature = {temperature}",
        "[initial]", f"mean = {list(mean or [0.2] * D)}", f"std = {list(std or [0.8] * D)}",
        *([f"layer_means = [{', '.join(layer_means)}]"] if layer_means else []),
        "[grid]", f"bounds = {[list(b) for b in (bounds or [(-4.0, 4.0)] * D)]}",
        f"cells = {list(cells or [4] * D)}",
        "[time]", f"end = {end}",
        *([f"dt = {dt}"] if dt is not None else []),
        *([f"snapshots = {snapshots}"] if snapshots is not None else []),
    ]
    return "\n".join(lines) + "\n" + extra


def problem_for(**kw):
    return build_problem(case_from_text(resnet_text(**kw)))


def advance(stepper, t0: float, t1: float) -> None:
    """Step from t0 to t1 as the run loop does (each step at most the time left)."""
    t = t0
    while t < t1 * (1 - 1e-14):
        t += stepper.step(t1 - t)


def observe_at(stepper, times, measure):
    """measure(stepper) at each of `times` (times[0] = 0: the initial state)."""
    out = [measure(stepper)]
    for t0, t1 in zip(times[:-1], times[1:]):
        advance(stepper, t0, t1)
        out.append(measure(stepper))
    return np.array(out)


def particle_options(**kw):
    return {**defaults("particle"), **kw}


# ============================================================================ 1. discrete adjoint

def five_point(f, x: np.ndarray, h: float) -> np.ndarray:
    """Fourth-order central differences of the scalar f at x, every entry of x."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        values = []
        for s in (-2, -1, 1, 2):
            y = x.copy()
            y[idx] += s * h
            values.append(f(y))
        grad[idx] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)
    return grad


@pytest.mark.parametrize("d, bias, train", [(1, True, None), (1, False, ["a"]), (2, True, None),
                                            (2, True, ["w", "b"])])
def test_particle_velocity_is_minus_the_energy_gradient_over_the_weight(d, bias, train):
    """For any joint weights q (here random, not 1/(L M)) the particle energy is

        E(u) = R(u) + lam/2 sum_j q_j |u_j|^2,   R = 1/2 E_x (f - y)^2,
        f = 1^T z_L,  z_{l+1} = z_l + (1/L) sum_{j in l} L q_j a_j sigma(w_j.z_l + b_j),

    so dR/du_j = q_j grad V_l(u_j) (the L q_j of layer l's measure times the 1/L of the step)
    and the velocity is -(1/q_j) dE/du_j on the trained axes, 0 on the layer axis and on
    frozen axes (where dE/du_j is not zero). Measured: 1.6e-11 to 5.8e-11 relative.
    """
    model = problem_for(d=d, bias=bias, train=train, lam=0.1, target="tanh(2*x)" if d == 1 else "x1*x2 - 0.5*x2",
                        layers=3).model
    L, M, D = 3, 4, 2 * d + bias
    rng = np.random.default_rng(1)
    u = np.column_stack([np.repeat(np.arange(L) / L, M), rng.normal(size=(L * M, D))])
    q = rng.uniform(0.5, 1.5, L * M)
    q /= q.sum()

    velocity = model.velocity(u, q)
    dE = five_point(lambda v: model.energy(model.risk(v, q), v, q), u, 1e-4)
    expected = -dE / q[:, None] * model.trained
    assert np.abs(velocity - expected).max() < 1e-9 * np.abs(velocity).max(), np.abs(velocity - expected).max()
    assert np.all(velocity[:, ~model.trained] == 0.0)
    if not model.trained[1:].all():
        assert np.abs(dE[:, ~model.trained][:, 1:]).max() > 1e-3     # the zero is the freeze, not the gradient


def layered_grid_problem(bias: bool):
    D = 2 + bias
    return problem_for(bias=bias, lam=0.1, mean=[0.3] * D, std=[0.7] * D, bounds=[(-2.0, 2.5)] * D,
                       cells=[6, 5, 4][:D], layers=3)


@pytest.mark.parametrize("bias", [False, True])
def test_grid_first_variation_is_the_cell_volume_times_V(bias):
    """dR/drho[l, i, j(, k)] = cell_volume * (V_l - lam |u|^2/2) at the cell centre, exactly.

    Why exact: the grid's R depends on rho only through each layer's effective neurons, one per
    (w_j, b_k) centre with amplitude A_ljk = sum_i a_i rho[l, i, j, k] da dw db (linear in rho),
    i.e. R(rho) = R_net(A(rho)) for the L-layer network z_{l+1} = z_l + h sum_jk A_ljk
    sigma(w_j z_l + b_k), h = 1/L. Back-propagation through that same recursion gives
    dR_net/dA_ljk = h E_x[P_{l+1} sigma(w_j z_l + b_k)] with P_{l+1} = dR_x/dz_{l+1} exactly,
    so by the chain rule dR/drho[l,i,j,k] = h da dw db a_i E_x[P_{l+1} sigma(w_j z_l + b_k)]
    = cell_volume * (V_l(a_i, w_j, b_k) - lam |u|^2/2): the nodes of the midpoint rule inside
    R are the centres where V is evaluated, and no continuum limit is taken. Only the finite
    difference errs (measured 2-3e-12 relative; rho is the initial density times random factors).
    """
    problem = layered_grid_problem(bias)
    op = problem.grid_operator()
    rho = problem.initial_density() * np.random.default_rng(0).uniform(0.5, 1.5, problem.grid.shape)
    V = op.potential(rho) - 0.5 * op.lam * op.radius2
    dR = five_point(op.risk, rho, 1e-4)
    expected = problem.grid.cell_volume * V
    assert np.abs(dR - expected).max() < 1e-9 * np.abs(expected).max(), np.abs(dR - expected).max()


@pytest.mark.parametrize("bias", [False, True])
def test_grid_velocities_are_the_particle_velocities_of_the_cell_cloud(bias):
    """The grid's face (and centre) velocities are the particle model's velocity of probe points
    of weight 0 at the faces, for the cloud of one particle per cell centre with weight
    rho dV: that cloud has the grid's effective neurons, so one V serves both (round-off)."""
    problem = layered_grid_problem(bias)
    op, grid, model = problem.grid_operator(), problem.grid, problem.model
    rho = problem.initial_density() * np.random.default_rng(0).uniform(0.5, 1.5, grid.shape)
    cloud, q = grid.points(), (rho * grid.cell_volume).ravel()
    faces, centres = op.face_velocities(rho), op.centre_velocities(rho)
    assert faces[0] is None and centres[0] is None          # nothing moves along the layer axis
    scale = np.abs(model.velocity(cloud, q)).max()
    for axis in range(1, grid.ndim):
        probes = np.stack([c.ravel() for c in np.broadcast_arrays(*grid.face_mesh(axis))], axis=1)
        v = model.velocity(np.concatenate([cloud, probes]), np.concatenate([q, np.zeros(len(probes))]))
        assert np.abs(v[len(cloud):, axis] - faces[axis].ravel()).max() < 1e-14 * scale, axis
        assert np.abs(v[:len(cloud), axis] - centres[axis].ravel()).max() < 1e-14 * scale, axis


# ============================================================================ 2. gradient descent

def gd_data(d: int):
    """The data measure of `nodes = 4` on [-1, 1]^d, written out: Gauss-Legendre (tensor) nodes."""
    t, wt = np.polynomial.legendre.leggauss(4)
    if d == 1:
        x, p = t[:, None], wt / 2.0
        return x, p, np.tanh(2.0 * x[:, 0])
    x = np.array([[t1, t2] for t1 in t for t2 in t])
    p = np.array([w1 * w2 for w1 in wt for w2 in wt]) / 4.0
    return x, p, x[:, 0] * x[:, 1] - 0.5 * x[:, 1]


def numpy_resnet(a, w, b, x, p, y, lam):
    """Loss and gradient of the ResNet z_{l+1} = z_l + (1/(L M)) sum_j a_lj tanh(w_lj.z_l + b_lj),
    f = sum_k z_L[k], loss = 1/2 sum_i p_i (f_i - y_i)^2 + lam/(2 L M) sum |u|^2, by plain
    back-propagation. a, w: (L, M, d); b: (L, M)."""
    L, M, _ = a.shape
    s = 1.0 / (L * M)
    z, pre = [x], []
    for l in range(L):                                      # forward
        pre.append(z[l] @ w[l].T + b[l])                    # (N, M)
        z.append(z[l] + s * np.tanh(pre[l]) @ a[l])
    r = z[L].sum(axis=1) - y
    loss = 0.5 * p @ r**2 + 0.5 * lam * s * ((a**2).sum() + (w**2).sum() + (b**2).sum())
    g = np.repeat((p * r)[:, None], x.shape[1], axis=1)    # p_i dloss_i/dz_L
    ga, gw, gb = np.empty_like(a), np.empty_like(w), np.empty_like(b)
    for l in range(L - 1, -1, -1):                          # backward
        act = np.tanh(pre[l])
        delta = (1.0 - act**2) * (g @ a[l].T)               # p_i dloss_i/dpre_ij / s
        ga[l] = s * (act.T @ g + lam * a[l])
        gw[l] = s * (delta.T @ z[l] + lam * w[l])
        gb[l] = s * (delta.sum(axis=0) + lam * b[l])
        g = g + s * delta @ w[l]                            # p dloss/dz_l
    return loss, ga, gw, gb


def split_layers(u: np.ndarray, L: int, d: int):
    """(L M, 1 + D) particles, layer by layer, as (a, w, b) arrays (L, M, d), (L, M, d), (L, M)."""
    v = u[:, 1:].reshape(L, -1, 2 * d + 1)
    return v[..., :d].copy(), v[..., d:2 * d].copy(), v[..., -1].copy()


@pytest.mark.parametrize("d", [1, 2])
def test_euler_particles_are_gradient_descent_on_a_numpy_resnet(d):
    """With M particles per layer (q = 1/(L M)), dloss/du_j = (1/(L M)) grad V_l(u_j) (the
    weight decay lam/(2 L M) |u_j|^2 included), so forward Euler u_j -= dt grad V_l(u_j) is
    gradient descent with learning rate eta = L M dt. K = 6 steps, bias and weight decay on:
    equal to 2e-16 (measured); the observed energy is the hand-written loss."""
    L, M, lam, dt, K = 3, 5, 0.05, 0.1, 6
    problem = problem_for(d=d, bias=True, layers=L, lam=lam, nodes=4, end=K * dt, dt=dt,
                          target="tanh(2*x)" if d == 1 else "x1*x2 - 0.5*x2")
    stepper = make_stepper("particle", problem, particle_options(particles=M, integrator="euler", lr=dt, seed=2))
    x, p, y = gd_data(d)
    np.testing.assert_allclose(problem.model.x, x, rtol=0, atol=1e-15)
    np.testing.assert_allclose(problem.model.p, p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(stepper.u[:, 0], np.repeat(np.arange(L) / L, M), rtol=0, atol=1e-15)
    u0 = stepper.u.copy()
    a, w, b = split_layers(u0, L, d)
    eta = L * M * dt
    for _ in range(K):
        loss, ga, gw, gb = numpy_resnet(a, w, b, x, p, y, lam)
        assert stepper.observe().energy == pytest.approx(loss, rel=1e-13, abs=1e-15)
        a, w, b = a - eta * ga, w - eta * gw, b - eta * gb
        assert stepper.step(dt, fixed=True) == dt
    ua, uw, ub = split_layers(stepper.u, L, d)
    assert np.abs(stepper.u - u0).max() > 0.05                # GD did move the particles
    for mine, theirs in ((a, ua), (w, uw), (b, ub)):
        np.testing.assert_allclose(theirs, mine, rtol=0, atol=1e-12)


def test_a_gradient_descent_run_file_holds_the_numpy_resnet_layer_by_layer(tmp_path):
    """The same identity through `run_case` with [time].dt: the file's positions (T, L, M, D)
    are the hand-written iterates, its weights (M,) one layer's (1/M), and the reader's view is
    (L M, 1 + D) with the depth first."""
    d, L, M, lam, dt, K = 2, 3, 5, 0.05, 0.1, 6
    text = resnet_text(d=2, bias=True, layers=L, lam=lam, nodes=4, end=K * dt, dt=dt, snapshots=K + 1,
                       target="x1*x2 - 0.5*x2",
                       extra=f'[solver]\nkind = "particle"\nparticles = {M}\nintegrator = "euler"\nseed = 2\n')
    [result] = run_case(case_from_text(text, "gd.toml"), tmp_path, progress=False, echo=lambda line: None,
                        warn=lambda line: None)
    check_snapshot(result.path)
    x, p, y = gd_data(d)
    with h5py.File(result.path) as f:
        positions, weights = f["positions"][()], f["weights"][()]
    assert positions.shape == (K + 1, L, M, 2 * d + 1)
    np.testing.assert_allclose(weights, np.full(M, 1.0 / M), rtol=1e-15)
    a, w, b = positions[0][..., :d], positions[0][..., d:2 * d], positions[0][..., -1]
    for k in range(1, K + 1):
        _, ga, gw, gb = numpy_resnet(a, w, b, x, p, y, lam)
        a, w, b = a - L * M * dt * ga, w - L * M * dt * gw, b - L * M * dt * gb
        np.testing.assert_allclose(positions[k], np.concatenate([a, w, b[..., None]], axis=-1), rtol=0, atol=1e-12)
    run = open_run(result.path)
    assert run.layers == L and run.axes[0] == "layer"
    np.testing.assert_allclose(run.weights, np.full(L * M, 1.0 / (L * M)), rtol=1e-15)   # joint weights
    last = run.snapshot(-1).positions
    assert last.shape == (L * M, 1 + 2 * d + 1)
    np.testing.assert_allclose(last[:, 0], np.repeat(np.arange(L) / L, M), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(last[:, 1:], positions[-1].reshape(L * M, -1))


# ============================================================================ 3. the linear ResNet

C, S2 = 2.0, 1.0 / 3.0                 # f* = C x; E x^2 on U[-1, 1] (exact for 4 Gauss-Legendre nodes)
MEAN, STD = (0.5, 0.4), (0.5, 0.5)    # every layer's initial Gaussian in (a, w)


def linear_text(L: int, lam: float, end: float, n: int = 4, **kw) -> str:
    return resnet_text(activation="linear", layers=L, lam=lam, target=f"{C}*x", nodes=4, mean=list(MEAN),
                       std=list(STD), bounds=[(-4.0, 4.0)] * 2, cells=[n, n], end=end, **kw)


def initial_moments() -> tuple[float, float]:
    (ma, mw), (sa, sw) = MEAN, STD
    return ma * mw, ma**2 + mw**2 + sa**2 + sw**2


def moment_ode(L: int, lam: float, times: np.ndarray) -> np.ndarray:
    """P(t), Q(t) of every layer of the linear ResNet with L layers (rows), at `times`.

    Derivation. sigma(s) = s, d = 1, no bias: phi(z, u) = a w z, so layer l's step is
    z_{l+1} = (1 + P_l / L) z_l with P_l = E_{rho_l}[a w]. With identical layers (they start
    identical and, V_l being the same for all l, stay so) g = 1 + P/L, z_l = g^l x and
    f = g^L x. The costate: P_L = f - c x = (g^L - c) x and P_l = (1 + P/L) P_{l+1}, so
    P_{l+1} = (g^L - c) g^(L-1-l) x and

        V_l(a, w) = E_x[P_{l+1} a w z_l] + lam (a^2 + w^2)/2 = c1 a w + lam (a^2 + w^2)/2,
        c1 = E[x^2] (g^L - c) g^(L-1)   (the same for every l).

    Each neuron moves linearly: a' = -(c1 w + lam a), w' = -(c1 a + lam w), so
    (a w)' = -c1 (a^2 + w^2) - 2 lam a w and (a^2 + w^2)' = -4 c1 a w - 2 lam (a^2 + w^2):
    the moments P = E[a w], Q = E[a^2 + w^2] close,

        P' = -c1 Q - 2 lam P,   Q' = -4 c1 P - 2 lam Q,   R = E[x^2] (g^L - c)^2 / 2,

    for any initial law (a particle cloud as well as a density).
    """
    def rhs(t, y):
        P, Q = y
        g = 1.0 + P / L
        c1 = S2 * (g**L - C) * g**(L - 1)
        return [-c1 * Q - 2 * lam * P, -4 * c1 * P - 2 * lam * Q]
    sol = solve_ivp(rhs, (0.0, times[-1]), initial_moments(), method="DOP853", rtol=1e-13, atol=1e-15,
                    dense_output=True)
    return sol.sol(times)


def linear_risk(P: np.ndarray, L: int) -> np.ndarray:
    return 0.5 * S2 * ((1.0 + P / L) ** L - C) ** 2


def particle_layer_moments(stepper, L: int) -> np.ndarray:
    """P_l = sum_{j in l} L q_j a_j w_j of each layer."""
    u, q = stepper.u, stepper.weights
    layer = np.rint(u[:, 0] * L).astype(int)
    return np.bincount(layer, L * q * u[:, 1] * u[:, 2], minlength=L)


def grid_layer_moments(stepper) -> np.ndarray:
    """P_l = int a w rho_l of each layer, from the density's cell averages."""
    grid = stepper.problem.grid
    a, w = grid.centres[1], grid.centres[2]
    return np.einsum("lij,i,j->l", stepper.observe().density, a, w) * grid.spacing[1] * grid.spacing[2]


LINEAR_L, LINEAR_LAM, LINEAR_END = 3, 0.05, 2.0
LINEAR_TIMES = np.linspace(0.0, LINEAR_END, 5)


@pytest.mark.parametrize("integrator, options", [("rk4", {"lr": 0.02}), ("adaptive", {"tolerance": 1e-11})])
def test_quadrature_particles_follow_the_linear_moment_ode(integrator, options):
    """3 x 3 Gauss-Hermite nodes per layer hold the initial P, Q exactly and the velocity is
    linear in u, so the particles' moments obey the ODE to the integrator's error: measured
    1.2e-12 (rk4, lr 0.02) and 4.8e-12 (adaptive, 1e-11) in P, the risk alike."""
    L = LINEAR_L
    P, _ = moment_ode(L, LINEAR_LAM, LINEAR_TIMES)
    problem = build_problem(case_from_text(linear_text(L, LINEAR_LAM, LINEAR_END)))
    stepper = make_stepper("particle", problem, particle_options(init="quadrature", nodes=3,
                                                                 integrator=integrator, **options))
    assert stepper.u.shape == (L * 9, 3)
    got = observe_at(stepper, LINEAR_TIMES, lambda s: (*particle_layer_moments(s, L), s.observe().risk))
    assert P[-1] - P[0] > 0.3                                  # the moments do move
    assert np.abs(got[:, :L] - P[:, None]).max() < 1e-8, np.abs(got[:, :L] - P[:, None]).max()
    assert np.abs(got[:, L] - linear_risk(P, L)).max() < 1e-8


def fv_linear_error(n: int) -> float:
    """max over snapshot times and layers of |P_l(t) - P(t)| for fv on n x n cells per layer."""
    problem = build_problem(case_from_text(linear_text(LINEAR_L, LINEAR_LAM, LINEAR_END, n)))
    stepper = make_stepper("fv", problem, defaults("fv"))
    got = observe_at(stepper, LINEAR_TIMES, grid_layer_moments)
    P, _ = moment_ode(LINEAR_L, LINEAR_LAM, LINEAR_TIMES)
    # the box [-4, 4]^2 holds the Gaussian: at t = 0 the cell averages' P is the untruncated one
    assert abs(got[0] - P[0]).max() < 1e-11
    return float(np.abs(got - P[:, None]).max())


def test_fv_follows_the_linear_moment_ode_at_second_order():
    """Measured: 2.49e-3 (32^2 per layer), 6.26e-4 (64^2): observed order 1.99."""
    coarse, fine = fv_linear_error(32), fv_linear_error(64)
    order = np.log2(coarse / fine)
    assert fine < 1e-3 and 1.7 < order < 2.4, (coarse, fine, order)


def test_spectral_follows_the_linear_moment_ode_far_below_fv():
    """The cosine spectral solver on the same layered grid (48^2 per layer): P of every layer
    within 2.0e-9 of the ODE (32^2: 9.8e-9, 64^2: 7.2e-10; fv on 64^2: 6.3e-4), each layer's
    mass 1 to round-off."""
    problem = build_problem(case_from_text(linear_text(LINEAR_L, LINEAR_LAM, LINEAR_END, 48)))
    stepper = make_stepper("spectral", problem, defaults("spectral"))
    got = observe_at(stepper, LINEAR_TIMES, grid_layer_moments)
    P, _ = moment_ode(LINEAR_L, LINEAR_LAM, LINEAR_TIMES)
    assert np.abs(got - P[:, None]).max() < 1e-8, np.abs(got - P[:, None]).max()
    rho = stepper.observe().density
    np.testing.assert_allclose(rho.reshape(LINEAR_L, -1).sum(axis=1) * np.prod(problem.grid.spacing[1:]), 1.0,
                               rtol=0, atol=1e-14)


@pytest.mark.slow
def test_fv_linear_order_on_three_grids():
    """32, 64, 128 per axis: 2.49e-3, 6.26e-4, 1.65e-4 (orders 1.99, 1.92; fitted 1.96)."""
    ns = [32, 64, 128]
    errors = [fv_linear_error(n) for n in ns]
    order = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert errors[-1] < 2.5e-4 and 1.8 < order < 2.3, (errors, order)


CONTINUUM_END = 4.0
CONTINUUM_TIMES = np.linspace(0.0, CONTINUUM_END, 5)


def continuum_P(times: np.ndarray) -> np.ndarray:
    """P_inf(t) of the continuum (L -> infinity) linear ResNet without weight decay, in closed form.

    As L -> infinity, g^L = (1 + P/L)^L -> e^P and g^(L-1) -> e^P, so c1 -> E[x^2] (e^P - c) e^P.
    With lam = 0 each neuron obeys a' = -c1 w, w' = -c1 a, hence (a + w)' = -c1 (a + w) and
    (a - w)' = c1 (a - w): with s(t) = int_0^t c1, every layer's density is transported by the
    hyperbolic rotation a + w -> e^(-s) (a + w), a - w -> e^(s) (a - w) (area preserving), and

        P = E[a w] = (E_0(a + w)^2 e^(-2s) - E_0(a - w)^2 e^(2s)) / 4,
        Q = (E_0(a + w)^2 e^(-2s) + E_0(a - w)^2 e^(2s)) / 2,

    (dP/ds = -Q, dQ/ds = -4P: the moment ODE with lam = 0). P is explicit in s; s(t) solves the
    scalar ODE ds/dt = c1(P(s)) (t = int_0^s ds'/c1, s decreasing to the root of P(s) = log c).
    """
    (ma, mw), (sa, sw) = MEAN, STD
    plus, minus = (ma + mw) ** 2 + sa**2 + sw**2, (ma - mw) ** 2 + sa**2 + sw**2

    def P_of(s):
        return (plus * np.exp(-2 * s) - minus * np.exp(2 * s)) / 4.0

    def rate(t, s):
        P = P_of(s[0])
        return [S2 * (np.exp(P) - C) * np.exp(P)]
    s = solve_ivp(rate, (0.0, times[-1]), [0.0], method="DOP853", rtol=1e-13, atol=1e-15,
                  dense_output=True).sol(times)[0]
    return P_of(s)


def continuum_depth_errors(Ls, with_particles: bool):
    """max_t |P_L(t) - P_inf(t)| for each L, from quadrature particles (checked against the
    ODE of that L to 1e-8) or from the ODE alone."""
    P_inf = continuum_P(CONTINUUM_TIMES)
    errors = []
    for L in Ls:
        P_L = moment_ode(L, 0.0, CONTINUUM_TIMES)[0]
        if with_particles:
            problem = build_problem(case_from_text(linear_text(L, 0.0, CONTINUUM_END)))
            stepper = make_stepper("particle", problem, particle_options(init="quadrature", nodes=3,
                                                                         integrator="rk4", lr=0.02))
            u0 = stepper.u.copy()
            got = observe_at(stepper, CONTINUUM_TIMES, lambda s: particle_layer_moments(s, L))
            assert np.abs(got - P_L[:, None]).max() < 1e-8, (L, np.abs(got - P_L[:, None]).max())
            # the hyperbolic rotation, particle by particle: one factor e^-s for a + w, e^s for a - w
            shrink = (stepper.u[:, 1] + stepper.u[:, 2]) / (u0[:, 1] + u0[:, 2])
            stretch = (stepper.u[:, 1] - stepper.u[:, 2]) / (u0[:, 1] - u0[:, 2])
            assert np.ptp(shrink) < 1e-9 and np.ptp(stretch) < 1e-9 and abs(shrink[0] * stretch[0] - 1) < 1e-8
            errors.append(np.abs(got - P_inf[:, None]).max())       # every layer, every time
        else:
            errors.append(np.abs(P_L - P_inf).max())
    return np.array(errors)


def test_continuum_closed_form_solves_the_infinite_depth_moment_ode():
    """The closed form P_inf(s(t)) against the L = infinity moment ODE (c1 with e^P) to 1e-10;
    the L-layer ODE at L = 4096 is 5.7e-5 from it (the 1/L term: 0.235/L at t = 4)."""
    P_inf = continuum_P(CONTINUUM_TIMES)

    def rhs(t, y):
        P, Q = y
        c1 = S2 * (np.exp(P) - C) * np.exp(P)
        return [-c1 * Q, -4 * c1 * P]
    direct = solve_ivp(rhs, (0, CONTINUUM_END), initial_moments(), method="DOP853", rtol=1e-13, atol=1e-15,
                       dense_output=True).sol(CONTINUUM_TIMES)[0]
    assert np.abs(direct - P_inf).max() < 1e-10
    assert P_inf[-1] - P_inf[0] > 0.45 and P_inf[-1] < np.log(C)
    assert np.abs(moment_ode(4096, 0.0, CONTINUUM_TIMES)[0] - P_inf).max() < 7e-5


def test_depth_error_falls_like_one_over_L():
    """Quadrature particles for L = 4, 8, 16, 32 layers (each equal to its L's ODE to 1e-8, and
    each particle's a + w and a - w scaled by one factor e^-s and its inverse): the depth error
    max_t |P_L - P_inf| is 6.0e-2, 3.0e-2, 1.48e-2, 7.4e-3 (t = 0..4): observed order 1.01."""
    Ls = np.array([4, 8, 16, 32])
    errors = continuum_depth_errors(Ls, with_particles=True)
    order = -np.polyfit(np.log(Ls), np.log(errors), 1)[0]
    assert 0.9 < order < 1.1, (errors, order)
    assert np.all(np.abs(np.log2(errors[:-1] / errors[1:]) - 1) < 0.1), errors


# ============================================================================ 4. a tanh case

def tanh_text(n: int = 32) -> str:
    return resnet_text(layers=3, target="2*x - 0.5*x**3", lam=0.05, nodes=8, mean=[0.2, 0.5], std=[0.4, 0.4],
                       bounds=[(-2.5, 3.0), (-2.5, 3.5)], cells=[n, n], end=2.0)


TANH_TIMES = np.linspace(0.0, 2.0, 5)


def risks_of(stepper) -> np.ndarray:
    return observe_at(stepper, TANH_TIMES, lambda s: s.observe().risk)


@pytest.fixture(scope="module")
def tanh_reference():
    """Risks of quadrature particles (12 x 12 Gauss-Hermite nodes per layer, rk4 at lr 0.02) at
    TANH_TIMES, checked against 8 x 8 nodes (measured 2.5e-9 apart)."""
    problem = build_problem(case_from_text(tanh_text()))

    def quadrature(nodes):
        return risks_of(make_stepper("particle", problem, particle_options(init="quadrature", nodes=nodes,
                                                                           integrator="rk4", lr=0.02)))
    reference = quadrature(12)
    assert np.abs(quadrature(8) - reference).max() < 2e-8
    return reference


def fv_tanh_error(n: int, reference: np.ndarray) -> float:
    problem = build_problem(case_from_text(tanh_text(n)))
    return float(np.abs(risks_of(make_stepper("fv", problem, defaults("fv"))) - reference).max())


def test_tanh_fv_converges_to_quadrature_particles(tanh_reference):
    """max_t |R_fv - R_quadrature| (risk 0.064 -> 0.036): 7.8e-5 on 32^2, 2.9e-5 on 64^2 per layer."""
    coarse, fine = fv_tanh_error(32, tanh_reference), fv_tanh_error(64, tanh_reference)
    assert fine < 5e-5 and fine < coarse / 2.2, (coarse, fine)


@pytest.mark.slow
def test_tanh_fv_order_approaches_two(tanh_reference):
    """32, 64, 128: 7.8e-5, 2.9e-5, 8.8e-6 (orders 1.4, 1.7)."""
    errors = [fv_tanh_error(n, tanh_reference) for n in (32, 64, 128)]
    assert errors[2] < 1.5e-5 and np.log2(errors[1] / errors[2]) > 1.55, errors


def test_tanh_random_particles_agree_within_monte_carlo_error(tanh_reference):
    """8 seeds of 400 random particles per layer (rk4, lr 0.1): the mean risk is within 4 standard
    errors of the quadrature reference at every time, the spread ~ 1e-3 dwarfs the fv error
    on 32^2 (7.8e-5) and the quadrature error, and fv agrees with each seed as well."""
    problem = build_problem(case_from_text(tanh_text()))
    runs = np.array([risks_of(make_stepper("particle", problem, particle_options(particles=400, seed=seed,
                                                                                   integrator="rk4", lr=0.1)))
                     for seed in range(8)])
    spread = runs.std(axis=0, ddof=1)
    standard_error = spread / np.sqrt(len(runs))
    deviation = np.abs(runs.mean(axis=0) - tanh_reference)
    assert np.all(deviation < 4 * standard_error), (deviation, standard_error)
    assert np.all(spread > 1e-4) and np.all(spread < 5e-3), spread      # Monte Carlo, not broken
    fv = risks_of(make_stepper("fv", problem, defaults("fv")))
    assert np.all(np.abs(fv - tanh_reference) < 0.2 * spread)


# ============================================================================ 5. invariants

def invariant_text(kind: str, *, bias=False, refresh=1, temperature=0.0, end=1.0, options="") -> str:
    """Three layers with different initial means (`layer_means` in tau), weight decay."""
    D = 2 + bias
    return resnet_text(bias=bias, layers=3, refresh=refresh, target="2*x - 0.5*x**3", lam=0.05,
                       temperature=temperature, nodes=8, mean=[0.2, 0.5, 0.0][:D], std=[0.4] * D,
                       layer_means=['"0.2 + tau"', '"0.5 - tau"', '"0.3*tau"'][:D],
                       bounds=[(-2.5, 3.0), (-2.5, 3.5), (-2.5, 2.5)][:D], cells=[24, 24] if D == 2 else [12] * 3,
                       end=end, snapshots=4, extra=f'[solver]\nkind = "{kind}"\n{options}')


@pytest.mark.parametrize("bias, temperature", [(False, 0.0), (False, 0.02), (True, 0.0), (True, 0.02)])
def test_fv_layer_mass_positivity_and_energy_decay_every_step(bias, temperature):
    """fv, refresh = 1: after every step each layer's int rho_l du is 1 to 1e-14, rho >= 0, and
    the energy R + (1/L) sum_l [lam/2 int |u|^2 rho_l + T int rho_l log rho_l] never rises."""
    problem = build_problem(case_from_text(invariant_text("fv", bias=bias, temperature=temperature, end=2.0)))
    stepper = make_stepper("fv", problem, defaults("fv"))
    grid = problem.grid
    layer_volume = float(np.prod(grid.spacing[1:]))
    means = np.array(problem.case.initial.layer_means)
    assert np.ptp(means[:, 0]) > 0.5                         # the layers start apart
    energies, t, steps = [stepper.observe().energy], 0.0, 0
    while t < 2.0 * (1 - 1e-14):
        t += stepper.step(2.0 - t)
        steps += 1
        obs = stepper.observe()
        rho = obs.density
        assert rho.shape == grid.shape and rho.min() >= 0.0
        np.testing.assert_allclose(rho.reshape(3, -1).sum(axis=1) * layer_volume, 1.0, rtol=0, atol=1e-14)
        energies.append(obs.energy)
    assert steps > 10
    rises = np.diff(energies)
    assert rises.max() < 0.0 and energies[-1] < 0.8 * energies[0], (rises.max(), energies[0], energies[-1])


def test_particle_free_energy_with_noise_is_the_mean_of_the_layer_entropies():
    """T > 0: the free energy R + (1/L) sum_l [lam/2 int |u|^2 rho_l + T int rho_l log rho_l] of
    4000 random particles per layer at t = 0 is fv's on 64^2 cells per layer (whose entropy of
    the Gaussian cell averages is accurate) up to the risk's Monte Carlo error and the
    k-nearest-neighbour entropy estimate's bias: both ~1e-3 (two_layer, 8000 particles: 6e-4).
    Each layer's entropy is estimated from its own particles (in a, w), not from the joint cloud
    (tau, a, w), whose layer coordinate is no density axis."""
    from gflow.solvers.entropy import kl_neg_entropy

    L, T = 3, 0.05
    text = resnet_text(layers=L, lam=0.05, temperature=T, nodes=8, mean=[0.2, 0.5], std=[0.4, 0.4],
                       bounds=[(-2.5, 3.0), (-2.5, 3.5)], cells=[64, 64])
    problem = build_problem(case_from_text(text))
    fv = make_stepper("fv", problem, defaults("fv")).observe()
    stepper = make_stepper("particle", problem, particle_options(particles=4000))
    particles = stepper.observe()
    u, q = stepper.u, stepper.weights
    layer = np.rint(u[:, 0] * L).astype(int)
    per_layer = np.mean([kl_neg_entropy(u[layer == l, 1:], L * q[layer == l]) for l in range(L)])
    decay = 0.5 * 0.05 * float(q @ (u[:, 1:] ** 2).sum(axis=1))
    assert abs(particles.risk - fv.risk) < 1e-3
    assert abs(particles.energy - fv.energy) < 3e-3, (particles.energy, fv.energy,
                                                      particles.risk + decay + T * per_layer)


def run(case, out, **kwargs):
    return run_case(case, out, progress=False, echo=lambda line: None, warn=lambda line: None, **kwargs)


class Stop(KeyboardInterrupt):
    """Ctrl-C right after a snapshot is on disk."""


def stop_after(written: int):
    def callback(index, t, observation):
        if index == written - 1:
            raise Stop
    return callback


def test_layer_means_move_each_layers_initial_law():
    """`layer_means` in tau: quadrature particles (to 1e-12) and fv's cell averages (to 2e-7:
    layer 2's mean a = 0.87 sits 5.3 std from the box edge a = 3) have, in every layer, the
    mean of that layer's Gaussian (0.2 + tau_l, 0.5 - tau_l)."""
    problem = build_problem(case_from_text(invariant_text("fv")))
    taus = np.arange(3) / 3
    expected = np.column_stack([0.2 + taus, 0.5 - taus])
    np.testing.assert_allclose(problem.case.initial.layer_means, expected, rtol=0, atol=1e-15)
    stepper = make_stepper("particle", problem, particle_options(init="quadrature", nodes=4))
    u, q = stepper.u, stepper.weights
    layer = np.rint(u[:, 0] * 3).astype(int)
    for l in range(3):
        np.testing.assert_allclose((3 * q[layer == l]) @ u[layer == l, 1:], expected[l], rtol=0, atol=1e-12)
    grid = problem.grid
    rho = problem.initial_density()
    du = float(np.prod(grid.spacing[1:]))
    np.testing.assert_allclose(np.einsum("lij,i->l", rho, grid.centres[1]) * du, expected[:, 0], rtol=0, atol=2e-7)
    np.testing.assert_allclose(np.einsum("lij,j->l", rho, grid.centres[2]) * du, expected[:, 1], rtol=0, atol=2e-7)


@pytest.mark.parametrize("refresh, sweeps", [(1, 20), (3, 8), (20, 2)])
def test_refresh_sweeps_every_k_steps_counted_from_the_snapshot(refresh, sweeps):
    """Euler particles, lr 0.1, snapshots at t = 0, 1, 2 through the run loop: 10 steps per
    interval, so ceil(10 / k) sweeps per interval (one velocity per Euler step); a frozen
    sweep changes the trajectory, refresh = 1 is plain gradient descent."""
    from gflow.solvers.loop import run as run_loop

    finals = {}
    for k in (1, refresh):
        problem = build_problem(case_from_text(invariant_text("particle", refresh=k)))
        stepper = make_stepper("particle", problem, particle_options(particles=20, integrator="euler", lr=0.1))
        summary = run_loop(stepper, np.array([0.0, 1.0, 2.0]))
        assert summary.steps == 20
        finals[k] = stepper.u.copy()
        if k == refresh:
            assert problem.model.schedule.sweeps == sweeps
    if refresh > 1:
        assert np.abs(finals[refresh] - finals[1]).max() > 1e-4


RESUME_CASES = {
    "fv": ("fv", 1, 0.0, ""),
    "fv refresh 3, noise": ("fv", 3, 0.01, ""),
    "particle": ("particle", 1, 0.0, "particles = 50\n"),
    "particle refresh 3, SGD, Langevin": ("particle", 3, 0.01, "particles = 50\nbatch = 4\n"),
    "quadrature particles refresh 2, adaptive": ("particle", 2, 0.0, 'init = "quadrature"\nnodes = 4\n'
                                                                     'integrator = "adaptive"\n'),
}


@pytest.mark.parametrize("name", RESUME_CASES)
def test_resume_is_bitwise_and_the_file_holds_each_layers_mass(name, tmp_path):
    """A run interrupted after its first or second snapshot and resumed equals the uninterrupted
    run bit for bit (every dataset), the refresh schedule (counted from the last snapshot), the
    minibatch and noise streams included. The file's `layer_mass` (T, L) is 1 to 1e-14 in every
    layer, and so is each layer's sum of the stored density times du (fv)."""
    kind, refresh, temperature, options = RESUME_CASES[name]
    case = case_from_text(invariant_text(kind, refresh=refresh, temperature=temperature, options=options),
                          f"{kind}.toml")
    [whole] = run(case, tmp_path / "whole")
    check_snapshot(whole.path)
    reference = result_datasets(whole.path)
    for written in (1, 2):
        out = tmp_path / f"cut{written}"
        with pytest.raises(Stop):
            run(case, out, on_snapshot=stop_after(written))
        assert result_datasets(out / f"{kind}.h5")["time"].shape == (written,)
        [resumed] = run(case, out, resume=True)
        assert resumed.resumed_from == pytest.approx((written - 1) / 3)
        check_snapshot(resumed.path)
        again = result_datasets(resumed.path)
        assert sorted(again) == sorted(reference)
        for key, value in reference.items():
            np.testing.assert_array_equal(again[key], value, err_msg=key)
    assert reference["layer_mass"].shape == (4, 3) and reference["layer"].shape == (3,)
    np.testing.assert_allclose(reference["layer_mass"], 1.0, rtol=0, atol=1e-14)
    assert reference["risk"][-1] < reference["risk"][0]
    if kind == "fv":
        density = reference["density"]
        assert density.shape == (4, 3, 24, 24) and density.min() >= 0.0
        du = np.diff(reference["a"])[0] * np.diff(reference["w"])[0]
        np.testing.assert_allclose(density.sum(axis=(2, 3)) * du, 1.0, rtol=0, atol=1e-13)
        run_ = open_run(whole.path)
        assert run_.layers == 3 and run_.snapshot(-1).density.shape == (3, 24, 24)
        assert run_.snapshot(-1).density.sum() * run_.cell_volume == pytest.approx(1.0, abs=1e-13)
