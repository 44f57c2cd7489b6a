"""The `[time]` table of a case: the snapshot times t_0 = 0 < t_1 < ... < t_K = end.

Three ways to give them, each giving the same tuple that the run loop hits exactly:

    end, snapshots                  t_k = k end / (snapshots - 1), evenly spaced (the default)
    end, snapshots, spacing = "log" t_0 = 0 and snapshots - 1 times geometric from `first`
                                    (default end / 1000) to end: t_k = first (end / first)^((k-1)/(K-1))
    times = [t_1, t_2, ...]         the list itself, strictly increasing, finite, >= 0; 0 is put
                                    first when it is absent; `end` and `snapshots` are then refused
                                    (they would repeat the list's last entry and its length)

Log spacing is what a convergence plot on a log time axis needs (Chizat 2022, "Sparse
optimization on measures with over-parameterized gradient descent", his trajectory figures).
`dt`, a fixed step, is read by the case reader beside these keys.
"""
from __future__ import annotations

import math

import numpy as np

from gflow.schema import Table

#: the most snapshots a run writes (the run-file reader bounds the time axis alike)
MAX_SNAPSHOTS = 100_000
#: the default first positive time of log spacing, as a fraction of `end`
LOG_FIRST_FRACTION = 1e-3


def snapshot_times(t: Table) -> tuple[float, ...]:
    """The snapshot times of the `[time]` table `t` (its `times`, `end`, `snapshots`, `spacing`
    and `first` keys), starting at 0, strictly increasing, at least two of them."""
    if t.has("times"):
        for other in ("end", "snapshots", "spacing", "first"):
            if t.has(other):
                raise t.error(other, "give either times (the list) or end and snapshots, not both: with times "
                                     "the last time is the end and the list's length the snapshots")
        return _listed(t)
    end = t.number("end", positive=True)
    snapshots = t.integer("snapshots", 11, minimum=2, maximum=MAX_SNAPSHOTS)
    spacing = t.string("spacing", "linear", choices=("linear", "log"))
    if spacing == "linear":
        if t.has("first"):
            raise t.error("first", "is the first positive time of spacing = \"log\"")
        # np.linspace exactly, as runs made before these keys existed were written
        return tuple(np.linspace(0.0, end, snapshots).tolist())
    first = t.number("first", end * LOG_FIRST_FRACTION, positive=True)
    if snapshots == 2:
        return 0.0, end                  # one positive time: the end itself
    if not first < end:
        raise t.error("first", f"must be below end ({end:g}), got {first:g}")
    logs = np.linspace(math.log(first), math.log(end), snapshots - 1)
    positive = np.exp(logs)
    positive[0], positive[-1] = first, end     # the ends as given, not through exp(log(.))
    if not np.all(np.diff(positive) > 0):
        raise t.error("first", f"{snapshots - 1} geometric times from {first:g} to {end:g} are not distinct "
                               "in floating point: fewer snapshots or a smaller first")
    return 0.0, *positive.tolist()


def _listed(t: Table) -> tuple[float, ...]:
    raw = t.raw("times")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_SNAPSHOTS:
        raise t.error("times", f"must be a non-empty list of at most {MAX_SNAPSHOTS} times, got {raw!r:.60}")
    bad = next((i for i, v in enumerate(raw) if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if bad is not None:
        raise t.error(f"times[{bad}]", f"must be a number, got {raw[bad]!r:.60}")
    try:
        times = np.array(raw, dtype=float)
    except OverflowError:
        raise t.error("times", "holds an integer too large for a float") from None
    problem = (~np.isfinite(times)) | (times < 0)
    if problem.any():
        i = int(np.flatnonzero(problem)[0])
        raise t.error(f"times[{i}]", f"must be finite and >= 0, got {times[i]:g}")
    steps = np.diff(times)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise t.error(f"times[{i}]", f"must exceed the time before it ({times[i - 1]:g}): the times must be "
                                     f"strictly increasing, got {times[i]:g}")
    if times[0] > 0:
        if len(times) == MAX_SNAPSHOTS:
            raise t.error("times", f"with t = 0 put first it holds more than the {MAX_SNAPSHOTS} snapshots allowed")
        times = np.concatenate([[0.0], times])
    if len(times) < 2:
        raise t.error("times", "must hold a positive time besides t = 0")
    return tuple(times.tolist())
