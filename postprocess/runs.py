"""The cell geometry of a run, as postprocessing sees it: faces, marginals, weighted points.

Files are read by `gflow.snapshots.open_run` (the one reader, with its checks); this module
only turns a `Run`'s coordinates and densities into geometry.
"""
from __future__ import annotations

import numpy as np

from gflow.snapshots import Run
from gflow.postprocess.regrid import cell_volumes, centres


def faces(run: Run) -> tuple[np.ndarray, ...]:
    """Cell faces per axis (`Run.faces`: from the stored uniform centres; a single cell takes the
    case bounds)."""
    return run.faces()


def grid_label(run: Run) -> str:
    text = f"grid {' x '.join(str(len(c)) for c in run.coordinates)}"
    if run.has_particles:
        text = f"{len(run.weights)} particles, binned on {text}"
    return text


def cell_masses(density: np.ndarray, cell_faces) -> np.ndarray:
    return density * cell_volumes(cell_faces)


def marginal(density: np.ndarray, cell_faces, keep) -> np.ndarray:
    """The marginal density on the axes `keep` (integrate the others out)."""
    keep = tuple(keep)
    masses = cell_masses(density, cell_faces)
    drop = tuple(i for i in range(density.ndim) if i not in keep)
    return masses.sum(axis=drop) / cell_volumes([cell_faces[i] for i in keep])


def grid_points(cell_faces) -> np.ndarray:
    """All cell centres, (N, D), in C order of the grid."""
    return np.stack([m.ravel() for m in np.meshgrid(*centres(cell_faces), indexing="ij")], axis=1)
