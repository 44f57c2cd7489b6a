"""Real FFTs of one fixed shape with plans built once (pyFFTW), or scipy.fft as the fallback.

pyFFTW's builders hand back their internal output array, so a second call would overwrite
the first result (BACKGROUND.md, pitfalls): this class owns its FFTW objects and arrays and
returns copies only where the caller keeps the result.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

try:
    import pyfftw
except ImportError:  # pragma: no cover - exercised only where pyFFTW is missing
    pyfftw = None


def available_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class RealFFT:
    """rfftn / irfftn over all axes of real arrays of `shape`."""

    def __init__(self, shape: tuple[int, ...], threads: int = 1, use_fftw: bool = True):
        self.shape = tuple(shape)
        self.spectral_shape = (*self.shape[:-1], self.shape[-1] // 2 + 1)
        self.fftw = use_fftw and pyfftw is not None
        if use_fftw and pyfftw is None:
            warnings.warn("pyFFTW is not installed: using scipy.fft (slower)", RuntimeWarning, stacklevel=2)
        if self.fftw:
            self._real = pyfftw.empty_aligned(self.shape, dtype="float64")
            self._spec = pyfftw.empty_aligned(self.spectral_shape, dtype="complex128")
            axes = tuple(range(len(self.shape)))
            flags = ("FFTW_MEASURE", "FFTW_DESTROY_INPUT")
            self._forward = pyfftw.FFTW(self._real, self._spec, axes=axes, threads=threads, flags=flags)
            self._backward = pyfftw.FFTW(self._spec, self._real, axes=axes, direction="FFTW_BACKWARD",
                                         threads=threads, flags=flags)
        else:
            import scipy.fft
            self._sfft = scipy.fft

    def forward(self, real: np.ndarray) -> np.ndarray:
        """rfftn(real); the result is the caller's (a copy)."""
        if not self.fftw:
            return self._sfft.rfftn(real)
        self._real[...] = real
        return self._forward().copy()

    def forward_padded(self, real: np.ndarray) -> np.ndarray:
        """rfftn of `real` zero-padded (at the high end of each axis) to this shape."""
        if not self.fftw:
            return self._sfft.rfftn(real, s=self.shape)
        self._real[...] = 0.0
        self._real[tuple(slice(0, n) for n in real.shape)] = real
        return self._forward().copy()

    def backward(self, spec: np.ndarray) -> np.ndarray:
        """irfftn(spec) into an internal array: copy it if you keep it past the next call."""
        if not self.fftw:
            return self._sfft.irfftn(spec, s=self.shape)
        self._spec[...] = spec
        return self._backward()
