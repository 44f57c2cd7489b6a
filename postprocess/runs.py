"""A snapshot file as postprocessing sees it: checked reads, cell geometry, weighted points.

Every read of a file goes through here, so a truncated, corrupt or foreign file is one
`InputError` (one line, exit 2) wherever it is first noticed, at open or at a later read.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass

import numpy as np

from gflow.errors import InputError
from gflow.snapshots import Run, read_run
from gflow.postprocess.regrid import cell_volumes, centres

#: what h5py and numpy raise on a damaged file (h5py reports some corruption as RuntimeError)
_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)


def open_run(path) -> Run:
    """Read a run's metadata; it must hold at least one snapshot."""
    try:
        run = read_run(path)
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(f"{path}: unreadable gflow file: {exc}") from None
    if len(run.time) == 0:
        raise InputError(f"{path}: the run has no snapshots yet")
    if len(run.coordinates) != len(run.axes) or any(np.ndim(c) != 1 or len(c) == 0 for c in run.coordinates):
        raise InputError(f"{path}: the axis coordinate datasets do not match the axes {list(run.axes)}")
    if run.has_particles and (run.weights is None or np.ndim(run.weights) != 1):
        raise InputError(f"{path}: a particle run without a 1D `weights` dataset")
    return run


@dataclass
class Snapshot:
    """One snapshot of a run: the density on the run's grid, and particles where it has them."""

    time: float
    density: np.ndarray
    positions: np.ndarray | None = None


def snapshot(run: Run, index: int) -> Snapshot:
    """Read snapshot `index`, checking its shape and values."""
    try:
        density = run.density(index)
        positions = run.positions(index)
    except _READ_ERRORS as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc   # KeyError quotes its text
        raise InputError(f"{run.path}: cannot read snapshot {index}: {reason}") from None
    shape = tuple(len(c) for c in run.coordinates)
    if density.shape != shape:
        raise InputError(f"{run.path}: density snapshot {index} has shape {density.shape}, the axes say {shape}")
    if not np.all(np.isfinite(density)) or (positions is not None and not np.all(np.isfinite(positions))):
        raise InputError(f"{run.path}: snapshot {index} has non-finite values (a corrupt file?)")
    if positions is not None and (positions.ndim != 2 or positions.shape[1] != len(shape)
                                  or run.weights is None or len(run.weights) != len(positions)):
        raise InputError(f"{run.path}: positions of snapshot {index} do not match the axes and weights")
    return Snapshot(float(run.time[index]), density, positions)


def faces(run: Run) -> tuple[np.ndarray, ...]:
    """Cell faces per axis, from the stored (uniform) centres; a single cell takes the case bounds."""
    out = []
    for i, c in enumerate(run.coordinates):
        if len(c) > 1:
            h = (c[-1] - c[0]) / (len(c) - 1)
            out.append(c[0] - 0.5 * h + h * np.arange(len(c) + 1))
        else:
            out.append(_single_cell(run, i, c[0]))
    return tuple(out)


def _single_cell(run: Run, axis: int, centre: float) -> np.ndarray:
    """The faces of an axis with one cell: its centre does not give its width, the case does."""
    try:
        return np.array(tomllib.loads(run.case_text)["grid"]["bounds"][axis], dtype=float)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, IndexError, ValueError):
        return np.array([centre - 0.5, centre + 0.5])


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
