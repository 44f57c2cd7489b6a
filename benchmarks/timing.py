"""Timing helpers shared by the benchmarks: medians of repeats, and the memory floor."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


#: no timed quantity rests on fewer calls than this: one hiccup (a compilation, another
#: process) must not decide a ratio
MIN_REPEATS = 5


def time_spread(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, float, float]:
    """(median, min, max) wall time of `fn()` over max(repeats, MIN_REPEATS) calls, after
    `warmup` untimed calls (which also compile)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, MIN_REPEATS)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times)), float(np.max(times))


def interleaved_medians(fns: list[Callable[[], object]], repeats: int, warmup: int = 1) -> list[float]:
    """Median wall time of each of `fns`, called in turn (f0, f1, ..., f0, f1, ...) for
    max(repeats, MIN_REPEATS) rounds after `warmup` untimed rounds: a ratio of two of them then
    sees the same machine, since a slow spell (another process, a frequency change) falls on
    both instead of on whichever happened to run during it."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(repeats, MIN_REPEATS)):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def block_rounds(fns: list[Callable[[], object]], repeats, rounds: int = 3, pause: float = 0.25,
                 warmup: int = 1) -> list[np.ndarray]:
    """Wall seconds of each of `fns`, each timed in its own block (after a `pause` and
    `warmup` untimed calls), the blocks taken in turn for `rounds` rounds: one array of shape
    (rounds, repeats) per function, `repeats` one count for all or one per function (each at
    least MIN_REPEATS).

    Blocks, not call-by-call interleaving, where the functions run on different thread pools:
    numpy's OpenBLAS, numba's and torch's OpenMP threads each spin for a while after a call,
    so interleaving them puts two pools on the same cores (measured: torch's ResNet step at
    M = 1e3 went from 14 to 820 ms, gflow's at 1e4 from 0.8 to 1.7 s). Rounds, because one
    block per function leaves a ratio at the mercy of a slow spell that falls on one block
    (torch's step at m = 1e5 took 61, 182 and 48 ms in three runs): `round_ratio` takes the
    median over rounds of each round's ratio of medians."""
    counts = list(repeats) if isinstance(repeats, (list, tuple)) else [repeats] * len(fns)
    out = [np.empty((rounds, max(n, MIN_REPEATS))) for n in counts]
    for k in range(rounds):
        for fn, times in zip(fns, out):
            time.sleep(pause)
            for _ in range(warmup):
                fn()
            for r in range(times.shape[1]):
                start = time.perf_counter()
                fn()
                times[k, r] = time.perf_counter() - start
    return out


def round_medians(times: np.ndarray) -> tuple[float, float, float]:
    """(median, min, max) over rounds of each round's median, for one of `block_rounds`' arrays."""
    rounds = np.median(times, axis=1)
    return float(np.median(rounds)), float(rounds.min()), float(rounds.max())


def round_ratio(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float, float]:
    """(median, min, max) over rounds of median(numerator) / median(denominator) per round,
    for two of `block_rounds`' arrays."""
    ratios = np.median(numerator, axis=1) / np.median(denominator, axis=1)
    return float(np.median(ratios)), float(ratios.min()), float(ratios.max())


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()`: `time_spread`'s first entry."""
    return time_spread(fn, repeats, warmup)[0]


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB: VmHWM of /proc/self/status, which a
    new program image starts afresh (ru_maxrss keeps the forking parent's peak across exec, so
    a child of a 400 MB process would report 400 MB), else ru_maxrss (KiB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def copier(megabytes: int = 200) -> tuple[Callable[[], None], int]:
    """(copy, bytes moved): a one-thread numpy copy of `megabytes`, its pages already touched,
    and the bytes it reads and writes."""
    a = np.ones(megabytes * 1_000_000 // 8)
    b = np.empty_like(a)
    np.copyto(b, a)
    return (lambda: np.copyto(b, a)), 2 * a.nbytes


def stream_gbps(megabytes: int = 200, repeats: int = 7) -> float:
    """Copy bandwidth: bytes read + written per second by a `megabytes` numpy copy (one thread)."""
    copy, moved = copier(megabytes)
    return moved / median_time(copy, repeats) / 1e9


def floor_seconds(nbytes: int, stages: int, gbps: float) -> float:
    """One read and one write of rho per stage at the measured bandwidth."""
    return stages * 2 * nbytes / (gbps * 1e9)


def in_fresh_process(root, module: str, function: str, *args) -> dict:
    """`module.function(*args)` in a fresh interpreter started in `root`, its result a dict sent
    back as JSON (the last line of its output; `args` must be Python literals).

    For the measures whose figure depends on the state a long run leaves in its process: the
    peak memory of one fv step, and thread-pool races such as PyTorch's ResNet step at M = 1e3,
    which took 11-13 ms in two full runs and 22 ms in two others while it took 10.3-12.2 ms in
    thirteen fresh processes (also after numba, pyFFTW and FiPy had run in them)."""
    code = (f"import json; from {module} import {function} as f; "
            f"print(json.dumps(f(*{args!r}), default=float))")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{module}.{function} in a fresh process failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])
