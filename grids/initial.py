"""Cell averages of initial distributions, renormalised to mass 1 on the box.

Cell averages (not point values) make the discrete initial mass exact and keep the
finite-volume scheme's second order from the first step; product distributions are
integrated exactly through differences of their one-dimensional CDFs.
"""
from __future__ import annotations

from collections.abc import Sequence

import math

import numpy as np

from gflow.grids.cartesian import CartesianGrid


# erf on the few faces of one axis (O(n), not O(n^D)): cheaper than importing scipy.special,
# which costs the command line a second at start-up
_erf = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)).astype(float))


def _normalise(grid: CartesianGrid, mass_per_cell: np.ndarray) -> np.ndarray:
    total = mass_per_cell.sum()
    if not total > 0:
        raise ValueError("the initial distribution puts no mass in the box")
    return mass_per_cell / (total * grid.cell_volume)


def _chi_cdf(r: np.ndarray, k: int) -> np.ndarray:
    """P(|g| <= r) for g ~ N(0, I_k): the regularised lower Gamma function P(k/2, r^2/2)."""
    from scipy.special import gammainc   # only for radial axes: scipy is slow to import

    return gammainc(0.5 * k, 0.5 * np.maximum(r, 0.0) ** 2)


def _gaussian_cell_masses(grid: CartesianGrid, mean, std, radial: dict[int, int] | None = None) -> np.ndarray:
    masses = np.ones(())
    for axis, (faces, mu, sd) in enumerate(zip(grid.faces, mean, std)):
        # the difference of CDFs is the exact mass of each cell along this axis
        k = (radial or {}).get(axis)
        cdf = _normal_cdf((faces - mu) / sd) if k is None else _chi_cdf(faces / sd, k)
        masses = np.multiply.outer(masses, np.diff(cdf))
    return masses


def gaussian_cell_average(grid: CartesianGrid, mean: Sequence[float], std: Sequence[float],
                          radial: dict[int, int] | None = None) -> np.ndarray:
    """Density of N(mean, diag(std^2)) averaged over each cell, with mass 1 on the box.

    `radial` maps an axis to k: that axis holds the norm of a centred N(0, std^2 I_k) vector
    instead (the chi law std chi_k, whose CDF is P(k/2, r^2 / (2 std^2))), as the invariant
    w_perp of a rotation-invariant Gaussian does (`gflow.models.two_layer_symmetry`)."""
    return _normalise(grid, _gaussian_cell_masses(grid, mean, std, radial))


def uniform_cell_average(grid: CartesianGrid) -> np.ndarray:
    """The uniform density on the whole box."""
    return _normalise(grid, np.ones(grid.shape))


def mixture_cell_average(grid: CartesianGrid, weights: Sequence[float], means, stds,
                         radial: dict[int, int] | None = None) -> np.ndarray:
    """A weighted sum of Gaussian components, each integrated exactly over the cells."""
    masses = sum(w * _gaussian_cell_masses(grid, m, s, radial) for w, m, s in zip(weights, means, stds))
    return _normalise(grid, masses)
