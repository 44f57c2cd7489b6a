"""Real FFTs of one fixed shape with plans built once (pyFFTW), or scipy.fft as the fallback.

pyFFTW's builders hand back their internal output array, so a second call would overwrite
the first result (BACKGROUND.md, pitfalls): this class owns its FFTW objects and arrays and
returns copies only where the caller keeps the result.

FFTW wisdom (the measured plans) is cached in the user's cache directory
(`$XDG_CACHE_HOME/gflow/fftw_wisdom.json`, else `~/.cache/gflow/...`), so FFTW_MEASURE
planning is paid once per shape and machine; a missing or unreadable cache is ignored.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

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


def wisdom_path() -> Path:
    """Where FFTW wisdom is cached (JSON list of FFTW's text wisdom strings)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gflow" / "fftw_wisdom.json"


#: the wisdom last read from or written to the cache (None: cache not read yet)
_cached_wisdom: tuple[bytes, ...] | None = None


def load_wisdom() -> None:
    """Import cached FFTW wisdom once per process; a missing or bad cache changes nothing."""
    global _cached_wisdom
    if pyfftw is None or _cached_wisdom is not None:
        return
    _cached_wisdom = ()
    try:
        wisdom = tuple(w.encode("ascii") for w in json.loads(wisdom_path().read_text(encoding="ascii")))
        pyfftw.import_wisdom(wisdom)
        _cached_wisdom = wisdom
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def save_wisdom() -> None:
    """Write FFTW's wisdom to the cache if it grew; failure (read-only home, ...) is ignored."""
    global _cached_wisdom
    if pyfftw is None:
        return
    wisdom = pyfftw.export_wisdom()
    if wisdom == _cached_wisdom:
        return
    path = wisdom_path()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps([w.decode("ascii") for w in wisdom]), encoding="ascii")
        os.replace(tmp, path)   # atomic: concurrent runs never read a half-written file
        _cached_wisdom = wisdom
    except (OSError, ValueError):
        pass


class RealFFT:
    """rfftn / irfftn over all axes of real arrays of `shape`."""

    def __init__(self, shape: tuple[int, ...], threads: int = 1, use_fftw: bool = True):
        self.shape = tuple(shape)
        self.spectral_shape = (*self.shape[:-1], self.shape[-1] // 2 + 1)
        self.fftw = use_fftw and pyfftw is not None
        if use_fftw and pyfftw is None:
            warnings.warn("pyFFTW is not installed: using scipy.fft (slower)", RuntimeWarning, stacklevel=2)
        if self.fftw:
            load_wisdom()
            self._real = pyfftw.empty_aligned(self.shape, dtype="float64")
            self._spec = pyfftw.empty_aligned(self.spectral_shape, dtype="complex128")
            axes = tuple(range(len(self.shape)))
            flags = ("FFTW_MEASURE", "FFTW_DESTROY_INPUT")
            self._forward = pyfftw.FFTW(self._real, self._spec, axes=axes, threads=threads, flags=flags)
            self._backward = pyfftw.FFTW(self._spec, self._real, axes=axes, direction="FFTW_BACKWARD",
                                         threads=threads, flags=flags)
            save_wisdom()
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
