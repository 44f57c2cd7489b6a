"""Random draws from the initial laws that are not Gaussians: the particles' counterpart of
`gflow.grids.initial`'s cell averages (the Gaussians and mixtures are drawn by `gflow.problem`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sphere_draws(rng: np.random.Generator, m: int, center: Sequence[float], radius: float) -> np.ndarray:
    """m points uniform on the sphere |u - c| = R in R^D, shape (m, D).

    A standard Gaussian vector divided by its norm is uniform on the unit sphere (its law is
    rotation invariant); scaled by R and moved to c, as Chizat's ReLU illustration draws its 20
    neurons (lchizat/2019-sparse-optim-measures, `illustration_reluNN.jl`: randn, normalised,
    times 2). The norm of a standard Gaussian vector is 0 with probability 0."""
    g = rng.standard_normal((m, len(center)))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return np.asarray(center, dtype=float) + radius * g


def product_draws(rng: np.random.Generator, m: int, factors: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """m draws of independent per-axis laws, ("gaussian", mean, std) or ("uniform", low, high)
    per axis (`gflow.grids.initial.product_cell_average`), shape (m, D); axis by axis."""
    columns = [p1 + p2 * rng.standard_normal(m) if name == "gaussian" else rng.uniform(p1, p2, m)
               for name, p1, p2 in factors]
    return np.column_stack(columns)


def cell_draws(rng: np.random.Generator, m: int, faces: Sequence[np.ndarray], masses: np.ndarray) -> np.ndarray:
    """m draws of the piecewise-constant density whose cell masses are `masses` (shape of the
    grid of `faces`, non-negative, not all 0): a cell with probability its share of the mass,
    then a uniform point inside it. Shape (m, D)."""
    p = masses.ravel() / masses.sum()
    cells = np.unravel_index(rng.choice(p.size, size=m, p=p), masses.shape)
    where = rng.random((m, len(faces)))
    return np.column_stack([f[i] + (f[i + 1] - f[i]) * s for f, i, s in zip(faces, cells, where.T)])
