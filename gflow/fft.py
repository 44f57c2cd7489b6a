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


def _plan(source: tuple, target: tuple, threads: int, direction) -> tuple:
    """An FFTW plan over all axes with its own aligned arrays, `source` and `target` each
    (shape, dtype); FFTW_MEASURE, with the wisdom cached. Returns (input array, plan)."""
    load_wisdom()
    src, dst = (pyfftw.empty_aligned(shape, dtype=dtype) for shape, dtype in (source, target))
    plan = pyfftw.FFTW(src, dst, axes=tuple(range(src.ndim)), direction=direction, threads=threads,
                       flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"))
    save_wisdom()
    return src, plan


def _fallback_warning(use_fftw: bool) -> bool:
    """Whether FFTW is used; warns once per transform where it was asked for and is missing."""
    if use_fftw and pyfftw is None:
        warnings.warn("pyFFTW is not installed: using scipy.fft (slower)", RuntimeWarning, stacklevel=3)
    return use_fftw and pyfftw is not None


class RealFFT:
    """rfftn / irfftn over all axes of real arrays of `shape`."""

    def __init__(self, shape: tuple[int, ...], threads: int = 1, use_fftw: bool = True):
        self.shape = tuple(shape)
        self.spectral_shape = (*self.shape[:-1], self.shape[-1] // 2 + 1)
        self.fftw = _fallback_warning(use_fftw)
        if self.fftw:
            real, spec = (self.shape, "float64"), (self.spectral_shape, "complex128")
            self._real, self._forward = _plan(real, spec, threads, "FFTW_FORWARD")
            self._spec, self._backward = _plan(spec, real, threads, "FFTW_BACKWARD")
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


#: the real-to-real kinds, FFTW's names (FFTW manual, "1d Real-even DFTs (DCTs)", "1d Real-odd
#: DFTs (DSTs)"): DCT-II / DST-II take values at the half-sample points j + 1/2, their inverses
#: (up to 2N) are DCT-III / DST-III. Unnormalised, as FFTW and scipy.fft (norm=None) define them:
#: dct2: Y_k = 2 sum_j X_j cos(pi k (j + 1/2) / N); dst2: Y_k = 2 sum_j X_j sin(pi (k + 1) (j + 1/2) / N)
R2R_KINDS = {"dct2": ("FFTW_REDFT10", "dct", 2), "dct3": ("FFTW_REDFT01", "dct", 3),
             "dst2": ("FFTW_RODFT10", "dst", 2), "dst3": ("FFTW_RODFT01", "dst", 3)}


class RealToReal:
    """A separable real-to-real transform of real arrays of `shape`, one kind per axis.

    `kinds[k]` is one of R2R_KINDS; FFTW plans the whole multi-dimensional transform at once
    (pyFFTW's real-to-real interface), scipy.fft applies it axis by axis where pyFFTW is missing.
    """

    def __init__(self, shape: tuple[int, ...], kinds, threads: int = 1, use_fftw: bool = True):
        self.shape = tuple(shape)
        self.kinds = tuple(kinds)
        if len(self.kinds) != len(self.shape) or not set(self.kinds) <= set(R2R_KINDS):
            raise ValueError(f"one of {sorted(R2R_KINDS)} per axis, got {self.kinds}")
        self.fftw = _fallback_warning(use_fftw)
        if self.fftw:
            real = (self.shape, "float64")
            self._in, self._plan = _plan(real, real, threads, [R2R_KINDS[k][0] for k in self.kinds])
        else:
            import scipy.fft
            self._sfft = scipy.fft

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The transform of x into an internal array: copy it if you keep it past the next call."""
        if not self.fftw:
            for axis, kind in enumerate(self.kinds):
                _, name, type_ = R2R_KINDS[kind]
                x = getattr(self._sfft, name)(x, type=type_, axis=axis)
            return x
        self._in[...] = x
        return self._plan()
