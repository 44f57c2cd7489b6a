"""The symmetry-reduced model's costs (issue 20): its fv step, and its cost to an accuracy.

    python -m benchmarks --only symmetry [--quick]

- `symmetry_fv_step_over_input_dim_2`: the median of paired ratios of one fv step (fixed dt)
  of the reduced model (cases/single_index_d40.toml: d = 40, axes a, w_par, w_perp, 48^3
  cells, a [24, 8, 8] rule of 1536 data nodes) over one fv step of the plain two-layer model
  with input_dim = 2 on the same grid (axes a, w1, w2; a 39 x 39 Gauss-Hermite rule of 1521
  nodes, the same target). The reduced step does the same separable work plus the average
  over the cosine nodes (goal <= 2).
- `symmetry_cost_advantage_vs_full_gd`: on single_index_d40 to t = 2 (t = 1 with --quick), the wall time of
  gradient descent in R^41 (online SGD, batch 8192, lr 0.05) to reach fv's risk error, over
  fv's wall time (above 1: the reduced PDE is cheaper). The reference risk curve is fv on a
  finer grid with a finer rule. fv's error is the largest |R - R_ref| over 5 snapshots. GD's
  error at m neurons is the root mean square over seeds of the same quantity; it falls as
  m^(-1/2) (measured at two m, `symmetry_gd_error_exponent`), which gives the m, and so the
  cost (linear in m), at which GD reaches fv's error.

Timings are medians over repeats after a warm-up, with the quartiles as spread.
"""
from __future__ import annotations

import time

import numpy as np

from gflow.case import case_from_text, load_case
from gflow.problem import build_problem
from gflow.solver_options import defaults
from gflow.solvers import make_stepper

STEP_DT = 1e-5
STEP_CELLS = [48, 48, 48]
END = 2.0
TIMES = np.linspace(0.0, END, 5)

PLAIN_2D = """
[model]
kind = "two_layer"
activation = "tanh"
input_dim = 2
[data]
distribution = "gaussian"
nodes = 39
[target]
expression = "tanh(2*x1)"
[initial]
distribution = "gaussian"
mean = [0.0, 0.0, 0.0]
std = [0.5, 0.16, 0.16]
[grid]
bounds = [[-4.0, 4.0], [-2.5, 2.5], [-1.8, 1.8]]
cells = [48, 48, 48]
[time]
end = 1.0
[solver]
kind = "fv"
"""


def _quartiles(values) -> list[float]:
    return [float(v) for v in np.percentile(values, [25, 75])]


def fv_step_ratio(quick: bool) -> dict:
    reduced_case = load_case(_case_path(), [f"grid.cells={STEP_CELLS}", "data.nodes=[24, 8, 8]"], ["fv"])
    reduced = make_stepper("fv", build_problem(reduced_case), defaults("fv"))
    plain = make_stepper("fv", build_problem(case_from_text(PLAIN_2D, "<plain 2-D>")), defaults("fv"))
    repeats = 7 if quick else 21
    for s in (reduced, plain):
        s.step(STEP_DT, fixed=True)
    times = np.empty((repeats, 2))
    for r in range(repeats):
        for i, s in enumerate((reduced, plain)):
            start = time.perf_counter()
            s.step(STEP_DT, fixed=True)
            times[r, i] = time.perf_counter() - start
    ratios = times[:, 0] / times[:, 1]
    return {"symmetry_fv_step_over_input_dim_2": float(np.median(ratios)),
            "symmetry_fv_step_over_input_dim_2_quartiles": _quartiles(ratios),
            "symmetry_fv_step_ms": [1e3 * float(np.median(times[:, 0])), 1e3 * float(np.median(times[:, 1]))]}


def _case_path():
    from benchmarks.__main__ import ROOT
    return ROOT / "cases" / "single_index_d40.toml"


def _curve(stepper, times=TIMES) -> np.ndarray:
    t, risks = 0.0, [stepper.observe().risk]
    for target in times[1:]:
        while t < target * (1 - 1e-14):
            t += stepper.step(target - t)
        risks.append(stepper.observe().risk)
    return np.array(risks)


def _timed_curve(overrides: list[str], kind: str, options: dict, end: float = END) -> tuple[np.ndarray, float]:
    case = load_case(_case_path(), [f"time.end={end}", *overrides], [kind])
    stepper = make_stepper(kind, build_problem(case), {**case.solvers[0].options, **options})
    start = time.perf_counter()
    curve = _curve(stepper, np.linspace(0.0, end, len(TIMES)))
    return curve, time.perf_counter() - start


def cost_to_accuracy(quick: bool) -> dict:
    # --quick: a coarser reference (still ~1.5x finer than the measured grid per axis), since
    # the full one alone takes about a minute, and t = 1 instead of 2 (each fv curve to t = 2
    # takes 20 s)
    fine = ["grid.cells=[64, 64, 48]", "data.nodes=[36, 10, 10]"] if quick else ["grid.cells=[80, 80, 60]", "data.nodes=[48, 12, 12]"]
    end = END / 2 if quick else END
    reference, _ = _timed_curve(fine, "fv", {}, end)
    fv_curves = [_timed_curve([], "fv", {}, end) for _ in range(1 if quick else 3)]
    fv_error = float(np.abs(fv_curves[0][0] - reference).max())
    fv_wall = float(np.median([w for _, w in fv_curves]))
    seeds = 3 if quick else 6
    widths = (250, 1000) if quick else (500, 2000)
    errors, walls = {}, {}
    for m in widths:
        runs = [_timed_curve(['model.symmetry="none"', f"data.seed={s}"], "particle",
                             {"particles": m, "batch": 8192, "seed": s}, end) for s in range(seeds)]
        errors[m] = float(np.sqrt(np.mean([np.abs(c - reference).max() ** 2 for c, _ in runs])))
        walls[m] = float(np.median([w for _, w in runs]))
    small, large = widths
    exponent = float(np.log(errors[small] / errors[large]) / np.log(large / small))
    # m at which GD's error reaches fv's, by the m^(-1/2) law from the larger width
    m_needed = large * (errors[large] / fv_error) ** 2
    gd_wall = walls[large] * m_needed / large
    return {"symmetry_cost_advantage_vs_full_gd": gd_wall / fv_wall,
            "symmetry_fv_risk_error": fv_error, "symmetry_fv_wall_s": fv_wall,
            "symmetry_gd_risk_error": [errors[m] for m in widths], "symmetry_gd_widths": list(widths),
            "symmetry_gd_wall_s": [walls[m] for m in widths], "symmetry_gd_error_exponent": exponent,
            "symmetry_gd_neurons_for_fv_error": m_needed}


def measure(root, quick: bool) -> dict:
    """`python -m benchmarks --only symmetry`: both studies."""
    return {**fv_step_ratio(quick), **cost_to_accuracy(quick)}
