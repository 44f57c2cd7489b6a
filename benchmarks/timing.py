"""Timing helpers shared by the benchmarks: medians of repeats, and the memory floor."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def stream_gbps(megabytes: int = 200, repeats: int = 7) -> float:
    """Copy bandwidth: bytes read + written per second by a `megabytes` numpy copy."""
    a = np.ones(megabytes * 1_000_000 // 8)
    b = np.empty_like(a)
    seconds = median_time(lambda: np.copyto(b, a), repeats)
    return 2 * a.nbytes / seconds / 1e9


def floor_seconds(nbytes: int, stages: int, gbps: float) -> float:
    """One read and one write of rho per stage at the measured bandwidth."""
    return stages * 2 * nbytes / (gbps * 1e9)
