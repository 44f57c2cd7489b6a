"""Cloud-in-cell deposit of weighted points onto a `CartesianGrid`.

Each point spreads its weight q_j over the 2^D cell centres around it with the multilinear
("tent") weights of the cloud-in-cell scheme (Hockney and Eastwood, Computer Simulation Using
Particles, 1988, section 5-2), so the binned density is the second-order particle-to-grid
counterpart of the finite-volume cell averages. Its weights sum to one per point, so the
deposited mass is the weight of the points inside the box; the first moments are kept too
(the tent weights interpolate linear functions exactly) except in the outer half of a boundary
cell, whose points go wholly to that cell (their coordinates are clipped to the range of cell
centres).

The particle solvers bin their particles with it (`gflow.solvers.deposit`), and the grid
solvers start from it when the initial law is point masses (`gflow.problem`).
"""
from __future__ import annotations

import itertools

import numpy as np

from gflow.grids.cartesian import CartesianGrid


def cloud_in_cell(grid: CartesianGrid, u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Density on `grid` (values at cell centres, grid.shape) of the weighted points (u, q).

    Parameters
    ----------
    grid : the grid to bin on; u must have grid.ndim columns
    u : (m, D) particle positions
    q : (m,) particle weights (any sign-free weights; quadrature weights need not be equal)

    Returns
    -------
    density of the particles inside the box: density.sum() * grid.cell_volume == q.sum() -
    outside_mass(grid, u, q) to round-off.
    """
    keep = inside(grid, u)
    if not keep.all():
        u, q = u[keep], q[keep]
    shape = np.array(grid.shape)
    low = np.array([c[0] for c in grid.centres])
    # position in units of cells, with cell centres at the integers 0..n-1
    s = (u - low) / grid.spacing
    s = np.clip(s, 0.0, shape - 1)
    # the left neighbour i0 stays <= n - 2 so that i0 + 1 is a cell (n = 1: both are cell 0)
    i0 = np.minimum(np.floor(s).astype(np.intp), np.maximum(shape - 2, 0))
    frac = s - i0
    strides = np.array([int(np.prod(shape[k + 1:])) for k in range(grid.ndim)], dtype=np.intp)
    masses = np.zeros(grid.size)
    for corner in itertools.product((0, 1), repeat=grid.ndim):
        c = np.array(corner)
        idx = np.minimum(i0 + c, shape - 1) @ strides
        w = q * np.prod(np.where(c == 1, frac, 1.0 - frac), axis=1)
        masses += np.bincount(idx, weights=w, minlength=grid.size)
    return masses.reshape(grid.shape) / grid.cell_volume


def inside(grid: CartesianGrid, u: np.ndarray) -> np.ndarray:
    """Which of the points u (m, D) lie in the grid's closed box."""
    low, high = np.array(grid.bounds).T
    return np.all((u >= low) & (u <= high), axis=1)


def outside_mass(grid: CartesianGrid, u: np.ndarray, q: np.ndarray) -> float:
    """Total weight of the particles outside the grid's box (left out of the binned density)."""
    return float(q[~inside(grid, u)].sum())
