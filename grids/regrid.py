"""Conservative regridding of cell averages between tensor-product grids.

A density given by cell averages is read as the piecewise-constant function it stands for;
the average of that function over a target cell is

    rho_dst[i] = (1 / |C_i|) sum_j |C_i ∩ S_j| rho_src[j],

and on a tensor-product grid the overlap |C_i ∩ S_j| is a product of one overlap length per
axis, so regridding is one small matrix product per axis. Mass is kept exactly wherever the
target box covers the source box; onto a coarser grid whose faces are source faces it is
the exact cell average, and onto a refinement it reproduces the function exactly.

Faces here are arrays of increasing positions, one per axis; they need not be uniform.

The overlaps are never formed as a dense (n_dst, n_src) matrix: between consecutive faces of
both grids merged, each piece lies in one source and one target cell, so an axis costs
O(n_src + n_dst) memory, however fine or odd the two grids are.

Comparisons of runs (`gflow.postprocess.regrid`, which re-exports these) and an initial
density taken from another run's snapshot (`gflow.problem`) both remap through `regrid`.
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


def overlaps(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero entries of `overlap_matrix(src, dst)`: (target cell i, source cell j, length),
    in increasing i; at most len(src) + len(dst) of them."""
    points = np.union1d(src, dst)
    middle = 0.5 * (points[1:] + points[:-1])
    j = np.searchsorted(src, middle, side="right") - 1
    i = np.searchsorted(dst, middle, side="right") - 1
    keep = (j >= 0) & (j < len(src) - 1) & (i >= 0) & (i < len(dst) - 1)
    # each piece [points[k], points[k+1]] is one cell's intersection |C_i ∩ S_j|, as the matrix has it
    return i[keep], j[keep], np.diff(points)[keep]


def regrid(values: np.ndarray, src_faces, dst_faces) -> np.ndarray:
    """Cell averages on the grid `src_faces` -> cell averages on `dst_faces` (conservative)."""
    out = np.asarray(values, dtype=float)
    for axis, (src, dst) in enumerate(zip(src_faces, dst_faces)):
        if np.array_equal(src, dst):
            continue
        i, j, length = overlaps(src, dst)
        moved = np.moveaxis(out, axis, 0)
        pieces = moved[j] * length.reshape(-1, *([1] * (moved.ndim - 1)))
        result = np.zeros((len(dst) - 1, *moved.shape[1:]))
        if len(i):
            starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
            result[i[starts]] = np.add.reduceat(pieces, starts, axis=0)
        result /= np.diff(dst).reshape(-1, *([1] * (moved.ndim - 1)))
        out = np.moveaxis(result, 0, axis)
    return out


def cell_volumes(faces) -> np.ndarray:
    """Volumes of all cells of a tensor-product grid, shape (n_1, ..., n_D)."""
    widths = [np.diff(f) for f in faces]
    out = widths[0]
    for w in widths[1:]:
        out = np.multiply.outer(out, w)
    return out


def centres(faces) -> tuple[np.ndarray, ...]:
    return tuple(0.5 * (f[1:] + f[:-1]) for f in faces)
