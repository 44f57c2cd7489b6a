"""The two bases of the spectral solver: cosines on the zero-flux box, Fourier on the periodic one.

Both carry the density by its point values rho_j at the N cell centres x_j = lo + (j + 1/2) h
of each axis (L = N h the box's length), i.e. by its interpolant in the basis, and both give
the flux divergence -div(F) of fluxes F_k = rho v_k evaluated at the centres.

Cosine basis (`CosineBasis`, the zero-flux box, the default)
    rho = sum_m c_m cos(kappa_m (x - lo)), kappa_m = pi m / L, m = 0..N-1: the interpolant of
    the even extension of rho across each wall, computed by the DCT-II (the half-sample points
    are exactly its nodes). Each flux component F_k goes into a sine series along its own axis,
    sin(kappa_m (x - lo)), m = 1..N (DST-II), and a cosine series along the others; the
    derivative of sin(kappa_m x) is kappa_m cos(kappa_m x), so -d_k F_k is a cosine series
    again: c'_m = -kappa_m s_m (the m = N sine's derivative vanishes at every node and is
    dropped). The scheme is the collocation form of the Galerkin method with the cosines as
    trial and test functions: for test functions phi with phi' = 0 at the walls,
    int d_t rho phi = int F phi' holds exactly when F . n = 0 there, so zero flux is the
    natural boundary condition of this weak form, the one every other gflow grid solver
    imposes (SPEC.md: the box's faces carry no flux). Mass is the m = 0 coefficient, which
    the divergence never touches: it is conserved to round-off. T lap rho is -T kappa_m^2 c_m,
    diagonal, so diffusion is integrated exactly as before. Convergence is spectral when the
    even extension is smooth, i.e. when the density and its odd derivatives vanish at the walls
    (a density well inside the box, or rho' = rho v / T = 0 there); where the density leans on a
    wall the error is algebraic (the even extension has a kink: O(N^-2) in the max norm), still
    with exact mass and zero flux.
Fourier basis (`FourierBasis`, `basis = "fourier"`)
    rho = sum_k rho_k exp(i k (x - lo)), k = 2 pi j / L: the periodic box. It solves a different
    problem from the other solvers unless the density vanishes near the walls (mass leaving at
    one side enters at the other), and is kept for periodic problems (a potential periodic on
    its box) and for comparison.

FFTW (through pyFFTW) does both kinds of transform: rfftn for Fourier, its real-to-real
REDFT10 / RODFT10 / REDFT01 (DCT-II, DST-II, DCT-III) for cosines (`gflow.fft`); scipy.fft
where pyFFTW is missing. Boyd, "Chebyshev and Fourier Spectral Methods" (2001), ch. 6 and 9
(even extensions and cosine series for Neumann-type conditions); Canuto, Hussaini, Quarteroni,
Zang, "Spectral Methods: Fundamentals in Single Domains" (2006), ch. 2.
"""
from __future__ import annotations

import numpy as np

from gflow.fft import RealFFT, RealToReal


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A 1-D array shaped to broadcast along `axis` of an ndim-dimensional array."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return values.reshape(shape)


def fourier_wavenumbers(cells, spacing) -> list[np.ndarray]:
    """k along each axis in rfftn layout (full axes, then the halved last one), broadcastable."""
    D = len(cells)
    return [_along(2 * np.pi * (np.fft.rfftfreq(n, h) if axis == D - 1 else np.fft.fftfreq(n, h)), axis, D)
            for axis, (n, h) in enumerate(zip(cells, spacing))]


def cosine_wavenumbers(cells, spacing) -> list[np.ndarray]:
    """kappa_m = pi m / (N h), m = 0..N-1, along each axis, broadcastable."""
    D = len(cells)
    return [_along(np.pi * np.arange(n) / (n * h), axis, D) for axis, (n, h) in enumerate(zip(cells, spacing))]


class FourierBasis:
    """The periodic box: rfftn of the point values."""

    name = "fourier"
    boundary = "periodic"
    periodic = True
    dtype = complex

    def __init__(self, grid, threads: int = 1):
        self.fft = RealFFT(grid.shape, threads=threads)
        self.fftw = self.fft.fftw
        self.shape = self.fft.spectral_shape
        #: wavenumbers per axis, broadcastable to `shape`
        self.wavenumbers = fourier_wavenumbers(grid.cells, grid.spacing)
        kmax = np.pi / grid.spacing
        # the Nyquist mode's derivative is not a real function's: drop it, as is standard
        self.derivative = [1j * k * np.where(np.isclose(np.abs(k), km) & (n % 2 == 0), 0.0, 1.0)
                           for k, km, n in zip(self.wavenumbers, kmax, grid.cells)]

    def forward(self, values: np.ndarray) -> np.ndarray:
        return self.fft.forward(values)

    def backward(self, coefficients: np.ndarray) -> np.ndarray:
        return self.fft.backward(coefficients).copy()

    def divergence(self, fluxes) -> np.ndarray:
        """-div F in coefficients, F_k at the centres (None: no flux along axis k)."""
        out = np.zeros(self.shape, dtype=complex)
        for ik, flux in zip(self.derivative, fluxes):
            if flux is not None:
                out -= ik * self.fft.forward(flux)
        return out


class CosineBasis:
    """The zero-flux box: DCT-II of the point values, the fluxes' DST-II along their axis."""

    name = "cosine"
    boundary = "zero flux"
    periodic = False
    dtype = float

    def __init__(self, grid, threads: int = 1):
        D, shape = grid.ndim, grid.shape
        self.shape = shape
        self._forward = RealToReal(shape, ["dct2"] * D, threads=threads)
        self._backward = RealToReal(shape, ["dct3"] * D, threads=threads)
        self.fftw = self._forward.fftw
        #: DCT-III(DCT-II(x)) = prod_k 2 N_k x
        self._scale = 1.0 / float(np.prod([2 * n for n in grid.cells]))
        self.wavenumbers = cosine_wavenumbers(grid.cells, grid.spacing)
        self._flux = [RealToReal(shape, ["dst2" if j == k else "dct2" for j in range(D)], threads=threads)
                      for k in range(D)]
        # along its own axis: d/dx of sine m (coefficient slot m - 1) is kappa_m cosine m, m = 1..N-1
        self._cosines = [tuple(slice(1, None) if j == k else slice(None) for j in range(D)) for k in range(D)]
        self._sines = [tuple(slice(None, -1) if j == k else slice(None) for j in range(D)) for k in range(D)]
        self._kappa = [kappa[cosines] for kappa, cosines in zip(self.wavenumbers, self._cosines)]

    def forward(self, values: np.ndarray) -> np.ndarray:
        return self._forward(values).copy()

    def backward(self, coefficients: np.ndarray) -> np.ndarray:
        return self._backward(coefficients) * self._scale

    def divergence(self, fluxes) -> np.ndarray:
        """-div F in cosine coefficients; F_k at the centres (None: no flux along axis k)."""
        out = np.zeros(self.shape)
        for axis, flux in enumerate(fluxes):
            if flux is not None:
                # the transform's own output array, overwritten by its next call: scaled in place
                sine = self._flux[axis](flux)[self._sines[axis]]
                sine *= self._kappa[axis]
                out[self._cosines[axis]] -= sine
        return out


BASES = {b.name: b for b in (CosineBasis, FourierBasis)}


def filter_factor(kind: str, ratio: np.ndarray, order: int) -> np.ndarray:
    """sigma(|k| / k_max) along one axis.

    "exponential": exp(-36 ratio^order) (36 ~ -log(machine epsilon): the last mode goes to
    round-off; Vandeven's filter of that order, Hou & Li, J. Comput. Phys. 226 (2007) take
    order 36); "dealias": the 2/3 rule; "none": 1.
    """
    if kind == "exponential":
        return np.exp(-36.0 * ratio**order)
    if kind == "dealias":
        return (ratio <= 2.0 / 3.0).astype(float)
    if kind == "none":
        return np.ones_like(ratio, dtype=float)
    raise ValueError(f"unknown filter {kind!r} (have exponential, dealias, none)")
