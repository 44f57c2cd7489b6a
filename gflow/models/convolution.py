"""Interaction potentials W * rho on a grid by zero-padded FFT convolution.

(W * rho)(x_i) = sum_j rho_j int_{cell j} W(|x_i - y|) dy: the kernel enters through its
*cell integrals* K_k = int_{cell at offset k} W(|z|) dz, so a singular kernel such as -log r
is integrated, never sampled at r = 0 (BACKGROUND.md). Padding every axis to 2n makes the
circular FFT convolution an exact linear one on the box.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from gflow.fft import RealFFT
from gflow.grids import CartesianGrid

_FAR_NODES = 2      # Gauss-Legendre nodes per axis away from the singularity (4th order)
_NEAR_NODES = 10    # within _NEAR_CELLS of it, where the 2-node rule would lose digits
_NEAR_CELLS = 3
_CORNER_NODES = 6   # in the geometric refinement towards r = 0
_CORNER_LEVELS = 40


def _gauss01(n: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (t + 1.0), 0.5 * w


def _box_integral(kernel, lows: np.ndarray, widths: np.ndarray, n: int) -> np.ndarray:
    """Tensor Gauss-Legendre integrals of kernel(|z|) over boxes [lows, lows + widths], (B, D)."""
    t, w = _gauss01(n)
    D = lows.shape[1]
    total = np.zeros(len(lows))
    for idx in itertools.product(range(n), repeat=D):
        z = lows + widths * t[list(idx)]
        total += kernel(np.sqrt((z * z).sum(axis=1))) * np.prod(w[list(idx)])
    return total * np.prod(widths, axis=1)


def _corner_integral(kernel, half: np.ndarray) -> float:
    """int over [0, half] of kernel(|z|) for a kernel singular at z = 0 only.

    Boxes halve towards the corner (geometric refinement), so each box sees a smooth
    integrand and Gauss-Legendre converges fast; the last box left out has negligible mass.
    """
    D = len(half)
    corners = np.array([c for c in itertools.product((0, 1), repeat=D) if any(c)], dtype=float)
    total, size = 0.0, half.astype(float)
    for _ in range(_CORNER_LEVELS):
        size = size / 2
        total += _box_integral(kernel, corners * size, np.tile(size, (len(corners), 1)), _CORNER_NODES).sum()
    return total


def kernel_cell_integrals(kernel: Callable[[np.ndarray], np.ndarray], spacing: np.ndarray,
                          cells: tuple[int, ...]) -> np.ndarray:
    """K over offsets -(n-1)..(n-1) per axis, laid out for a 2n-periodic FFT."""
    D = len(cells)
    offsets = np.meshgrid(*[np.arange(-(n - 1), n) for n in cells], indexing="ij")
    k = np.stack([o.ravel() for o in offsets], axis=1)
    lows = (k - 0.5) * spacing
    widths = np.tile(spacing, (len(k), 1))
    near = np.abs(k).max(axis=1) <= _NEAR_CELLS
    values = np.empty(len(k))
    with np.errstate(divide="ignore", invalid="ignore"):
        values[~near] = _box_integral(kernel, lows[~near], widths[~near], _FAR_NODES)
        values[near] = _box_integral(kernel, lows[near], widths[near], _NEAR_NODES)
        centre = np.flatnonzero(np.abs(k).sum(axis=1) == 0)[0]
        values[centre] = 2**D * _corner_integral(kernel, spacing / 2)
    if not np.all(np.isfinite(values)):
        raise ValueError("the interaction kernel is not integrable on the grid cells")
    table = values.reshape([2 * n - 1 for n in cells])
    padded = np.zeros([2 * n for n in cells])
    # offset o sits at index o mod 2n, so the circular convolution reads it at i - j
    index = np.ix_(*[np.r_[0:n, n + 1:2 * n] for n in cells])
    padded[index] = _roll_to_fft_order(table, cells)
    return padded


def _roll_to_fft_order(table: np.ndarray, cells) -> np.ndarray:
    # table index i holds offset i - (n - 1); FFT order lists offsets 0..n-1 then -(n-1)..-1
    for axis, n in enumerate(cells):
        table = np.roll(table, -(n - 1), axis=axis)
    return table


class GridConvolution:
    """rho -> W * rho at the cell centres of `grid`, FFT plans built once."""

    def __init__(self, kernel: Callable[[np.ndarray], np.ndarray], grid: CartesianGrid, threads: int = 1):
        self.cells = grid.cells
        padded_shape = tuple(2 * n for n in grid.cells)
        self.fft = RealFFT(padded_shape, threads=threads)
        self.kernel_hat = self.fft.forward(kernel_cell_integrals(kernel, grid.spacing, grid.cells))
        self._crop = tuple(slice(0, n) for n in grid.cells)

    def __call__(self, rho: np.ndarray) -> np.ndarray:
        spec = self.fft.forward_padded(rho)
        spec *= self.kernel_hat
        return self.fft.backward(spec)[self._crop].copy()
