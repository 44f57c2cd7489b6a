"""Explicit second-order finite volume (Carrillo, Chertock, Huang 2015) with SSP-RK3.

Mass is conserved to round-off (fluxes cancel in pairs, boundary faces carry none),
rho stays >= 0 under the step limit of `fv_flux.stable_dt` (scaled by `cfl`), and the
semi-discrete energy decreases. Third-order strong-stability-preserving Runge-Kutta
(Shu-Osher) keeps those properties for the full step, since each stage is a convex
combination of forward-Euler steps, provided every stage's velocity obeys the limit.

Step control: a step tries cfl times the first stage's limit (at most GROWTH times the last
step); a later stage whose velocity breaks the Euler limit for that dt, or a step beyond
the stiffness estimate `stiff_dt` (near equilibrium the velocities, hence the positivity
limit, vanish while d F / d rho does not, and large steps stop dissipating energy), is
retried smaller. So rho >= 0 and the energy decay hold whatever the snapshot spacing
(small.toml to t = 200 with three snapshots: min rho -0.0086 and a rising energy with the
first stage's limit alone, >= 0 and decreasing now).

Grid operators whose velocity is separable in the a axis (they offer `velocity_factors`: the
two-layer model's, and the ResNet's with one set of factors per layer, `layered = True`) on 2D
and 3D grids (per layer) take the fused numba kernel of `fv_kernels` (one pass over memory per
stage, called layer by layer); everything else, and `kernel = "numpy"`, takes the plain numpy
path of `fv_flux`, which the kernel is tested against (tests/test_fv_kernel.py).

Birth-death (`[dynamics] birth_death`, `gflow.solvers.birth_death`): after each step the exact
per-cell reaction rho <- rho exp(-kappa dt (V - <V>)) renormalised, V the operator's `potential`,
in reaction steps held to the spread and stiffness limits of `Reaction` (each lowers the energy);
the transport step is capped by the same limits. Wasserstein-Fisher-Rao (`[dynamics] fisher_rao`,
`gflow.solvers.wfr`): the same with rho <- rho exp(-alpha dt V), not renormalised, after a
transport step whose velocity is beta (-grad V) (`scaled_transport`).
"""
from __future__ import annotations

import numpy as np

from gflow.solvers import fv_kernels
from gflow.solvers.base import Observation, Stepper, grid_of
from gflow.solvers.birth_death import Reactor, reaction_of
from gflow.solvers.fv_flux import fv_rhs, stable_dt
from gflow.errors import RunError
from gflow.solvers.integrators import SSPRK3_STAGES, ssprk3
from gflow.solvers.wfr import fisher_rao_of, scaled_transport, transport_of

#: a step may be at most this multiple of the last one (step control, with the stage checks)
GROWTH = 2.0
#: the largest dt times the estimated stiffness rate |dF/drho| of a step (`stiff_dt`)
STIFFNESS = 1.0


class _Retry(Exception):
    """A later stage broke the step's limit (`limit`): the step is tried again, smaller."""

    def __init__(self, limit: float):
        self.limit = limit


def stiff_dt(u0: np.ndarray, u1: np.ndarray, u2: np.ndarray, dt: float, fused: bool = False) -> float:
    """The step at which dt |dF/drho| reaches STIFFNESS, from the first two SSP-RK3 stages.

    u1 - u0 = dt F(u0) and 4 u2 - 3 u0 - u1 = dt F(u1), so dt times the local Lipschitz rate
    of F along the step is max|4 u2 - 2 u0 - 2 u1| / max|u1 - u0| (Shampine's stiffness
    estimate). Near equilibrium the velocities are small and the positivity limit large,
    while F stays stiff: steps beyond ~1 / rate keep rho >= 0 but no longer dissipate energy.
    """
    if fused:   # the same maxima in one threaded pass (max is exact in any order)
        chunk = 1 << 15
        maxima = fv_kernels.stiff_maxima if u0.size > chunk else fv_kernels.stiff_maxima_serial
        change, curve = maxima(u0.reshape(-1), u1.reshape(-1), u2.reshape(-1), chunk)
    else:
        change = np.abs(u1 - u0).max()
        curve = np.abs(4.0 * u2 - 2.0 * u0 - 2.0 * u1).max()
    if change == 0:
        return np.inf
    rate = float(curve) / (float(change) * dt)
    return np.inf if rate == 0 else STIFFNESS / rate


class FiniteVolumeStepper(Stepper):
    kind = "fv"

    def __init__(self, problem, options):
        super().__init__(problem, options)
        self.grid = grid_of(problem)
        self.operator = problem.grid_operator()
        self.rho = problem.initial_density()
        self.theta = self.options["theta"]
        self.cfl = self.options["cfl"]
        # frozen axes (train) neither drift nor diffuse: T acts along trained axes only
        self.temperature = np.where(problem.model.trained, problem.temperature, 0.0)
        self.spacing = self.grid.spacing
        self.limited_steps = 0
        self.rejected_steps = 0
        #: the last step not cut short by a snapshot time (the growth cap's reference)
        self._last_step = np.inf
        #: 1 when the operator's factors come per layer (a layered model: the grid's first axis
        #: is the frozen layer axis, each layer a grid of its own to the kernel), else 0
        self._lead = int(getattr(self.operator, "layered", False))
        self.fused = (self.options["kernel"] == "numba" and fv_kernels.numba is not None
                      and hasattr(self.operator, "velocity_factors") and self.grid.ndim - self._lead in (2, 3))
        if self.fused:
            self._buffers = [np.empty_like(self.rho) for _ in range(3)]
            self._moments = [np.empty(self._moment_shape()) for _ in range(3)]
            self._m1 = None   # a-moment of rho (no da); the last stage returns the next one
            self._blocks = fv_kernels.plane_blocks(self._view(self.rho).shape[1:])
            # one block of planes: the one-thread build of the same loops (same bits, no pool)
            self._stage = fv_kernels.stage if len(self._blocks) > 2 else fv_kernels.stage_serial
        #: birth-death (`gflow.solvers.birth_death`), or Wasserstein-Fisher-Rao's reaction -alpha V rho
        #: (`gflow.solvers.wfr`): the reaction after each transport step, or None
        self.birth_death = reaction_of(problem) or fisher_rao_of(problem)
        #: beta, the factor of the transport velocity (`[dynamics] transport`; 1 but with fisher_rao)
        self.transport = transport_of(problem)
        if self.birth_death is not None:
            self._reactor = Reactor(lambda: self.rho, lambda: self.operator.potential(self.rho), self._react,
                                    lambda: self.rho.copy(), self._unreact)
            self.birth_death.prime(self._reactor)
            self.conserves_mass = self.birth_death.conserves_mass

    # ------------------------------------------------------------------ birth-death
    def _react(self, Vc: np.ndarray, h: float) -> None:
        """One exact reaction step on the cells (rho >= 0 stays so: a positive factor per cell)."""
        self.birth_death.scale(self.rho, Vc, h)
        if self.fused:
            self._m1 = None     # the kernel's a-moment no longer belongs to rho

    def _unreact(self, saved: np.ndarray) -> None:
        self.rho[...] = saved
        if self.fused:
            self._m1 = None

    # ------------------------------------------------------------------ numpy path
    def rhs(self, rho: np.ndarray, velocities=None) -> np.ndarray:
        velocities = self.operator.face_velocities(rho) if velocities is None else velocities
        return fv_rhs(rho, velocities, self.spacing, self.theta, self.temperature)

    def _step_numpy(self, dt_max: float) -> float:
        rho = self.rho
        velocities = self.operator.face_velocities(rho)
        first = self.rhs(rho, velocities)
        dt = self._first_try(dt_max, stable_dt(velocities, self.spacing, self.temperature))
        while True:
            stages: list[np.ndarray] = []

            def checked_rhs(u: np.ndarray) -> np.ndarray:
                """F at a later stage, once its velocity (and, at the third, the stiffness) allow dt."""
                v = self.operator.face_velocities(u)
                limit = stable_dt(v, self.spacing, self.temperature)
                stages.append(u)
                if len(stages) == 2:
                    limit = min(limit, stiff_dt(rho, stages[0], u, dt))
                if not dt <= limit:
                    raise _Retry(limit)
                return self.rhs(u, v)

            try:
                self.rho = ssprk3(rho, checked_rhs, dt, first=first)
            except _Retry as retry:
                dt = self._retry(dt, retry.limit)
                continue
            return self._accept(dt, dt_max)

    # ------------------------------------------------------------------ step control
    def _first_try(self, dt_max: float, limit: float) -> float:
        """cfl times the first stage's limit, at most GROWTH times the last step."""
        return min(dt_max, self.cfl * limit, GROWTH * self._last_step)

    def _retry(self, dt: float, limit: float) -> float:
        """A stage's velocity broke the Euler limit: shrink (at least halve) and try again."""
        self.rejected_steps += 1
        dt = min(self.cfl * limit, 0.5 * dt)
        if not dt > 0:
            raise RunError(f"the fv step fell to {dt:g} (a stage's stability limit is {limit:g})")
        return dt

    def _accept(self, dt: float, dt_max: float) -> float:
        # a step cut short to land on a snapshot time says nothing against the next one
        self._last_step = max(self._last_step, dt) if dt >= dt_max else dt
        return dt

    # ------------------------------------------------------------------ fused path
    def _view(self, rho: np.ndarray) -> np.ndarray:
        """The (layer, a, y, z) view the kernel works on, one (a, y, z) grid per layer: an unlayered
        model is one layer, and a 2D grid (n_a, 1, n_w)."""
        shape = rho.shape[self._lead:]
        if len(shape) == 2:
            shape = (shape[0], 1, shape[1])
        return rho.reshape(-1, *shape)

    def _moment_shape(self) -> tuple[int, ...]:
        """(layers, y, z): each layer's a-moment on the kernel's grid."""
        v = self._view(self.rho)
        return (v.shape[0], *v.shape[2:])

    def _kernel_args(self, m1: np.ndarray):
        """The kernel's factors, each with a leading layer index, from the a-moments m1 (S, y, z)."""
        op = self.operator
        da = self.spacing[self._lead]
        if self._lead:
            G, L0, rest = op.velocity_factors(m1.reshape(-1, *op.wb_shape) * da)
        else:
            G, L0, rest = op.velocity_factors(m1.reshape(op.wb_shape) * da)
            G, rest = G[None], [(H[None], L) for H, L in rest]
        if len(rest) == 1:   # 2D: the w axis plays the kernel's third axis
            (H2, L2), = rest
            S = G.shape[0]
            G, H2 = G.reshape(S, 1, -1), H2.reshape(S, 1, -1)
            H1, L1 = np.zeros((S, 2, H2.shape[2] - 1)), np.zeros(2)
        else:
            (H1, L1), (H2, L2) = rest
        return G, L0, H1, L1, H2, L2

    def _fused_stable_dt(self, args) -> float:
        """`fv_flux.stable_dt` of the factors' velocities: per axis the largest speed over every
        layer, as the numpy path takes it over the whole grid."""
        G, L0, H1, L1, H2, L2 = args
        a = self.operator.a
        # each velocity is affine in the a (or face) coordinate: its extremes sit at the ends
        trained = self.problem.model.trained[self._lead]
        rates = [max(np.abs(G + L0[0]).max(), np.abs(G + L0[-1]).max()) if trained else 0.0]
        for H, L, axis in ((H1, L1, 1), (H2, L2, 2)):
            if H.size and np.any(H) or np.any(L):
                shape = [1] * H.ndim
                shape[axis] = -1
                Lb = L.reshape(shape)
                rates.append(max(np.abs(a[0] * H + Lb).max(), np.abs(a[-1] * H + Lb).max()))
            else:
                rates.append(0.0)
        h = self._kernel_spacing()
        rate = sum(2.0 * r / hk for r, hk in zip(rates, h) if hk > 0)
        rate += sum(2.0 * T / (hk * hk) for T, hk in zip(self.temperature, self.spacing))
        return np.inf if rate == 0 else 1.0 / rate

    def _kernel_temperature(self) -> np.ndarray:
        T = self.temperature[self._lead:]
        return T if len(T) == 3 else np.array([T[0], 0.0, T[1]])

    def _kernel_spacing(self) -> np.ndarray:
        h = self.spacing[self._lead:]
        return h if len(h) == 3 else np.array([h[0], 1.0, h[1]])

    def _step_fused(self, dt_max: float) -> float:
        u = self._view(self.rho)
        if self._m1 is None:
            self._m1 = np.empty(self._moment_shape())
            for layer, m1 in zip(u, self._m1):
                fv_kernels.a_moment(layer, self.operator.a, m1, self._blocks)
        first = self._kernel_args(self._m1)
        dt = self._first_try(dt_max, self._fused_stable_dt(first))
        h = self._kernel_spacing()
        while True:
            try:
                self._fused_stages(u, first, dt, h)
                break
            except _Retry as retry:
                dt = self._retry(dt, retry.limit)
        # rotate buffers: the result becomes rho, the old rho a scratch buffer
        result = self._buffers[2]
        self._buffers[2] = self.rho
        self.rho = result
        self._m1, self._moments[2] = self._moments[2], self._m1
        return self._accept(dt, dt_max)

    def _fused_stages(self, u, args, dt: float, h) -> None:
        """The three stages into the buffers (u untouched); `_Retry` as soon as a later stage's
        velocity (or, at the third, the stiffness) breaks the limit for dt."""
        stage_in = u
        for index, ((c0, c1), buf, mom) in enumerate(zip(SSPRK3_STAGES, self._buffers, self._moments)):
            if index:
                limit = self._fused_stable_dt(args)
                if index == 2:
                    limit = min(limit, stiff_dt(u, self._view(self._buffers[0]), stage_in, dt, fused=True))
                if not dt <= limit:
                    raise _Retry(limit)
            out = self._view(buf)
            G, L0, H1, L1, H2, L2 = args
            T = self._kernel_temperature()
            for s in range(u.shape[0]):     # a loop over layers (one for a two-layer model), not cells
                self._stage(stage_in[s], u[s], out[s], mom[s], c0, c1, dt, G[s], L0, self.operator.a,
                                 H1[s], L1, H2[s], L2, h, self.theta, T, self._blocks)
            stage_in = out
            if index < 2:   # the next step starts from its own first factors
                args = self._kernel_args(mom)

    def restart_state(self) -> dict:
        """The growth cap's reference step, so that a resumed run steps as if never stopped."""
        state = {"last_step": float(self._last_step), "rejected_steps": int(self.rejected_steps)}
        return state if self.birth_death is None else {**state, **self.birth_death.state()}

    def restore(self, density, positions, state) -> None:
        super().restore(density, positions, state)
        self._last_step = float(state.get("last_step", np.inf))
        self.rejected_steps = int(state.get("rejected_steps", 0))
        if self.birth_death is not None:
            self.birth_death.restore(state)
        if self.fused:
            self._m1 = None

    # ------------------------------------------------------------------ interface
    def step(self, dt_max: float, fixed: bool = False) -> float:
        """One transport step (SSP-RK3), then birth-death's reaction over it where the case has one."""
        bd = self.birth_death
        transport_max = dt_max if bd is None else bd.cap(dt_max, self.time)
        dt = scaled_transport(self._step_fused if self.fused else self._step_numpy, transport_max, self.transport)
        if bd is not None:
            bd.advance(self.time, dt, self._reactor)
            self.time += dt
        if dt < dt_max:
            self.limited_steps += 1
        return dt

    def summary(self) -> str:
        words = [f"{self.rejected_steps} steps retried smaller"] if self.rejected_steps else []
        if self.birth_death is not None:
            words.append(self.birth_death.summary())
        return ", ".join(words)

    def observe(self) -> Observation:
        rho = self.rho
        risk = self.operator.risk(rho)
        return Observation(rho.copy(), risk, self.operator.energy(rho, risk), self.grid.mass(rho))
