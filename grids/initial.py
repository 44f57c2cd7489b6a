"""Cell averages of initial distributions, renormalised to mass 1 on the box.

Cell averages (not point values) make the discrete initial mass exact and keep the
finite-volume scheme's second order from the first step; product distributions are
integrated exactly through differences of their one-dimensional CDFs (Gaussians, mixtures,
and `product_cell_average`'s per-axis laws); the spherical shell, which is not a product,
is averaged by a tensor Gauss-Legendre rule inside each cell (`shell_cell_average`).
"""
from __future__ import annotations

from collections.abc import Sequence

import itertools
import math

import numpy as np

from gflow.grids.cartesian import CartesianGrid
from gflow.grids.deposit import cloud_in_cell
from gflow.grids.regrid import cell_volumes, regrid


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


def uniform_1d_masses(faces: np.ndarray, low: float, high: float) -> np.ndarray:
    """Mass of U[low, high] in each cell [faces_i, faces_i+1]: the CDF differences, exact for
    cells the interval only partly covers."""
    return np.diff(np.clip((faces - low) / (high - low), 0.0, 1.0))


def gaussian_1d_masses(faces: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Mass of N(mean, std^2) in each cell: differences of its CDF at the faces."""
    return np.diff(_normal_cdf((faces - mean) / std))


#: a per-axis law of `product_cell_average`: its name -> the cell masses on one axis' faces
FACTOR_MASSES = {"gaussian": gaussian_1d_masses, "uniform": uniform_1d_masses}


def product_cell_average(grid: CartesianGrid, factors: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """The density of independent per-axis laws, rho(u) = prod_i rho_i(u_i), averaged over each cell.

    `factors` holds one (name, p1, p2) per axis: ("gaussian", mean, std) or ("uniform", low,
    high). The mass of a cell is the product of its one-dimensional masses, so the cell
    averages are exact (Rotskoff and Vanden-Eijnden's c ~ N(0, 1), y ~ U[-2, 2] on a larger box)."""
    masses = np.ones(())
    for faces, (name, p1, p2) in zip(grid.faces, factors):
        masses = np.multiply.outer(masses, FACTOR_MASSES[name](faces, p1, p2))
    return _normalise(grid, masses)


#: Gauss-Legendre nodes per axis inside each cell for densities that are not products
SUBCELL_NODES = 3


def shell_cell_average(grid: CartesianGrid, center: Sequence[float], radius: float, width: float) -> np.ndarray:
    """A spherical shell rho(u) ~ exp(-(|u - c| - R)^2 / (2 width^2)), averaged over each cell.

    The grid's stand-in for the uniform law on the sphere |u - c| = R (which has no density):
    a radial Gaussian profile of the stated width about R. It is no product, so each cell
    average is a tensor Gauss-Legendre rule of SUBCELL_NODES^D points inside the cell (exact
    for polynomials of degree 2 SUBCELL_NODES - 1 in each coordinate: the averages are far
    beyond second order while the cells resolve the width, and no worse than the midpoint
    rule's second order when they do not), evaluated one sub-point at a time over the whole
    grid (memory of one density). The masses are then normalised to 1 on the box, so the
    discrete mass is exact."""
    t, w = np.polynomial.legendre.leggauss(SUBCELL_NODES)
    offsets, weights = 0.5 * t, 0.5 * w                 # on [-1/2, 1/2], summing to 1
    h = grid.spacing
    masses = np.zeros(grid.shape)
    for nodes in itertools.product(range(SUBCELL_NODES), repeat=grid.ndim):
        r2 = np.zeros(())
        for axis, k in enumerate(nodes):
            x = grid.centres[axis] + h[axis] * offsets[k] - center[axis]
            shape = [1] * grid.ndim
            shape[axis] = -1
            r2 = r2 + (x * x).reshape(shape)
        masses += np.prod(weights[list(nodes)]) * np.exp(-0.5 * ((np.sqrt(r2) - radius) / width) ** 2)
    return _normalise(grid, masses)


def points_cell_average(grid: CartesianGrid, u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Point masses (u (P, D), weights q) on the grid: their cloud-in-cell deposit
    (`gflow.grids.deposit`), which keeps the mass and the first moments of the points inside
    the box, renormalised to mass 1 there (points outside it are left out)."""
    return _normalise(grid, cloud_in_cell(grid, u, q) * grid.cell_volume)


def remapped_cell_average(grid: CartesianGrid, faces, density: np.ndarray) -> np.ndarray:
    """Another grid's cell averages (on `faces`) remapped conservatively onto `grid`
    (`gflow.grids.regrid`: exact cell averages of the piecewise-constant density), mass 1 on
    the box. Negative values (a spectral run's round-off) are set to 0 first: a density is >= 0."""
    density = np.maximum(np.asarray(density, dtype=float), 0.0)
    if all(len(f) == len(g) and np.allclose(f, g, rtol=0.0, atol=1e-12 * (abs(g[-1] - g[0])))
           for f, g in zip(faces, grid.faces)):
        return _normalise(grid, density * cell_volumes(faces))      # the same grid: no remap
    return _normalise(grid, regrid(density, faces, grid.faces) * grid.cell_volume)
