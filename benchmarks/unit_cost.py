"""The cost of a general unit (`[model] unit`, docs/units.md) against the separable and sigma paths.

    python -m benchmarks.unit_cost [--quick]

(not part of `python -m benchmarks`; docs/units.md quotes its table). On the Gaussian-RBF case
(unit = "gaussian", s2 = 0.5, Gauss-Legendre data on [-12, 12]):

- `unit_fv_step_general_over_separable`: one fv step (a fixed dt) on the same (a, y) grid and
  data through the general O(N M) operator (`UnitGridOperator`, numpy fluxes) over the separable
  one (`TwoLayerGridOperator` through the fused kernel where numba is installed), and
  `unit_fv_step_general_over_separable_numpy` against the separable operator on the numpy fluxes
  (the operator's cost alone);
- `unit_particle_velocity_general_over_sigma_numpy`: one particle velocity of m neurons through
  the general unit path (`UnitNetworkModel`, unit = "a*tanh(w*x)") over the sigma-unit numpy path
  of the same network (`TwoLayerModel`, activation = "tanh", kernel = "numpy"), and
  `..._over_sigma_fused` over its fused numba kernel.

Timings are medians (`benchmarks.timing.median_time`, at least MIN_REPEATS calls) after a warm-up.
"""
from __future__ import annotations

import argparse
import copy
import json

import numpy as np
from gflow.solvers import make_stepper

from benchmarks.timing import median_time
from gflow.case import case_from_text
from gflow.problem import Problem, build_problem
from gflow.solver_options import defaults

RBF = """
[model]
kind = "two_layer"
unit = "gaussian"
variance = 0.5
[target]
expression = "(exp(-(x + 2)**2)/sqrt(pi) - 2*exp(-x**2/2)/sqrt(2*pi) + exp(-(x - 2)**2)/sqrt(pi))/3"
[data]
distribution = "uniform"
low = -12.0
high = 12.0
nodes = {nodes}
[initial]
mean = [0.0, 0.0]
std = [1.0, 1.5]
[grid]
bounds = [[-4.0, 4.0], [-5.0, 5.0]]
cells = {cells}
[time]
end = 1.0
"""

NETWORK = """
[model]
kind = "two_layer"
{unit}
[target]
expression = "sin(pi*x)"
[data]
distribution = "uniform"
nodes = {nodes}
[initial]
mean = [0.0, 0.0]
std = [1.0, 1.0]
[grid]
bounds = [[-4.0, 4.0], [-4.0, 4.0]]
cells = [8, 8]
[time]
end = 1.0
"""

STEP_DT = 1e-4


def _fv_step(problem: Problem, kernel: str, repeats: int) -> float:
    options = dict(defaults("fv"), kernel=kernel)
    stepper = make_stepper("fv", problem, options)
    return median_time(lambda: stepper.step(STEP_DT, fixed=True), repeats)


def fv_steps(quick: bool) -> dict:
    cells, nodes = ([64, 80] if quick else [128, 160]), 200
    problem = build_problem(case_from_text(RBF.format(cells=cells, nodes=nodes), "<rbf>"))
    general_model = copy.copy(problem.model)
    general_model.separable = False           # the same unit through the general O(N M) operator
    general = Problem(problem.case, general_model)
    repeats = 5 if quick else 11
    separable_fused = _fv_step(problem, "numba", repeats)
    separable_numpy = _fv_step(problem, "numpy", repeats)
    general_step = _fv_step(general, "numpy", repeats)
    return {"unit_fv_cells": cells, "unit_fv_data_nodes": nodes,
            "unit_fv_step_separable_s": separable_fused, "unit_fv_step_separable_numpy_s": separable_numpy,
            "unit_fv_step_general_s": general_step,
            "unit_fv_step_general_over_separable": general_step / separable_fused,
            "unit_fv_step_general_over_separable_numpy": general_step / separable_numpy}


def particle_velocities(quick: bool) -> dict:
    m, nodes = (10_000, 200) if quick else (100_000, 200)
    general = build_problem(case_from_text(NETWORK.format(unit='unit = "a*tanh(w*x)"\naxes = ["a", "w"]',
                                                          nodes=nodes), "<unit>")).model
    sigma = build_problem(case_from_text(NETWORK.format(unit='activation = "tanh"', nodes=nodes), "<tanh>")).model
    rng = np.random.default_rng(0)
    u, q = rng.normal(size=(m, 2)), np.full(m, 1.0 / m)
    repeats = 5 if quick else 11
    out = {"unit_particles": m, "unit_particle_data_nodes": nodes,
           "unit_particle_velocity_general_s": median_time(lambda: general.velocity(u, q), repeats),
           "unit_particle_velocity_sigma_numpy_s": median_time(lambda: sigma.velocity(u, q, kernel="numpy"), repeats)}
    out["unit_particle_velocity_general_over_sigma_numpy"] = (out["unit_particle_velocity_general_s"]
                                                              / out["unit_particle_velocity_sigma_numpy_s"])
    if sigma.fused():
        out["unit_particle_velocity_sigma_fused_s"] = median_time(lambda: sigma.velocity(u, q, kernel="numba"),
                                                                  repeats)
        out["unit_particle_velocity_general_over_sigma_fused"] = (out["unit_particle_velocity_general_s"]
                                                                  / out["unit_particle_velocity_sigma_fused_s"])
    return out


def measure(quick: bool = False) -> dict:
    return {**fv_steps(quick), **particle_velocities(quick)}


def table(results: dict) -> str:
    """The rows docs/units.md quotes."""
    r = results
    cells = "x".join(map(str, r["unit_fv_cells"]))
    rows = ["| what | time | ratio |", "|---|---|---|",
            (f"| fv step, separable path, fused kernel ({cells} cells, {r['unit_fv_data_nodes']} data nodes) | "
             f"{r['unit_fv_step_separable_s'] * 1e3:.3g} ms | 1 |"),
            (f"| fv step, separable path, numpy fluxes | {r['unit_fv_step_separable_numpy_s'] * 1e3:.3g} ms | "
             f"{r['unit_fv_step_separable_numpy_s'] / r['unit_fv_step_separable_s']:.3g} |"),
            (f"| fv step, general O(N M) path | {r['unit_fv_step_general_s'] * 1e3:.3g} ms | "
             f"{r['unit_fv_step_general_over_separable']:.3g} |"),
            (f"| particle velocity, sigma unit, numpy ({r['unit_particles']} particles, "
             f"{r['unit_particle_data_nodes']} data nodes) | "
             f"{r['unit_particle_velocity_sigma_numpy_s'] * 1e3:.3g} ms | 1 |"),
            (f"| particle velocity, general unit path | {r['unit_particle_velocity_general_s'] * 1e3:.3g} ms | "
             f"{r['unit_particle_velocity_general_over_sigma_numpy']:.3g} |")]
    if "unit_particle_velocity_sigma_fused_s" in r:
        rows.append(f"| particle velocity, sigma unit, fused numba kernel | "
                    f"{r['unit_particle_velocity_sigma_fused_s'] * 1e3:.3g} ms | "
                    f"{r['unit_particle_velocity_sigma_fused_s'] / r['unit_particle_velocity_sigma_numpy_s']:.3g} |")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    results = measure(parser.parse_args().quick)
    print(json.dumps(results, indent=2))
    print(table(results))
