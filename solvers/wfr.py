"""Wasserstein-Fisher-Rao dynamics: transport, and a reaction that creates and destroys mass.

Chizat, "Sparse optimization on measures with over-parameterized gradient descent" (Math.
Programming 194, 2022; code github lchizat/2019-sparse-optim-measures, `illustration_deconv1D.jl`)
trains a measure mu >= 0 by

    d_t mu = -alpha V mu + beta div(mu grad V),      V = delta E / delta mu,

the gradient flow of E in the Wasserstein-Fisher-Rao (Hellinger-Kantorovich) metric. The mass is
not conserved,

    d/dt mu(Omega) = -alpha int V dmu,     dE/dt = -alpha int V^2 dmu - beta int |grad V|^2 dmu <= 0,

and E = R + lambda_M mu(Omega) + weight decay (`[regularization] mass_penalty`,
`gflow.models.mass_penalty`). Keys: `[dynamics] fisher_rao = alpha`, `transport = beta`
(default 1; 0: pure Fisher-Rao), `[initial] mass` (docs/wfr.md).

How each solver does it:

- fv (and the blob solver's weights): a Lie splitting. The transport step with velocity
  -beta grad V is the stepper's own step over beta dt of its time (`scaled_transport`: a
  velocity times beta is the same flow, beta times faster), its step control unchanged; then
  the reaction over dt with V frozen, `Reaction(alpha, renormalise=False)` of
  `gflow.solvers.birth_death` (`FisherRao`): m_i <- m_i exp(-alpha h V_i) per cell, exact,
  positive, in steps held to its spread and stiffness limits, each lowering E (its step control
  needs only E quadratic in mu, which the mass penalty keeps).
- particle: Chizat's conic particle step (`ConicParticles`). With V and grad V at the current
  state (u_j, q_j), simultaneously

      u_j <- u_j - h beta grad V(u_j)     (trained axes only),
      q_j <- q_j exp(-alpha h V(u_j)),

  the explicit step of the lifted flow on the cone (r, u), q = r^2: his PGD_1D with the mirror
  retraction r <- r exp(-2 alpha' h grad_r) is this step with alpha = 4 alpha', h = lr = 1
  (tests/test_wfr.py reproduces it to round-off).

Signed measures (Chizat's sum_i r_i |r_i| delta_{theta_i}) are two species: a frozen sign axis
a = +-1 in the unit a phi(x - theta), each species a non-negative measure of its own.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gflow.solvers.birth_death import ParticleBirthDeath, Reaction


class FisherRao(Reaction):
    """The reaction -alpha V mu: `Reaction` with no mean subtracted and no renormalisation."""

    def __init__(self, rate: float):
        super().__init__(rate, None, renormalise=False)

    def summary(self) -> str:
        words = f"Fisher-Rao alpha = {self.rate:g}"
        if self.substeps:
            words += f", {self.substeps} extra reaction steps"
        return words + (f", {self.retried} retried smaller" if self.retried else "")


def _dynamics(problem):
    return getattr(problem.case, "dynamics", None)


def fisher_rao_of(problem) -> FisherRao | None:
    """The case's Fisher-Rao reaction (`[dynamics] fisher_rao` > 0), else None."""
    alpha = getattr(_dynamics(problem), "fisher_rao", 0.0)
    return FisherRao(alpha) if alpha > 0 else None


def transport_of(problem) -> float:
    """beta, the factor of the transport velocity (`[dynamics] transport`; 1 without fisher_rao)."""
    return float(getattr(_dynamics(problem), "transport", 1.0))


def scaled_transport(step: Callable[[float], float], dt_max: float, beta: float) -> float:
    """The transport with velocity beta (-grad V) for at most dt_max: `step` (the stepper's own
    transport step, which returns the step it took) over beta dt_max of its time; the time taken.
    beta = 1 is the step itself, beta = 0 no transport at all."""
    if beta == 1.0:
        return step(dt_max)
    if beta == 0.0:
        return dt_max
    wanted = beta * dt_max
    taken = step(wanted)
    # a step that reached its end is the whole dt_max (no sliver of t left by the division)
    return dt_max if taken >= wanted else min(dt_max, taken / beta)


def refuse_fisher_rao(problem, kind: str) -> None:
    """One line for a solver that has no Fisher-Rao step."""
    if fisher_rao_of(problem) is not None:
        raise ValueError(f"[dynamics] fisher_rao: the {kind} solver has no Wasserstein-Fisher-Rao step; use fv, "
                         "particle or blob")


def _refuse_particle_options(problem, options) -> None:
    if not hasattr(problem.model, "potential_at"):
        raise ValueError(f"[dynamics] fisher_rao: the {problem.model.kind} model gives no V at the particles "
                         "(potential_at)")
    if options.get("scaling", "mean_field") != "mean_field":
        raise ValueError("[dynamics] fisher_rao needs scaling = \"mean_field\" (the plain sum has no weights)")
    if options.get("fluctuation", False):
        raise ValueError("[dynamics] fisher_rao: fluctuation = true predicts gradient descent with fixed weights")
    if options.get("batch", 0):
        raise ValueError("[dynamics] fisher_rao: the reaction needs V of the whole data measure (batch = 0)")


def blob_fisher_rao(stepper, problem, options, kernel: str = "numba") -> ParticleBirthDeath | None:
    """The blob solver's Fisher-Rao reaction on its weights (the splitting of the grids), else None."""
    reaction = fisher_rao_of(problem)
    if reaction is None:
        return None
    _refuse_particle_options(problem, options)
    return ParticleBirthDeath(reaction, "weights", problem.model, stepper.weights, options["seed"], kernel)


class ConicParticles:
    """Chizat's conic particle step on a particle stepper's (u, weights): module text.

    The stepper's `weights` (the network's weights too) change in place; they, not the run file's
    initial `weights`, are the restart state (`fisher_rao_weights`)."""

    def __init__(self, problem, options):
        _refuse_particle_options(problem, options)
        if options.get("integrator", "auto") not in ("auto", "euler"):
            raise ValueError(f"[dynamics] fisher_rao: the particle solver takes Chizat's conic step (an explicit "
                             f"step of positions and weights together), integrator = \"euler\", not "
                             f"{options['integrator']!r}")
        self.model = problem.model
        self.alpha = problem.case.dynamics.fisher_rao
        self.beta = transport_of(problem)

    def step(self, stepper, dt_max: float, fixed: bool = False) -> float:
        """One conic step of lr (of dt_max when the case fixes dt), never beyond dt_max: V and
        -grad V at the current state, then positions and weights from them together."""
        u, q = stepper.u, stepper.weights
        h = dt_max if fixed else min(stepper.lr, dt_max)
        V = self.model.potential_at(u, q, stepper.kernel)
        if self.beta:
            if stepper._buffer is None or stepper._buffer.shape != u.shape:
                stepper._buffer = np.empty_like(u)
            v = stepper.drift(u, None, stepper._buffer)      # -grad V, frozen axes 0, weights q
            cap = stepper._interaction_limit(self.beta * v)
            if fixed:
                from gflow.solvers.particle import refuse_below_fixed
                refuse_below_fixed(cap, h, stepper.kind)
            h = min(h, cap)
            u += (self.beta * h) * v
        q *= np.exp(-self.alpha * h * V)
        return h

    def state(self, stepper) -> dict:
        return {"fisher_rao_weights": stepper.weights.copy()}

    def restore(self, stepper, state: dict) -> None:
        weights = np.asarray(state["fisher_rao_weights"], dtype=float)
        if weights.shape != stepper.weights.shape:
            raise ValueError(f"fisher_rao_weights has shape {weights.shape}, expected {stepper.weights.shape}")
        stepper.weights[:] = weights          # in place: the network weights are this array

    def summary(self) -> str:
        return f"Fisher-Rao alpha = {self.alpha:g}, transport beta = {self.beta:g} (conic step)"


def conic_particles(problem, options) -> ConicParticles | None:
    """The particle solver's conic step for a case with `[dynamics] fisher_rao`, else None."""
    return ConicParticles(problem, options) if fisher_rao_of(problem) is not None else None
