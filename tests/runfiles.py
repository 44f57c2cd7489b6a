"""Synthetic snapshot files for the postprocessing tests, written with the real SnapshotWriter.

Densities are exact cell averages of Gaussians (`grids.gaussian_cell_average`); particle runs
carry positions and weights and bin them onto their grid, as a particle solver does.
"""
from __future__ import annotations

import numpy as np

from conftest import TWO_LAYER_2D
from gflow.snapshots import SnapshotWriter
from gflow.grids import CartesianGrid, gaussian_cell_average
from gflow.solvers.base import Observation

# the shared small case on a square box
CASE_2D = TWO_LAYER_2D.replace('name = "small"', 'name = "synthetic"').replace("[-5.0, 5.0]]", "[-4.0, 4.0]]")

CASE_1D = """
name = "synthetic_1d"
[model]
kind = "potential"
axes = ["x"]
potential = "0.5*x**2"
[initial]
distribution = "gaussian"
mean = [0.0]
std = [1.0]
[grid]
bounds = [[-6.0, 6.0]]
cells = [64]
[time]
end = 1.0
snapshots = 3
"""


def gaussian(bounds, cells, mean, std) -> np.ndarray:
    return gaussian_cell_average(CartesianGrid(bounds, cells), mean, std)


def _observation(density, grid, t, positions=None) -> Observation:
    return Observation(density, risk=1.0 / (1.0 + t), energy=1.0 / (1.0 + t), mass=grid.mass(density),
                       positions=positions)


def write_grid_run(path, bounds, cells, densities, times=None, case_text=CASE_2D, axes=("a", "w")):
    """A grid run with the given densities, one per snapshot time."""
    grid = CartesianGrid(bounds, cells)
    times = np.arange(len(densities), dtype=float) if times is None else times
    writer = SnapshotWriter(path, case_text=case_text, solver="fv", axes=axes, coordinates=grid.centres)
    for t, rho in zip(times, densities):
        writer.append(float(t), _observation(rho, grid, t))
    return path


def write_particle_run(path, bounds, cells, positions, weights=None, times=None, case_text=CASE_2D,
                       axes=("a", "w")):
    """A particle run: positions (T, m, D), weights (m,) (default 1/m), binned onto the grid."""
    grid = CartesianGrid(bounds, cells)
    positions = np.asarray(positions, dtype=float)
    m = positions.shape[1]
    weights = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=float)
    times = np.arange(len(positions), dtype=float) if times is None else times
    writer = SnapshotWriter(path, case_text=case_text, solver="particle", axes=axes, coordinates=grid.centres,
                            n_particles=m, weights=weights)
    for t, x in zip(times, positions):
        clipped = np.clip(x, [lo for lo, _ in grid.bounds], [hi - 1e-12 for _, hi in grid.bounds])
        hist, _ = np.histogramdd(clipped, bins=grid.faces, weights=weights)
        writer.append(float(t), _observation(hist / grid.cell_volume, grid, t, x))
    return path
