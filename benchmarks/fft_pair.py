"""The spectral solver's FFT pair (forward + backward real transform) at 256^2: pyFFTW vs numpy."""
from __future__ import annotations

import numpy as np

from benchmarks.timing import interleaved_medians
from gflow.fft import RealFFT


def measure(repeats: int) -> dict:
    shape = (256, 256)
    x = np.random.default_rng(0).random(shape)
    fftw = RealFFT(shape, threads=1)   # the solver's default below 2^18 cells
    # interleaved: both see the same spells of load, so their ratio does not move with it
    t_fftw, t_numpy = interleaved_medians([lambda: fftw.backward(fftw.forward(x)),
                                           lambda: np.fft.irfft2(np.fft.rfft2(x), s=shape)], repeats, warmup=3)
    np.testing.assert_allclose(fftw.backward(fftw.forward(x)), x, atol=1e-12)
    return {"fftw_speedup_vs_numpy": t_numpy / t_fftw, "fft_pair_ms_fftw": t_fftw * 1e3,
            "fft_pair_ms_numpy": t_numpy * 1e3}
