"""Cloud-in-cell deposit of weighted particles onto a `grids.CartesianGrid`.

Each particle spreads its weight q_j over the 2^D cell centres around it with the
multilinear ("tent") weights of the cloud-in-cell scheme (`gflow.grids.deposit`, where it
lives since the grid solvers also deposit point masses: `cloud_in_cell`, `inside` and
`outside_mass` are re-exported here), so the binned density is the second-order
particle-to-grid counterpart of the finite-volume cell averages and a particle run
compares cell by cell with a grid run.

Mass outside the box: the binned density is that of the particles inside the box
(`inside`); a particle beyond [grid].bounds is left out, so the binned mass (density sum x
cell volume, the snapshot's `mass`) is the weight inside, and `outside_mass` is the rest
(mass + outside_mass = the total weight). Gradient descent does not know the box, so a
particle that leaves it is not lost: its position is stored, and it is binned again if it
comes back. A particle inside the box but in the outer half of a boundary cell goes wholly
to that cell (its coordinates are clipped to the range of cell centres).

`gaussian_blobs` is the blob solver's reconstruction: the cell averages of the mollified
density phi_eps * rho, each Gaussian blob integrated exactly over the cells (differences of
its one-dimensional CDFs, as `grids.initial` does for the initial density).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from gflow.grids import CartesianGrid
# the cloud-in-cell deposit lives with the grids (the grid solvers deposit point masses too)
from gflow.grids.deposit import cloud_in_cell, inside, outside_mass  # noqa: F401


#: the `binned` attribute of a Lagrangian run's `density` dataset: what the density holds
INSIDE_NOTE = "particles inside the box; outside_mass is the rest"


#: (particle, cell) pairs per chunk of the blob deposit: bounds its temporaries
BLOB_CHUNK_ENTRIES = 1 << 22


def gaussian_blobs(grid: CartesianGrid, u: np.ndarray, q: np.ndarray, epsilon: float,
                   cutoff: float, point_axes: tuple[int, ...] = ()) -> np.ndarray:
    """Cell averages on `grid` of sum_j q_j phi_eps(. - u_j), phi_eps the N(0, eps I) density.

    Each blob is integrated exactly over the cells within `cutoff` * sqrt(eps) of its centre
    (per axis) and rescaled to carry exactly q_j: the tails beyond the cutoff or the box are
    folded back onto the cells the blob covers. As in `cloud_in_cell`, only the blobs centred
    inside the box are binned, so the binned mass is q.sum() - outside_mass(grid, u, q).
    Along `point_axes` (a layered model's layer axis) a blob is a point: it goes wholly to the
    cell that holds its centre.
    """
    keep = inside(grid, u)
    if not keep.all():
        u, q = u[keep], q[keep]
    shape = np.array(grid.shape)
    low, high = np.array(grid.bounds).T
    h = grid.spacing
    sd = np.sqrt(epsilon)
    # cells per axis that a blob's window [u - R, u + R] can touch
    width = np.minimum(np.ceil(2 * cutoff * sd / h).astype(np.intp) + 1, shape)
    width[list(point_axes)] = 1
    strides = np.array([int(np.prod(shape[k + 1:])) for k in range(grid.ndim)], dtype=np.intp)
    masses = np.zeros(grid.size)
    chunk = max(1, BLOB_CHUNK_ENTRIES // int(np.prod(width)))
    for s in range(0, len(u), chunk):
        uc, qc = u[s:s + chunk], q[s:s + chunk]
        weight = qc.reshape(-1, *[1] * grid.ndim)
        index = np.zeros((len(uc), *[1] * grid.ndim), dtype=np.intp)
        for k in range(grid.ndim):
            if k in point_axes:
                cells = np.clip(np.floor((uc[:, k] - low[k]) / h[k]).astype(np.intp), 0, shape[k] - 1)
                bshape = [len(uc)] + [1] * grid.ndim
                index = index + (cells * strides[k]).reshape(bshape)
                continue
            first = np.clip(np.floor((uc[:, k] - cutoff * sd - low[k]) / h[k]).astype(np.intp), 0,
                            shape[k] - width[k])
            cells = first[:, None] + np.arange(width[k])
            faces = grid.faces[k]
            cdf = ndtr((faces[np.append(cells, cells[:, -1:] + 1, axis=1)] - uc[:, k:k + 1]) / sd)
            mass_1d = np.diff(cdf, axis=1)
            mass_1d /= mass_1d.sum(axis=1, keepdims=True)
            bshape = [len(uc)] + [1] * grid.ndim
            bshape[1 + k] = width[k]
            weight = weight * mass_1d.reshape(bshape)
            index = index + (cells * strides[k]).reshape(bshape)
        masses += np.bincount(index.ravel(), weights=weight.ravel(), minlength=grid.size)
    return masses.reshape(grid.shape) / grid.cell_volume
