"""Conservative regridding of cell averages between tensor-product grids, for comparing runs.

The remap itself (`regrid`, `overlaps`, `cell_volumes`, ...) is `gflow.grids.regrid`, re-exported
here; this module adds the common grid of two runs.

The remap keeps mass exactly wherever the target box covers the source box (the equation and
its properties are in `gflow.grids.regrid`).

The common grid of two runs holds at most MAX_COMMON_CELLS cells (two runs on far-apart boxes
would otherwise make one of any size); a larger one is a ValueError.
"""
from __future__ import annotations

import math

import numpy as np

# the regridding itself lives with the grids (an initial density from a snapshot is remapped too)
from gflow.grids.regrid import cell_volumes, centres, overlap_matrix, overlaps, regrid, uniform_faces  # noqa: F401
from gflow.run_file import MAX_CELLS

#: cells of a common grid at most: the largest grid a case may have
MAX_COMMON_CELLS = MAX_CELLS


def common_cells(faces_a, faces_b) -> tuple[int, ...]:
    """The cells per axis of `common_grid(faces_a, faces_b)`, from the faces alone; a ValueError
    when the grid would hold more than MAX_COMMON_CELLS cells (or the box is not finite)."""
    cells = []
    for fa, fb in zip(faces_a, faces_b):
        lo, hi = min(fa[0], fb[0]), max(fa[-1], fb[-1])
        h = max(np.diff(fa).max(), np.diff(fb).max())
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            count = (hi - lo) / h
        if not (np.isfinite(count) and count <= MAX_COMMON_CELLS):
            raise ValueError(f"their common grid (the union box {lo:.6g} .. {hi:.6g} at spacing {h:.3g}) would "
                             f"have more than the {MAX_COMMON_CELLS} cells allowed")
        cells.append(max(1, round(count)))
    if math.prod(cells) > MAX_COMMON_CELLS:
        raise ValueError(f"their common grid would have {' x '.join(map(str, cells))} cells, more than the "
                         f"{MAX_COMMON_CELLS} allowed")
    return tuple(cells)


def common_grid(faces_a, faces_b) -> tuple[np.ndarray, ...]:
    """One uniform grid for two: per axis, the union of both intervals at the coarser spacing.

    Two grids on one box, one a refinement of the other, give the coarser grid itself, so a
    fine solution is compared with a coarse one through its exact cell averages there. More
    than MAX_COMMON_CELLS cells is a ValueError (`common_cells`), before anything is allocated.
    """
    cells = common_cells(faces_a, faces_b)
    return tuple(uniform_faces(min(fa[0], fb[0]), max(fa[-1], fb[-1]), n)
                 for fa, fb, n in zip(faces_a, faces_b, cells))


def coarsen_faces(faces: np.ndarray, factor: int = 2) -> np.ndarray:
    """Uniform faces on the same interval with `factor` times fewer cells (at least one)."""
    cells = max(1, -(-(len(faces) - 1) // factor))
    return uniform_faces(faces[0], faces[-1], cells)
