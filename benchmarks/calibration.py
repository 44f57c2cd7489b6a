"""How fast the machine is right now: a fixed workload timed before and after each measure.

A ratio to a baseline of the same run cancels a machine that is uniformly slower, but not a
slow spell that hits one side of the ratio harder than the other: on this shared 2-core VM a
whole section once ran 1.5-3x slower than ten minutes earlier (the 64 x 64 ResNet step 5.3 ->
15.6 ms), and the memory-bound numba kernels and the BLAS-bound numpy paths slowed by
different factors, so paired, interleaved ratios still moved by 30-40%. The calibration sees
such spells: a one-thread vectorised exp over 1 MiB of doubles, ten times (the core) and a
one-thread 64 MB copy (memory), each the median of `REPEATS` calls. One thread, not numpy's
BLAS on both cores: a two-thread 384^2 matrix product read 1.1 or 1.5 ms by the state of the
other thread pools in the process (numba's and torch's spin after a call), and 16 ms with
torch's OpenMP runtime loaded and idle, so it flagged sections whose machine was fine.
`python -m benchmarks` calibrates around every measure, and when either figure is more than
`TOLERANCE` slower than the run's typical figure (the median of every calibration so far) it
waits and measures that section again
(`run_calibrated`), keeping the attempt whose machine was closest to typical; every attempt's
calibration goes into the results. Typical, not fastest: on a quiet machine the copy's figure
alone moves between 4.9 and 6.8 ms from one calibration to the next (twelve in a row), so
against the fastest ever seen nearly every section would run twice and gain nothing.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

#: relative slowdown of either calibration figure against typical that makes a measure run again
#: (above the quiet machine's own scatter, well below the 1.5-3x of a slow spell)
TOLERANCE = 0.25
#: calls per calibration figure (their median is the figure)
REPEATS = 7
#: seconds to wait before a measure is taken again (a slow spell lasts tens of seconds)
PAUSE = 10.0

_EXP_DOUBLES = 1 << 17
_EXP_CALLS = 10
_COPY_BYTES = 64_000_000


def calibrate(repeats: int = REPEATS) -> dict[str, float]:
    """{"exp_ms", "copy_ms"}: medians of ten one-thread exp passes over 2^17 doubles (1 MiB,
    in the core's L2) and of a 64 MB copy (one thread), after one untimed call of each."""
    a = np.random.default_rng(0).random(_EXP_DOUBLES)
    b = np.empty_like(a)
    src = np.ones(_COPY_BYTES // 8)
    dst = np.empty_like(src)

    def exp_passes():
        for _ in range(_EXP_CALLS):
            np.exp(a, out=b)

    out = {}
    for name, fn in (("exp_ms", exp_passes), ("copy_ms", lambda: np.copyto(dst, src))):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[name] = 1e3 * float(np.median(times))
    return out


def slowdown(figures: dict[str, float], reference: dict[str, float]) -> float:
    """The largest relative slowdown of `figures` against `reference` (0 when as fast or faster)."""
    return max(0.0, *(figures[k] / reference[k] - 1.0 for k in reference))


def typical(seen: dict[str, list[float]]) -> dict[str, float]:
    """The median of each figure's calibrations so far."""
    return {k: float(np.median(v)) for k, v in seen.items()}


def run_calibrated(measure: Callable[[], dict], seen: dict[str, list[float]], retries: int,
                   tolerance: float = TOLERANCE, pause: float = PAUSE,
                   clock: Callable[[], dict[str, float]] = calibrate,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[dict, list[dict]]:
    """Run `measure` between two calibrations, again (after `pause` s, at most `retries` more
    times) while either calibration is more than `tolerance` slower than `typical(seen)`;
    every calibration's figures are appended to `seen`.

    Returns the results of the attempt with the smallest slowdown and one record per attempt
    ({"before", "after", "slowdown", "kept"}).
    """
    attempts: list[tuple[float, dict, dict]] = []
    for attempt in range(retries + 1):
        if attempt:
            sleep(pause)
        before = clock()
        _append(seen, before)
        result = measure()
        after = clock()
        _append(seen, after)
        attempts.append((0.0, result, {"before": before, "after": after}))
        # every attempt judged again against typical, this attempt's own figures included
        ref = typical(seen)
        worst = [max(slowdown(r["before"], ref), slowdown(r["after"], ref)) for _, _, r in attempts]
        attempts = [(w, res, {**r, "slowdown": w}) for w, (_, res, r) in zip(worst, attempts)]
        if worst[-1] <= tolerance:
            break
    best = min(range(len(attempts)), key=lambda i: attempts[i][0])
    records = [{**r, "kept": i == best} for i, (_, _, r) in enumerate(attempts)]
    return attempts[best][1], records


def _append(seen: dict[str, list[float]], figures: dict[str, float]) -> None:
    for key, value in figures.items():
        seen.setdefault(key, []).append(value)
