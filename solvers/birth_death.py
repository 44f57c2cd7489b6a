"""Birth-death of mass beside transport: the reaction term of the neuron birth-death dynamics.

Rotskoff, Jelassi, Bruna, Vanden-Eijnden, "Global convergence of neuron birth-death dynamics"
(ICML 2019; their notebook rotskoff/neuron-birth-death, gaussian_example.ipynb) add a reaction to
the mean-field gradient flow:

    d_t rho = div(rho grad V) - kappa (V - <V>_rho) rho,     <V>_rho = int V rho,

which keeps the mass 1 and adds -kappa int (V - <V>_rho)^2 rho <= 0 to dE/dt, so the energy
falls at least as fast as under plain transport at the same state (docs/birth_death.md).

Every solver that allows it splits a step in two (Lie splitting): its own transport step (its
own step control), then the reaction over the same dt with V frozen at the state the transport
left. With V frozen the reaction ODE d_t m_i = -kappa (V_i - <V>_m(t)) m_i of each mass m_i (a
cell's, a particle's weight) has the exact solution

    m_i(t + h) = m_i(t) exp(-kappa h V_i) * M / sum_j m_j(t) exp(-kappa h V_j),

the per-mass exponential renormalised to the mass M it had (`Reaction.scale`): positive masses
stay positive and the mass is M to round-off.

Step control. A reaction step dm is an entropic mirror-descent step of size kappa h, and its
change of the energy is, exactly for the quadratic energies of gflow's models (R is quadratic
in rho, weight decay linear),

    dE = L + Q / 2,    L = sum_i V_i dm_i <= 0 (for any h),    Q = sum_i (V'_i - V_i) dm_i,

V' the potential after the step: the first-order term always decreases E, only the curvature Q
can undo it. Each reaction step is therefore kept (1) small, kappa h max|V - <V>| <= REACTION_STEP
over the support, and (2) below the stiffness of the reaction, h lambda <= STIFFNESS with the
rate lambda = Q / (-L h) measured at the last step (for small h it is kappa Q(m (V - <V>)) /
Var_m V, independent of h). A step whose dE came out positive (h lambda > 2: the first step of a
run, or a sudden stiffening) is undone and taken again at h = STIFFNESS / lambda, so every
accepted step lowers E. Near equilibrium (1) allows large steps while (2) does not: the
reaction's counterpart of the fv solver's `stiff_dt`; without (2), kappa = 100 on the small case of
tests/test_birth_death.py rose and fell in cycles of 5e-5. A reaction longer than both limits is
cut into such steps with V refreshed between them, and each transport step is capped
beforehand by the same limits (`Reaction.cap`), so that one step rarely needs a cut: the energy
then decays whatever the snapshot spacing. Each step costs two evaluations of V (after the
transport, after the reaction).

Particles (`ParticleBirthDeath`, option `birth_death_scheme`):

- "weights": the deterministic weights dq_j/dt = -kappa (V(u_j) - <V>) q_j, <V> = sum_j q_j V(u_j),
  by the same exact renormalised exponential and step control (quadrature particles follow the
  grid's PDE);
- "stochastic": the notebook's kill/clone scheme. Each step each particle is killed (V_j > <V>)
  or cloned (V_j < <V>) with probability kappa |V_j - <V>| h (at most REACTION_STEP), then the
  population is brought back to m by cloning uniformly chosen members (too few) or killing
  uniformly chosen ones (too many); weights stay 1/m. Its dE is a random variable, so only (1)
  limits it. It draws from its own stream, the fourth child of the run's `SeedSequence(seed)`
  (the initial draw, minibatches and noise are the first three,
  `gflow.solvers.particle.initial_particles`), so it changes none of them.

The reaction is one class with a `renormalise` flag: False is the Fisher-Rao part of
Wasserstein-Fisher-Rao dynamics, d_t mu = -alpha V mu + ..., with no mean subtracted and no
renormalisation (`Reaction.conserves_mass` False, which the run loop's mass check reads through
the stepper's `conserves_mass`); the step control holds for it as it stands.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gflow.errors import RunError

#: the largest kappa h max|V - <V>| of one reaction step: every mass changes by a factor within
#: exp(+-0.5) per step; for the stochastic scheme it bounds each kill/clone probability by 0.5
REACTION_STEP = 0.5
#: the largest h lambda of one reaction step (lambda: the measured stiffness rate, module text):
#: dE = L (1 - h lambda / 2) is then at least half the first-order decrease
STIFFNESS = 1.0
#: dE within this many ulps of the terms it sums is round-off, not a rise (near equilibrium both vanish)
ROUNDOFF = 64 * np.finfo(float).eps
#: reaction steps one solver step may be cut into before the run stops (V growing without bound)
MAX_SUBSTEPS = 10_000
#: the child of `SeedSequence(seed)` the stochastic scheme draws from (0..2 are `initial_particles`')
STREAM = 3
#: the particle schemes of option `birth_death_scheme`
SCHEMES = ("weights", "stochastic")


@dataclass
class Reactor:
    """What a reaction needs of a stepper's state: its live masses (the weights of <V>), V there,
    one step (V - <V>, h) applied to it, and, for the deterministic schemes, save() -> a copy of
    the state and load(copy) to undo a step that raised the energy (None: no step control)."""

    masses: Callable[[], np.ndarray]
    potential: Callable[[], np.ndarray]
    step: Callable[[np.ndarray, float], None]
    save: Callable[[], Any] | None = None
    load: Callable[[Any], None] | None = None


class Reaction:
    """d_t m = -rate (V - <V>_m) m (renormalise: birth-death) or -rate V m (Fisher-Rao), with V
    frozen over each step, on any array of masses (grid cells, particle weights).

    `until`: the time after which it stops (the notebook's quench), None for never. `spread` (the
    last max|V - <V>| over the support) and `stiffness` (the last measured rate lambda) limit the
    steps (module text); they and the counts of extra and retried steps are the restart state.
    """

    def __init__(self, rate: float, until: float | None = None, renormalise: bool = True):
        self.rate, self.until, self.renormalise = float(rate), until, renormalise
        self.spread = 0.0
        self.stiffness = 0.0
        self.substeps = 0
        self.retried = 0

    @property
    def conserves_mass(self) -> bool:
        return self.renormalise

    def active(self, t: float, dt: float) -> float:
        """How much of [t, t + dt] lies before `until`."""
        return dt if self.until is None else min(dt, max(self.until - t, 0.0))

    def centred(self, V: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, float]:
        """(V - <V>_mass, its largest magnitude on the support); Fisher-Rao: (V, max|V|)."""
        support = mass != 0
        if not support.any():
            return V, 0.0
        if self.renormalise:
            V = V - float((mass * V).sum() / mass.sum())
        spread = float(np.abs(V[support]).max())
        if not np.isfinite(spread):
            raise RunError(f"birth-death: V is {spread} on the support of the density (the solution blew up)")
        return V, spread

    def scale(self, mass: np.ndarray, Vc: np.ndarray, h: float) -> None:
        """In place: mass * exp(-rate h Vc), renormalised to its total (birth-death); zero mass
        stays zero (its V, off the support, is not limited by the step)."""
        total = mass.sum()
        mass *= np.exp(-self.rate * h * np.where(mass != 0, Vc, 0.0))
        if self.renormalise:
            mass *= total / mass.sum()

    def limit(self) -> float:
        """The longest reaction step the last spread and stiffness allow."""
        h = REACTION_STEP / (self.rate * self.spread) if self.spread > 0 else np.inf
        return min(h, STIFFNESS / self.stiffness) if self.stiffness > 0 else h

    def prime(self, reactor: Reactor) -> None:
        """The spread of the initial state (for the first step's cap)."""
        self.spread = self.centred(reactor.potential(), reactor.masses())[1]

    def cap(self, dt_max: float, t: float) -> float:
        """dt_max, shortened so that the reaction part of the step stays one step within `limit`."""
        if self.until is not None and t >= self.until:
            return dt_max
        limit = self.limit()
        if self.until is not None and self.until - t <= limit:     # only the part before `until` reacts
            return dt_max
        return min(dt_max, limit)

    def advance(self, t: float, dt: float, reactor: Reactor) -> None:
        """The reaction over the part of [t, t + dt] before `until`, in steps within `limit`, each
        checked against the energy where the reactor can undo it (module text)."""
        remaining = self.active(t, dt)
        if not remaining > 0:
            return
        controlled = reactor.save is not None
        V = reactor.potential()
        taken = 0
        for _ in range(MAX_SUBSTEPS):
            mass = reactor.masses()
            Vc, self.spread = self.centred(V, mass)
            h = min(remaining, self.limit())
            if controlled:
                before, old = reactor.save(), mass.copy()
                reactor.step(Vc, h)
                after = reactor.potential()
                dm = reactor.masses() - old
                # L from V - <V>: sum dm = 0 up to the round-off of the masses, which <V> sum dm would blow up
                first, curve = float((Vc * dm).sum()), float(((after - V) * dm).sum())
                noise = ROUNDOFF * float((np.abs(Vc) * (np.abs(old) + np.abs(dm))
                                          + (np.abs(V) + np.abs(after)) * np.abs(dm)).sum())
                if -first > noise:
                    self.stiffness = max(curve, 0.0) / (-first * h)
                if first + 0.5 * curve > noise and h * self.stiffness > STIFFNESS:
                    reactor.load(before)        # the step raised E: again, at the stiffness limit
                    self.retried += 1
                    continue
                V = after
            else:
                reactor.step(Vc, h)
            taken += 1
            remaining = remaining - h if h < remaining else 0.0
            if remaining == 0:
                self.substeps += taken - 1
                if controlled:          # the spread of the state the step ends in, for the next cap
                    self.spread = self.centred(V, reactor.masses())[1]
                return
            if not controlled:
                V = reactor.potential()
        raise RunError(f"t = {t:.6g}: birth-death needed more than {MAX_SUBSTEPS} reaction steps in one "
                       f"step (max|V - <V>| = {self.spread:.3g}, stiffness {self.stiffness:.3g})")

    def state(self) -> dict:
        return {"birth_death_spread": float(self.spread), "birth_death_stiffness": float(self.stiffness),
                "birth_death_substeps": int(self.substeps), "birth_death_retried": int(self.retried)}

    def restore(self, state: dict) -> None:
        self.spread = float(state["birth_death_spread"])
        self.stiffness = float(state["birth_death_stiffness"])
        self.substeps = int(state["birth_death_substeps"])
        self.retried = int(state["birth_death_retried"])

    def summary(self) -> str:
        words = f"birth-death kappa = {self.rate:g}" + (f" until t = {self.until:g}" if self.until is not None else "")
        if self.substeps:
            words += f", {self.substeps} extra reaction steps"
        return words + (f", {self.retried} retried smaller" if self.retried else "")


def reaction_of(problem) -> Reaction | None:
    """The case's birth-death (`[dynamics] birth_death` > 0), else None (plain transport)."""
    dynamics = getattr(problem.case, "dynamics", None)
    kappa = getattr(dynamics, "birth_death", 0.0)
    if not kappa > 0:
        return None
    return Reaction(kappa, dynamics.birth_death_until)


def refuse_reaction(problem, kind: str) -> None:
    """One line for a solver that has no birth-death step."""
    if reaction_of(problem) is not None:
        raise ValueError(f"[dynamics] birth_death: the {kind} solver has no birth-death step; use fv, spectral, "
                         "particle or blob")


# ----------------------------------------------------------------------------- particles

def resample(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """The indices of the next population of the stochastic scheme, from p_j = kappa h (V_j - <V>):
    particle j dies with probability p_j where p_j > 0 and is cloned with probability -p_j where
    p_j < 0; survivors keep their order and the clones follow them; then uniformly chosen members
    are cloned (too few) or killed (too many) until there are m again (the notebook's scheme)."""
    m = len(p)
    r = rng.random(m)
    killed = (p > 0) & (r < p)
    cloned = (p < 0) & (r < -p)
    index = np.concatenate([np.flatnonzero(~killed), np.flatnonzero(cloned)])
    excess = len(index) - m
    if excess < 0:
        index = np.concatenate([index, index[rng.integers(len(index), size=-excess)]])
    elif excess > 0:
        index = np.delete(index, rng.choice(len(index), size=excess, replace=False))
    return index


class ParticleBirthDeath:
    """Birth-death of a particle stepper's cloud (`u`, `weights`): reweighting or kill/clone.

    The stepper's `weights` are changed in place (scheme "weights"; the particle stepper's network
    weights are the same array) or its `u` replaced by the resampled cloud ("stochastic"). V at the
    particles is the model's `potential_at(u, q, kernel)` (`gflow.models.base.Model`).
    """

    def __init__(self, reaction: Reaction, scheme: str, model, weights: np.ndarray, seed: int,
                 kernel: str = "numba"):
        if not hasattr(model, "potential_at"):
            raise ValueError(f"[dynamics] birth_death: the {model.kind} model gives no V at the particles "
                             "(potential_at)")
        if scheme not in SCHEMES:
            raise ValueError(f"birth_death_scheme = {scheme!r}: expected one of {', '.join(SCHEMES)}")
        self.reaction, self.scheme, self.model, self.kernel = reaction, scheme, model, kernel
        self.rng = None
        if scheme == "stochastic":
            if np.ptp(weights) != 0:
                raise ValueError("birth_death_scheme = \"stochastic\" keeps every weight 1/m: it needs equal initial "
                                 "weights (init = \"random\"); use birth_death_scheme = \"weights\"")
            self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(STREAM + 1)[STREAM])

    @property
    def changes_weights(self) -> bool:
        """Whether the weights change (scheme "weights"; the stochastic scheme keeps them 1/m):
        the stepper's `varying_weights`, so that the run file stores them per snapshot."""
        return self.scheme == "weights"

    def reactor(self, stepper) -> Reactor:
        """The stepper's cloud as the reaction sees it: its weights (reweighted in place, with the
        step control) or its positions (resampled)."""
        def masses():
            return stepper.weights

        def potential():
            return self.model.potential_at(stepper.u, stepper.weights, self.kernel)

        if self.scheme == "stochastic":
            def resampled(Vc, h):
                stepper.u = stepper.u[resample(self.rng, self.reaction.rate * h * Vc)]
            return Reactor(masses, potential, resampled)

        def reweighted(Vc, h):
            self.reaction.scale(stepper.weights, Vc, h)

        def load(copy):
            stepper.weights[:] = copy
        return Reactor(masses, potential, reweighted, lambda: stepper.weights.copy(), load)

    def prime(self, stepper) -> None:
        self.reaction.prime(self.reactor(stepper))

    def cap(self, dt_max: float, t: float) -> float:
        return self.reaction.cap(dt_max, t)

    def advance(self, stepper, t: float, dt: float) -> None:
        """The reaction over [t, t + dt] on the stepper's particles."""
        self.reaction.advance(t, dt, self.reactor(stepper))

    def state(self, stepper) -> dict:
        """The reaction's state, the weights (scheme "weights": the snapshot file stores the
        initial ones only) and the stochastic stream."""
        state = self.reaction.state()
        if self.scheme == "weights":
            state["birth_death_weights"] = stepper.weights.copy()
        else:
            state["birth_death_rng"] = json.dumps(self.rng.bit_generator.state)
        return state

    def restore(self, stepper, state: dict) -> None:
        self.reaction.restore(state)
        if self.scheme == "weights":
            weights = np.asarray(state["birth_death_weights"], dtype=float)
            if weights.shape != stepper.weights.shape:
                raise ValueError(f"birth_death_weights has shape {weights.shape}, expected {stepper.weights.shape}")
            stepper.weights[:] = weights          # in place: the network weights are this array
        else:
            self.rng.bit_generator.state = json.loads(state["birth_death_rng"])

    def summary(self) -> str:
        return f"{self.reaction.summary()} ({self.scheme})"


def particle_birth_death(stepper, problem, options, kernel: str = "numba") -> ParticleBirthDeath | None:
    """The birth-death of a particle or blob stepper for the case, else None; refuses in one line
    what it cannot serve (the plain-sum network, the fluctuation prediction)."""
    reaction = reaction_of(problem)
    if reaction is None:
        return None
    if options.get("scaling", "mean_field") != "mean_field":
        raise ValueError("[dynamics] birth_death needs scaling = \"mean_field\" (the plain sum has no weights)")
    if options.get("fluctuation", False):
        raise ValueError("[dynamics] birth_death: fluctuation = true predicts gradient descent with fixed weights")
    return ParticleBirthDeath(reaction, options["birth_death_scheme"], problem.model, stepper.weights,
                              options["seed"], kernel)
