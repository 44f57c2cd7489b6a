"""The mass penalty of sparse optimisation on measures: E gains lambda_M mu(Omega), V gains lambda_M.

Chizat ("Sparse optimization on measures with over-parameterized gradient descent", Math.
Programming 2022, section 2) minimises

    E(mu) = R(mu) + lambda_M |mu|(Omega)

over non-negative measures (signed ones as two species, docs/wfr.md): the total-variation penalty
that makes the minimiser sparse. Its first variation is the constant lambda_M, so

    V = delta R / delta mu + lambda_M,       grad V unchanged,

which only a flow that changes the mass feels (the Fisher-Rao term -alpha V mu of
`gflow.solvers.wfr`): `[regularization] mass_penalty` is refused without `[dynamics] fisher_rao`.

`MassPenalised` wraps any model (and `PenalisedOperator` its grid operator): the potential at
points and on the grid gains lambda_M, the energy lambda_M times the mass (sum_j q_j, or the
grid's int rho du); everything else is the model's own. The energy stays quadratic in mu, so the
reaction's step control (`gflow.solvers.birth_death`) holds for it as it stands.
"""
from __future__ import annotations

import numpy as np


class _Delegate:
    """Every attribute not defined here is the wrapped object's."""

    def __init__(self, inner, penalty: float):
        self.inner = inner
        #: lambda_M
        self.mass_penalty = float(penalty)

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "inner":     # copy and pickle ask before __init__ ran
            raise AttributeError(name)
        return getattr(self.inner, name)


class MassPenalised(_Delegate):
    """A model whose energy gains lambda_M sum_j q_j and whose V gains lambda_M."""

    def potential(self, u: np.ndarray, r: np.ndarray) -> np.ndarray:
        return self.inner.potential(u, r) + self.mass_penalty

    def potential_at(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> np.ndarray:
        return self.inner.potential_at(u, q, kernel) + self.mass_penalty

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        return self.inner.energy(risk, u, q) + self.mass_penalty * float(np.sum(q))

    def grid_operator(self, grid, threads: int = 1):
        return PenalisedOperator(self.inner.grid_operator(grid, threads), self.mass_penalty, grid)


class PenalisedOperator(_Delegate):
    """A grid operator whose V gains lambda_M and whose energy gains lambda_M int rho du."""

    def __init__(self, inner, penalty: float, grid):
        super().__init__(inner, penalty)
        self.grid = grid

    def potential(self, rho: np.ndarray) -> np.ndarray:
        return self.inner.potential(rho) + self.mass_penalty

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        return self.inner.energy(rho, risk) + self.mass_penalty * self.grid.mass(rho)


def with_mass_penalty(model, penalty: float):
    """`model` itself without a penalty (lambda_M = 0), else wrapped."""
    return MassPenalised(model, penalty) if penalty > 0 else model
