"""Particles: gradient descent, SGD and Langevin dynamics as the Lagrangian discretisation.

m particles u_j with weights q_j (1/m for random draws) follow the characteristics of
d_t rho = div(rho grad V[rho]) + T lap rho for the empirical measure rho_m = sum_j q_j delta_{u_j}:

    du_j = -grad V(u_j; rho_m) dt + sqrt(2 T) dW_j                  (BACKGROUND.md, "Particles")

V comes from the model itself (`Model.velocity`, `gflow.models.base`), the same model the grid
solvers evaluate on their grid: one implementation of V, several discretisations. For the
two-layer model with q_j = 1/m, the loss L(u_1..u_m) = 1/2 E_x (f_m - f*)^2 of the network
f_m = (1/m) sum_j a_j sigma(w_j.x + b_j) has dL/du_j = (1/m) grad V(u_j) (add lam/(2m) sum|u_j|^2
to L for weight decay), so one forward-Euler step u_j <- u_j - dt grad V(u_j) is one step of
plain gradient descent on m L with learning rate dt (Mei, Montanari, Nguyen, PNAS 2018, eq. 5).

Options (`gflow.solver_options`, kind "particle"):

- init: "random" (m i.i.d. draws, q_j = 1/m) or "quadrature" (`solvers.quadrature`: tensor
  Gauss-Hermite nodes with their weights, `nodes` per axis, for Gaussian initial densities,
  the midpoint rule on the grid otherwise). Random particles carry a Monte Carlo risk error
  ~ m^(-1/2); quadrature particles follow the same characteristics, so while the flow map
  stays smooth their error falls spectrally in the nodes per axis. Quadrature is refused
  with T > 0 (noise would undo it: the blob solver takes quadrature particles for the
  entropy term) and with scaling = "conventional" (the plain sum has no weights).
- integrator: "auto" (the default) is "euler" for random particles (plain GD) and "rk4" for
  quadrature particles, since forward Euler's O(dt) error would hide the spectral accuracy
  (with lr = 0.05 on the quickstart, RK4's time error is ~1e-8 of the risk to t = 10; lower `lr`,
  or use "adaptive" with a small `tolerance`, for more). "euler" (gradient descent), "rk4"
  (classical Runge-Kutta), "adaptive"
  (Dormand-Prince 5(4) with the standard step-size controller of Hairer, Norsett, Wanner,
  Solving ODEs I, section II.4; atol = rtol = `tolerance`, first trial step `lr`). Its error
  norm is the q-weighted RMS over particles, sqrt(sum_j q_j |e_j|^2 / D): a bound on the W2
  error of the step's empirical measure, not on the worst particle.
- step: the case's [time].dt when given; otherwise `lr` for euler and rk4, and the
  controller's choice for adaptive (never beyond the next snapshot time). For models whose
  pair interaction is singular at r = 0 (`Model.singular_interaction`: -log r, r^-3; not r,
  r^2 or a Gaussian, whose forces stay bounded) every integrator also caps the step so that
  no particle moves more than NEIGHBOUR_CFL of the distance to its nearest neighbour
  relative to it (the relative speed |v_i - v_j|: a pair moving as one never limits the
  step): explicit steps on a singular pair force would jump particles past each other. The
  cap never shortens a fixed [time].dt silently: a step it would shorten stops the run in
  one line. `neighbour_cap = false` turns it off (the case's dt, or lr, is then taken as given).
- batch > 0: minibatch SGD; each step draws `batch` data points i.i.d. from the data measure
  (probabilities p_m / P, P = sum_m p_m its total: 1, or the volume of a Lebesgue measure) and
  uses the unbiased estimate (P/batch) sum of the batch in place of E_x, for every stage of that step. A model that knows its data law (`draw_batch`: isotropic data
  in R^d) draws them afresh from the law instead: online SGD, unbiased for the population.
- temperature T > 0: Euler-Maruyama noise sqrt(2 T dt) N(0, 1) on every trained coordinate after
  the deterministic step (exact Euler-Maruyama for euler; a Lie splitting otherwise). Like
  the grid solvers' T lap rho, the noise acts on every axis, frozen ones included.
- scaling: "mean_field" (the default) uses q_j = 1/m in the network. "conventional" uses the
  plain sum f = sum_j a_j sigma(w_j.x + b_j) (network weights 1) and moves each particle by
  -dt dL/du_j = -dt grad V(u_j; r) with the residual r of that plain sum (and weight decay
  lam/2 sum |u_j|^2 in L). At initialisation f is then O(sqrt(m)) and each particle's velocity
  grows with m, so with a fixed dt the dynamics has no m -> infinity limit (it blows up, or,
  with dt ~ 1/m, freezes into the lazy/kernel regime): the contrast the mean-field scaling
  removes. The snapshot's `weights` stay 1/m (the empirical measure of the neurons), and its
  risk and energy are those of the plain-sum network. Two-layer models only.

- kernel: "numba" (the default) evaluates the two-layer velocity with the fused, threaded
  kernel of `gflow.models.two_layer_kernels` (two passes over particle x datum pairs, ~1.75 ns
  per pair per step on two cores in float64, ~0.7 in float32); "numpy" with the model's own
  numpy methods, which the kernel is tested against to round-off.
- precision: "float64" (the default) or "float32", the float type of that kernel's pair work
  (kernel = "numba" and a fused unit only; refused otherwise). float32 is ~2.5x faster (8
  lanes of AVX2, a float32 tanh); the state stays float64: positions and weights (converted as
  the kernel loads each block), the chunk sums of the network, the residual, the velocities,
  and the risk and energy observed at snapshots (the float64 kernel), so the run file is the
  same format. The trajectory differs from float64's by float32 round-off in each velocity: on
  the quickstart to t = 2 (m = 10^4 and 10^5, euler, lr = 0.05) the risk by 5e-9 relative and
  the positions by 1e-7 (2e-8 of the largest coordinate).

- birth_death_scheme (with `[dynamics] birth_death`, `gflow.solvers.birth_death`): "weights"
  (the default: dq_j/dt = -kappa (V(u_j) - <V>) q_j, exact per step, renormalised) or
  "stochastic" (Rotskoff et al.'s kill/clone with probability kappa |V_j - <V>| dt, the
  population restored to m, weights 1/m; its own random stream, saved for resume).

- `[dynamics] fisher_rao` (Wasserstein-Fisher-Rao, `gflow.solvers.wfr`): Chizat's conic particle
  step instead, u_j <- u_j - lr beta grad V(u_j) and q_j <- q_j exp(-alpha lr V(u_j)) from the
  same state; the weights are masses (their sum changes), stored per snapshot.

Observation: density by cloud-in-cell binning on the case grid of the particles inside its box
(`solvers.deposit`; the binned mass, reported as `mass`, is the weight inside); risk = R[rho_m];
energy = R + lam/2 sum_j q_j |u_j|^2 + T int rho log rho, the same free energy E as the grid
solvers'. An empirical measure has no density, so for T > 0 the entropy term is the
Kozachenko-Leonenko k-nearest-neighbour estimate from the particles
(`solvers.entropy.kl_neg_entropy`; bias ~ m^(-1/D)); the blob solver reports its mollified one.
The extra `outside_mass` is the weight of the particles outside the box (mass + outside_mass = 1):
gradient descent does not know the box, so particles leaving it do not stop the run (a
warning says so once, `gflow.solvers.trackers.BoundaryTracker`), and the file's `density`
carries the attribute `binned` (`solvers.deposit.INSIDE_NOTE`) saying what it holds.

Random streams: one `np.random.SeedSequence(seed)` spawns independent streams for the
initial draw, the minibatches and the noise, so changing `batch` or T never changes the
initial particles, and a seed gives bitwise identical runs; `restart_state` saves the
streams' states so a resumed run continues bitwise as if never stopped.
"""
from __future__ import annotations

import json

import numpy as np
from scipy.spatial import cKDTree

from gflow.errors import InputError, RunError
from gflow.models.functionals import weighted_sd
from gflow.models.units import UNITS
from gflow.solvers.base import Observation, Stepper
from gflow.solvers.birth_death import particle_birth_death
from gflow.solvers.deposit import INSIDE_NOTE, cloud_in_cell, outside_mass
from gflow.solvers.entropy import kl_neg_entropy
from gflow.solvers.integrators import DormandPrince, StepTooSmall, euler_in_place, rk4_in_place
from gflow.solvers.quadrature import quadrature_particles
from gflow.solvers.wfr import conic_particles

#: fraction of the nearest-neighbour distance a particle may move per step (pair interactions)
NEIGHBOUR_CFL = 0.25

def initial_particles(problem, options, lattice: bool = False) -> tuple[np.ndarray, np.ndarray, list[np.random.Generator]]:
    """Initial positions (m, D), weights q (m,) and two generators (minibatches, noise).

    init = "random": m i.i.d. draws with q = 1/m; "quadrature": the nodes and weights of
    `solvers.quadrature` (on a uniform lattice if `lattice`). Point masses (`[initial] points` or
    `file`, a particle run's `snapshot`: `Problem.initial_points`) replace both rules: positions
    and weights as given, m their number. A grid run's snapshot is a density like the others:
    m draws of its cells (random), or one particle per cell with its mass (quadrature). Every
    path downstream uses q, never 1/m.
    """
    init_seq, batch_seq, noise_seq = np.random.SeedSequence(options["seed"]).spawn(3)
    init_rng = np.random.default_rng(init_seq)
    points = problem.initial_points()
    if points is not None:
        u, q = points                 # the case's own point masses replace both rules
    elif options["init"] == "quadrature":
        if problem.radial_axes:
            raise ValueError("init = quadrature: the tensor rules have no chi law for the norm axes of a model "
                             "reduced by rotations; use init = \"random\"")
        u, q = quadrature_particles(problem, options, lattice)
    else:
        # m per layer for a layered model (q = 1/(L m))
        u = problem.sample_initial(options["particles"], init_rng)
        q = np.full(len(u), 1.0 / len(u))
    # drawn on the case's axes; a model with more coordinates gets them here (`Problem.lift`). The
    # weights carry the initial mass (1, or `[initial] mass` of Wasserstein-Fisher-Rao dynamics)
    return (problem.lift(u, init_rng), q * problem.initial_mass,
            [np.random.default_rng(batch_seq), np.random.default_rng(noise_seq)])


def particle_velocity(model, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                      out: np.ndarray | None = None) -> np.ndarray:
    """-grad V(u_j; rho) for rho = sum_j q_j delta_{u_j}, frozen axes held still.

    All the per-step work of the particle methods is here: the model's own `velocity`
    (`gflow.models.base.Model`). `batch` = (x, p, y) replaces the data measure (SGD);
    kernel = "numba" takes the model's fused kernel where it has one, "numpy" its numpy path
    (which every kernel is tested against). `out`, a buffer of u's shape, may receive the result.
    """
    return model.velocity(u, q, batch, kernel, out)


def neighbour_step_limit(u: np.ndarray, v: np.ndarray) -> float:
    """The largest step in which no particle moves, relative to its nearest neighbour, more
    than NEIGHBOUR_CFL of the distance between them: the particle-crossing (CFL) limit of
    singular pair interactions. Only the relative speed |v_i - v_j| can close the gap, so a
    cluster moving as one imposes nothing.

    Coincident particles do not interact (the model skips r = 0), so they impose nothing.
    """
    if len(u) < 2:
        return np.inf
    dist, index = cKDTree(u).query(u, k=2)
    dist, nearest = dist[:, 1], index[:, 1]
    relative = v - v[nearest]
    speed = np.sqrt(np.einsum("ij,ij->i", relative, relative))
    moving = (speed > 0) & (dist > 0)
    if not moving.any():
        return np.inf
    return NEIGHBOUR_CFL * float(np.min(dist[moving] / speed[moving]))


def refuse_below_fixed(cap: float, dt: float, kind: str) -> None:
    """The neighbour cap never shortens the case's own [time].dt silently: it stops the run."""
    if cap < dt:
        raise RunError(f"the {kind} solver's nearest-neighbour cap (singular interaction) needs a step of "
                       f"{cap:.3g}, below [time].dt = {dt:g}: lower [time].dt, or set neighbour_cap = false "
                       "in [solver] to take dt as given")


class ParticleStepper(Stepper):
    kind = "particle"
    #: extras an option adds (`fluctuation`): reserved names of the run file like the others
    optional_extras = ("risk_fluctuation",)
    #: whether this run predicts its fluctuation (the option; set per run)
    fluctuation = False
    #: attributes of the file's `density` dataset (`gflow.snapshots.SnapshotWriter`)
    density_attrs = {"binned": INSIDE_NOTE}

    def __init__(self, problem, options):
        super().__init__(problem, options)
        options = self.options
        self.model = problem.model
        self.grid = problem.grid
        self.quadrature = options["init"] == "quadrature"
        self.scaling = options["scaling"]
        self.temperature = problem.temperature
        if self.quadrature and self.temperature > 0:
            raise ValueError("init = quadrature with temperature > 0: use the blob solver "
                             "(Langevin noise would undo the quadrature)")
        if self.quadrature and self.scaling != "mean_field":
            raise ValueError("init = quadrature needs scaling = mean_field (the plain sum ignores weights)")
        if self.temperature > 0 and problem.radial_axes and not problem.lifted:
            raise ValueError("temperature > 0 on a model reduced by rotations: its Langevin particles would cross "
                             "the norm axis' 0; run the grid solvers, or the full model (symmetry = \"none\")")
        self.u, self.weights, (self.batch_rng, self.noise_rng) = initial_particles(problem, options)
        self.integrator = options["integrator"]
        if self.integrator == "auto":
            self.integrator = "rk4" if self.quadrature else "euler"
        self.kernel = options["kernel"]
        #: the kernel the drift runs: the float32 variant of the fused one for precision = float32
        self.drift_kernel = self.kernel
        if options["precision"] == "float32":
            if self.kernel != "numba" or not getattr(self.model, "fused", lambda: False)():
                fused = ", ".join(name for name, unit in UNITS.items() if unit.kernel_code is not None)
                raise ValueError("precision = \"float32\" runs the fused numba kernel in float32: it needs kernel = "
                                 f"\"numba\" (numba installed) and a two_layer model whose activation has one ({fused}); "
                                 "use precision = \"float64\"")
            self.drift_kernel = "numba-float32"
        self.batch = options["batch"]
        self.lr = options["lr"]
        if self.model.data is None and (self.batch or self.scaling != "mean_field"):
            raise ValueError("batch and scaling = conventional need a data measure of points (two_layer; not a "
                             "model reduced by rotations, whose rule pairs its nodes with cosines)")
        #: the network's weights: q (mean field) or 1 (the plain-sum network)
        self.q_net = self.weights if self.scaling == "mean_field" else np.ones_like(self.weights)
        self.controller = DormandPrince(options["tolerance"], first_step=self.lr)
        #: singular pair interactions (-log r) need the nearest-neighbour step cap
        self.interacting = self.model.singular_interaction and options["neighbour_cap"]
        self._first_stage = None     # FSAL: the drift at the current positions, if still valid
        self._buffer = None          # the Euler drift, reused step after step
        #: the path u^0..u^n and steps of a run predicting its fluctuation (option `fluctuation`)
        self.fluctuation = options["fluctuation"]
        if self.fluctuation:
            self._check_fluctuation()
            self._path, self._steps = [self.u.copy()], []
        #: birth-death (`gflow.solvers.birth_death`): reweighting or kill/clone after each step, or None
        self.birth_death = particle_birth_death(self, problem, options, self.kernel)
        if self.birth_death is not None:
            # weights of its own, changed in place: the network's weights are the same array (mean field)
            self.weights = self.q_net = self.weights.copy()
            self.birth_death.prime(self)
            self.varying_weights = self.birth_death.changes_weights
        #: Wasserstein-Fisher-Rao (`gflow.solvers.wfr`): Chizat's conic step of positions and masses, or None
        self.wfr = conic_particles(problem, options)
        if self.wfr is not None:
            self.weights = self.q_net = self.weights.copy()     # masses of its own, changed in place
            self.varying_weights, self.conserves_mass = True, False
            self.integrator = "euler"       # the conic step is explicit (ConicParticles refuses the others)

    def _check_fluctuation(self) -> None:
        """The prediction is the delta method for deterministic mean-field GD from i.i.d. draws,
        computed on a quadrature of rho0 by the exact adjoint of forward Euler."""
        if not hasattr(self.model, "risk_weight_gradient"):
            raise ValueError(f"fluctuation = true: the {self.model.kind} model has no risk adjoint (two_layer has)")
        if not self.quadrature:
            raise ValueError("fluctuation = true needs init = \"quadrature\" (a quadrature of the initial law)")
        if self.options["integrator"] == "auto":
            self.integrator = "euler"
        if self.integrator != "euler":
            raise ValueError(f"fluctuation = true needs integrator = \"euler\" (gradient descent), not {self.integrator!r}")
        if self.batch or self.temperature > 0:
            raise ValueError("fluctuation = true predicts deterministic gradient descent: batch = 0 and temperature = 0")

    # ------------------------------------------------------------------ dynamics
    def _draw_batch(self):
        if not self.batch:
            return None
        if hasattr(self.model, "draw_batch"):      # a data law to draw from afresh (online SGD)
            return self.model.draw_batch(self.batch, self.batch_rng)
        data = self.model.data
        # nu = P x (a probability): draws of p / P, each weighing P / batch, are unbiased for int . dnu
        total = data.total
        idx = self.batch_rng.choice(len(data.p), size=self.batch, p=data.p / total)
        return data.x[idx], np.full(self.batch, total / self.batch), data.y[idx]

    def drift(self, u: np.ndarray, batch=None, out: np.ndarray | None = None) -> np.ndarray:
        return particle_velocity(self.model, u, self.q_net, batch, self.drift_kernel, out)

    def step(self, dt_max: float, fixed: bool = False) -> float:
        """One step: of dt_max when the case fixes dt (`fixed`), else of lr (euler, rk4) or the
        controller's choice (adaptive), never beyond dt_max (the next snapshot)."""
        if self.fluctuation and self._path is None:
            raise InputError("fluctuation = true: the prediction needs the whole path from t = 0, which a "
                             "resumed run does not have; run again with --force")
        if self.wfr is not None:
            return self.wfr.step(self, dt_max, fixed)
        bd = self.birth_death
        if bd is not None:
            dt_max = bd.cap(dt_max, self.time)
        batch = self._draw_batch()
        if self.integrator == "adaptive":
            h = self._adaptive_step(dt_max, batch)
        else:
            if self.integrator == "euler":
                if self._buffer is None or self._buffer.shape != self.u.shape:
                    self._buffer = np.empty_like(self.u)
                k1 = self.drift(self.u, batch, self._buffer)
            else:
                k1 = self.drift(self.u, batch)
            h = dt_max if fixed else min(self.lr, dt_max)
            cap = self._interaction_limit(k1)
            if fixed:
                refuse_below_fixed(cap, h, self.kind)
            h = min(h, cap)
            if self.integrator == "euler":
                euler_in_place(self.u, k1, h)
            else:
                rk4_in_place(self.u, lambda v: self.drift(v, batch), h, k1)
        if self.fluctuation:
            self._path.append(self.u.copy())
            self._steps.append(h)
        if self.temperature > 0:
            # frozen axes (train) neither drift nor diffuse, as on the grids
            noise = self.noise_rng.standard_normal(self.u.shape) * self.model.trained
            self.u += np.sqrt(2.0 * self.temperature * h) * noise
            self._first_stage = None
        if bd is not None:
            bd.advance(self, self.time, h)
            self.time += h
            self._first_stage = None     # new weights or a new cloud: a new drift
        return h

    def _interaction_limit(self, v: np.ndarray) -> float:
        return neighbour_step_limit(self.u, v) if self.interacting else np.inf

    def _adaptive_step(self, dt_max: float, batch) -> float:
        """One accepted Dormand-Prince step of at most dt_max; rejected tries are retried smaller."""
        k0 = self._first_stage if self._first_stage is not None else self.drift(self.u, batch)
        h_max = min(dt_max, self._interaction_limit(k0))
        try:
            self.u, h, last = self.controller.step(self.u, lambda v: self.drift(v, batch), h_max, k0,
                                                   self.weights, dt_max)
        except StepTooSmall as exc:
            raise RunError(str(exc)) from None
        # FSAL: the last stage is the next step's first, unless the velocity depends on more than the
        # points (a minibatch, or a model's frozen schedule that may be refreshed at the next step)
        self._first_stage = last if batch is None and not getattr(self.model, "stateful", False) else None
        return h

    # ------------------------------------------------------------------ output
    def observe(self) -> Observation:
        q = self.weights
        risk = self.model.risk(self.u, self.q_net, self.kernel)
        energy = self.model.energy(risk, self.u, self.q_net)
        # binned and stored on the case's axes (the invariants of a model in the full R^d)
        u = self.problem.case_coordinates(self.u)
        density = cloud_in_cell(self.grid, u, q)
        if self.temperature > 0:
            # the free energy's T int rho log rho, as fv has it: estimated from the cloud
            energy += self.temperature * self._neg_entropy(u, q)
        extras = {"outside_mass": outside_mass(self.grid, u, q)}
        if self.fluctuation:
            # a restored run has no path: it is refused at its first step (`step`)
            psi = None if self._path is None else self.model.risk_weight_gradient(self._path, self._steps, self.q_net)
            extras["risk_fluctuation"] = np.nan if psi is None else weighted_sd(psi, q)
        return Observation(density, risk, energy, self.grid.mass(density), positions=u.copy(),
                           weights=q.copy() if self.varying_weights else None, extras=extras)

    def _neg_entropy(self, u: np.ndarray, q: np.ndarray) -> float:
        """int rho log rho from the cloud; for a layered model (1/L) sum_l of each layer's, its
        particles (a block of L q weight per layer) estimated without the layer coordinate."""
        L = self.problem.layers
        if not L:
            return kl_neg_entropy(u, q)
        blocks = zip(np.split(u[:, 1:], L), np.split(q * L, L))
        return float(np.mean([kl_neg_entropy(ul, ql) for ul, ql in blocks]))

    def extra_names(self) -> tuple[str, ...]:
        return ("outside_mass", *self.optional_extras) if self.fluctuation else ("outside_mass",)

    def restart_state(self) -> dict:
        """The random streams' states and the controller's step (positions are in the snapshot)."""
        state = {"batch_rng": json.dumps(self.batch_rng.bit_generator.state),
                 "noise_rng": json.dumps(self.noise_rng.bit_generator.state),
                 "h_next": float(self.controller.h_next), "rejected": int(self.controller.rejected)}
        if self.problem.lifted:
            state["particles"] = self.u.copy()    # the snapshot holds only their invariants
        if self.birth_death is not None:
            state.update(self.birth_death.state(self))
        if self.wfr is not None:
            state.update(self.wfr.state(self))
        return state

    def restore(self, density, positions, state) -> None:
        # a complete run is kept as it is; one that would go on lacks the path behind it (`step`)
        self._path = None
        self.u = np.array(state["particles"] if self.problem.lifted else positions, dtype=float)
        self.batch_rng.bit_generator.state = json.loads(state["batch_rng"])
        self.noise_rng.bit_generator.state = json.loads(state["noise_rng"])
        self.controller.h_next, self.controller.rejected = float(state["h_next"]), int(state["rejected"])
        self._first_stage = None
        if self.birth_death is not None:
            self.birth_death.restore(self, state)
        if self.wfr is not None:
            self.wfr.restore(self, state)

    def summary(self) -> str:
        text = f"m = {len(self.weights)}{' quadrature' if self.quadrature else ''}, {self.integrator}, {self.scaling} scaling"
        if self.batch:
            text += f", batch {self.batch}"
        if self.integrator == "adaptive":
            text += f", {self.controller.rejected} rejected steps"
        if self.birth_death is not None:
            text += f", {self.birth_death.summary()}"
        if self.wfr is not None:
            text += f", {self.wfr.summary()}"
        return text
