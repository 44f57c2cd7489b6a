"""A uniform Cartesian grid of cells on a box [low_1, high_1] x ... x [low_D, high_D]."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CartesianGrid:
    """Cells of equal size on a box; values live at cell centres (finite-volume averages).

    Parameters
    ----------
    bounds : sequence of (low, high) pairs, one per axis
    cells : sequence of int, the number of cells per axis
    """

    bounds: tuple[tuple[float, float], ...]
    cells: tuple[int, ...]
    #: centres[i] is the (n_i,) array of cell centres along axis i
    centres: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)
    #: faces[i] is the (n_i + 1,) array of cell faces along axis i
    faces: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        bounds = tuple((float(lo), float(hi)) for lo, hi in self.bounds)
        cells = tuple(int(n) for n in self.cells)
        if len(bounds) != len(cells) or not 1 <= len(cells):
            raise ValueError("bounds and cells need the same, positive, number of axes")
        if any(hi <= lo for lo, hi in bounds) or any(n < 1 for n in cells):
            raise ValueError("each axis needs low < high and at least one cell")
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "cells", cells)
        faces = tuple(np.linspace(lo, hi, n + 1) for (lo, hi), n in zip(bounds, cells))
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "centres", tuple(0.5 * (f[1:] + f[:-1]) for f in faces))

    @property
    def ndim(self) -> int:
        return len(self.cells)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.cells

    @property
    def spacing(self) -> np.ndarray:
        """Cell widths h_i, shape (D,)."""
        return np.array([(hi - lo) / n for (lo, hi), n in zip(self.bounds, self.cells)])

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def size(self) -> int:
        return int(np.prod(self.cells))

    def mesh(self) -> list[np.ndarray]:
        """Broadcastable coordinate arrays (sparse meshgrid, 'ij' order), one per axis."""
        return np.meshgrid(*self.centres, indexing="ij", sparse=True)

    def points(self) -> np.ndarray:
        """All cell centres as an (N, D) array in C order of the grid."""
        full = np.meshgrid(*self.centres, indexing="ij")
        return np.stack([c.ravel() for c in full], axis=1)

    def face_mesh(self, axis: int) -> list[np.ndarray]:
        """Sparse coordinates of the faces normal to `axis` (interior and boundary)."""
        coords = [self.faces[i] if i == axis else self.centres[i] for i in range(self.ndim)]
        return np.meshgrid(*coords, indexing="ij", sparse=True)

    def mass(self, rho: np.ndarray) -> float:
        return float(rho.sum() * self.cell_volume)
