"""Conservative regridding of cell averages between tensor-product grids.

A density given by cell averages is read as the piecewise-constant function it stands for;
the average of that function over a target cell is

    rho_dst[i] = (1 / |C_i|) sum_j |C_i ∩ S_j| rho_src[j],

and on a tensor-product grid the overlap |C_i ∩ S_j| is a product of one overlap length per
axis, so regridding is one small matrix product per axis. Mass is kept exactly wherever the
target box covers the source box; onto a coarser grid whose faces are source faces it is
the exact cell average, and onto a refinement it reproduces the function exactly.

Faces here are arrays of increasing positions, one per axis; they need not be uniform.
"""
from __future__ import annotations

import numpy as np


def uniform_faces(low: float, high: float, cells: int) -> np.ndarray:
    return np.linspace(low, high, cells + 1)


def overlap_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Overlap lengths |dst cell i ∩ src cell j|, shape (len(dst) - 1, len(src) - 1)."""
    lo = np.maximum(dst[:-1, None], src[None, :-1])
    hi = np.minimum(dst[1:, None], src[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def regrid(values: np.ndarray, src_faces, dst_faces) -> np.ndarray:
    """Cell averages on the grid `src_faces` -> cell averages on `dst_faces` (conservative)."""
    out = np.asarray(values, dtype=float)
    for axis, (src, dst) in enumerate(zip(src_faces, dst_faces)):
        if np.array_equal(src, dst):
            continue
        weights = overlap_matrix(src, dst) / np.diff(dst)[:, None]
        out = np.moveaxis(np.tensordot(weights, out, axes=(1, axis)), 0, axis)
    return out


def common_grid(faces_a, faces_b) -> tuple[np.ndarray, ...]:
    """One uniform grid for two: per axis, the union of both intervals at the coarser spacing.

    Two grids on one box, one a refinement of the other, give the coarser grid itself, so a
    fine solution is compared with a coarse one through its exact cell averages there.
    """
    out = []
    for fa, fb in zip(faces_a, faces_b):
        lo, hi = min(fa[0], fb[0]), max(fa[-1], fb[-1])
        h = max(np.diff(fa).max(), np.diff(fb).max())
        out.append(uniform_faces(lo, hi, max(1, round((hi - lo) / h))))
    return tuple(out)


def coarsen_faces(faces: np.ndarray, factor: int = 2) -> np.ndarray:
    """Uniform faces on the same interval with `factor` times fewer cells (at least one)."""
    cells = max(1, -(-(len(faces) - 1) // factor))
    return uniform_faces(faces[0], faces[-1], cells)


def cell_volumes(faces) -> np.ndarray:
    """Volumes of all cells of a tensor-product grid, shape (n_1, ..., n_D)."""
    widths = [np.diff(f) for f in faces]
    out = widths[0]
    for w in widths[1:]:
        out = np.multiply.outer(out, w)
    return out


def centres(faces) -> tuple[np.ndarray, ...]:
    return tuple(0.5 * (f[1:] + f[:-1]) for f in faces)
