"""The free energy of a grid density, shared by every model's grid operator.

    E[rho] = R[rho] + (lam/2) int |u|^2 rho + T int rho log rho,

with the integrals as midpoint sums over the cells (rho holds cell averages) and 0 log 0 = 0.
"""
from __future__ import annotations

import numpy as np


def entropy(rho: np.ndarray, cell_volume: float) -> float:
    """int rho log rho with 0 log 0 = 0."""
    pos = rho[rho > 0]
    return float((pos * np.log(pos)).sum()) * cell_volume


def grid_energy(rho: np.ndarray, risk: float, cell_volume: float, weight_decay: float, radius2: np.ndarray,
                temperature: float) -> float:
    """E = risk + lam/2 sum |u|^2 rho dV + T sum rho log rho dV; radius2 = |u|^2 at the centres."""
    energy = risk + 0.5 * weight_decay * float((radius2 * rho).sum()) * cell_volume
    if temperature > 0:
        energy += temperature * entropy(rho, cell_volume)
    return energy


def weighted_sd(values: np.ndarray, q: np.ndarray) -> float:
    """The standard deviation of `values` under the probability weights q."""
    q = q / q.sum()
    mean = float(q @ values)
    return float(np.sqrt(max(float(q @ (values - mean) ** 2), 0.0)))
