"""The spectral solver's cost to an accuracy against fv's, on a smooth case.

The case is `benchmarks.accuracy`'s: the quickstart (a tanh network, the density inside the box)
stopped at t = 2. The reference risk is the spectral solver's on 230 x 192 cells at half its
step (it agrees with 154 x 128 to 3e-13). A solver's cost at a tolerance is the median wall
time (of `repeats` runs, after a warm-up that compiles fv's kernel) of its cheapest grid from
which every finer grid tried also meets it (`accuracy.cost_at`). fv is second order, so 1e-6
lies beyond any grid a benchmark can afford: its cost there is extrapolated from the last
three grids, error ~ n^-p fitted in log-log and time ~ n^3 (n^2 cells times n steps under the
CFL limit; the fitted time exponent, recorded beside it, came out 4.5 from 256 to 512 as the
grid leaves the caches, so n^3 is the cautious choice), and flagged as such; at 1e-4 both
costs are measured.
"""
from __future__ import annotations

import numpy as np

from benchmarks.accuracy import cheapest_index, cost_at, grid, integrate, paired_ratio, short_for
from benchmarks.timing import median_time


def _timed(kind: str, root, n: int, repeats: int, extra=()) -> tuple[float, float]:
    """(risk, median wall seconds) of `repeats` runs of `kind` on grid(n)."""
    risk = integrate(kind, root, [*grid(n), *extra])[0]
    seconds = median_time(lambda: integrate(kind, root, [*grid(n), *extra]), repeats, warmup=0)
    return risk, seconds


#: time ~ n^TIME_EXPONENT for a 2-D explicit solver: n^2 cells, n steps
TIME_EXPONENT = 3.0


def extrapolated_cost(tolerance: float, levels, errors, times) -> tuple[float, float, float, float]:
    """(seconds, p, fitted q, n) at which the fitted error ~ n^-p reaches `tolerance`, the
    time growing as n^TIME_EXPONENT from the finest level."""
    n = np.log(np.asarray(levels[-3:], dtype=float))
    p = -np.polyfit(n, np.log(errors[-3:]), 1)[0]
    q = np.polyfit(n, np.log(times[-3:]), 1)[0]
    n_needed = levels[-1] * (errors[-1] / tolerance) ** (1.0 / p)
    return float(times[-1] * (n_needed / levels[-1]) ** TIME_EXPONENT), float(p), float(q), float(n_needed)


def measure(root, quick: bool) -> dict:
    repeats = 3 if quick else 5
    reference = integrate("spectral", root, [*grid(192), "solver.cfl=0.25"])[0]
    integrate("fv", root, grid(16))                    # compile fv's kernel outside the timings
    spectral_levels = [32, 40, 48, 64]
    fv_levels = [64, 128, 256] if quick else [64, 128, 256, 384, 512]
    spectral = cost_at(1e-6, spectral_levels, lambda n: _timed("spectral", root, n, repeats), reference)
    fv = cost_at(1e-4, fv_levels, lambda n: _timed("fv", root, n, repeats), reference)
    out = {"spectral_cost_detail": {"reference_risk": reference, "spectral": spectral, "fv": fv}}
    # an independent check of the reference: fv on its two finest grids, Richardson-extrapolated
    # (second order): it must agree with the spectral reference far below fv's own error there
    r_coarse, r_fine = fv["risks"][-2:]
    ratio = (fv_levels[-1] / fv_levels[-2]) ** 2
    richardson = r_fine + (r_fine - r_coarse) / (ratio - 1.0)
    out["spectral_cost_detail"]["reference_check_fv_richardson"] = {
        "risk": richardson, "relative_difference": abs(richardson - reference) / reference,
        "fv_finest_error": fv["errors"][-1]}
    fv_cost, p, q, n_needed = extrapolated_cost(1e-6, fv["levels"], fv["errors"], fv["times"])
    out["spectral_cost_detail"]["fv_extrapolation_to_1e-6"] = {"order": p, "fitted_time_exponent": q,
                                                              "cells_along_w": n_needed, "seconds": fv_cost}
    run = lambda kind, n: (lambda: integrate(kind, root, grid(n)))  # noqa: E731
    i_spectral = cheapest_index(1e-6, spectral["errors"])
    if i_spectral is not None:
        # fv's extrapolated cost is its finest run's times the growth to n_needed: the finest
        # run and the spectral one are timed again as back-to-back pairs (`paired_ratio`)
        growth = fv_cost / fv["times"][-1]
        ratio, spread = paired_ratio(run("fv", fv_levels[-1]), run("spectral", spectral_levels[i_spectral]),
                                     short=short_for(quick))
        out["spectral_cost_advantage_vs_fv_1e6"] = growth * ratio
        out["spectral_cost_advantage_vs_fv_1e6_range"] = [growth * r for r in spread]
        out["spectral_cost_advantage_vs_fv_1e6_is_extrapolated"] = True
    i_spectral, i_fv = cheapest_index(1e-4, spectral["errors"]), cheapest_index(1e-4, fv["errors"])
    if i_spectral is not None and i_fv is not None:
        out["spectral_cost_advantage_vs_fv_1e4"], out["spectral_cost_advantage_vs_fv_1e4_range"] = paired_ratio(
            run("fv", fv_levels[i_fv]), run("spectral", spectral_levels[i_spectral]), short=short_for(quick))
    return out
