"""Time per step of the Eulerian solvers (fv, spectral, fipy) on the quickstart grid.

    python -m benchmarks.eulerian_steps                 # the quickstart grid
    python -m benchmarks.eulerian_steps --coarsen 2     # every axis' cells halved
    python -m benchmarks.eulerian_steps --agreement     # L1 / risk differences, grid / 4, / 2, / 1
    python -m benchmarks.eulerian_steps --fft-threads   # pyFFTW with 1 thread vs all cores

The solvers take different steps (fv: 0.8 x its positivity limit; spectral: 0.5 x RK4's
advective limit; fipy: 5 x the explicit limit), so each row also gives the mean step and the
wall time per unit of simulated time, which is what a run costs. The first steps (numba
compilation, FiPy's first matrix) are excluded by a warm-up; setup is the stepper's
construction (FFTW planning included, fast once its wisdom is cached).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from gflow.case import load_case
from gflow.problem import build_problem
from gflow.solvers import make_stepper

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "cases" / "quickstart.toml"
KINDS = ("fv", "spectral", "fipy")
#: (warm-up steps, timed steps) per kind: FiPy's steps cost ~100x the others'
STEPS = {"fv": (3, 60), "spectral": (3, 60), "fipy": (1, 6)}


def problem_at(coarsening: int, end: float | None = None, kind: str = "fv"):
    """The quickstart problem with every axis' cells divided by `coarsening`."""
    cells = [n // coarsening for n in load_case(QUICKSTART).cells]
    overrides = [f"grid.cells={cells}"] + ([f"time.end={end}"] if end is not None else [])
    case = load_case(QUICKSTART, overrides, [kind])
    return build_problem(case), case.solvers[0].options


def time_steps(kind: str, coarsening: int, repeats: int = 3) -> dict:
    """Best of `repeats` (the machine is shared), each from t = 0: the same stretch of the run."""
    problem, options = problem_at(coarsening, kind=kind)
    warm, timed = STEPS[kind]
    best, setup = np.inf, np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        stepper = make_stepper(kind, problem, options)
        setup = min(setup, time.perf_counter() - start)
        for _ in range(warm):
            stepper.step(1.0)
        start = time.perf_counter()
        dts = [stepper.step(1.0) for _ in range(timed)]
        best = min(best, (time.perf_counter() - start) / timed)
    dt = float(np.mean(dts))
    return {"kind": kind, "setup_s": setup, "ms_per_step": 1e3 * best, "dt": dt,
            "s_per_unit_time": best / dt, "summary": stepper.summary()}


def advance(stepper, end: float) -> None:
    t = 0.0
    while t < end * (1 - 1e-14):
        t += stepper.step(end - t)


def agreement(coarsenings=(4, 2, 1), end: float = 1.0) -> None:
    print(f"quickstart at t = {end}: distances between the final densities (L1) and risks")
    print(f"{'cells':>9} {'pair':>16} {'L1':>10} {'|d risk|':>10}")
    for coarsening in coarsenings:
        obs = {}
        for kind in KINDS:
            problem, options = problem_at(coarsening, end, kind)
            stepper = make_stepper(kind, problem, options)
            advance(stepper, end)
            obs[kind] = stepper.observe()
        vol = problem.grid.cell_volume
        for a, b in (("fv", "spectral"), ("fv", "fipy"), ("spectral", "fipy")):
            l1 = np.abs(obs[a].density - obs[b].density).sum() * vol
            cells = "x".join(map(str, problem.grid.cells))
            print(f"{cells:>9} {a + '-' + b:>16} {l1:10.3g} {abs(obs[a].risk - obs[b].risk):10.3g}")
        print(f"{'':>9} risks: " + ", ".join(f"{k} {obs[k].risk:.8f}" for k in KINDS))


def fft_threads() -> None:
    from gflow.fft import RealFFT, available_threads

    cores = available_threads()
    print(f"pyFFTW forward + backward real transform, ms (1 thread vs {cores})")
    for shape in ((128, 128), (256, 256), (512, 512), (64, 64, 64), (128, 128, 128)):
        x = np.random.default_rng(0).random(shape)
        row = []
        for threads in (1, cores):
            f = RealFFT(shape, threads=threads)
            n = max(5, int(2e7 / x.size))
            best = np.inf
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(n):
                    f.backward(f.forward(x))
                best = min(best, (time.perf_counter() - start) / n)
            row.append(1e3 * best)
        print(f"{'x'.join(map(str, shape)):>12}: {row[0]:8.3f} {row[1]:8.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eulerian_steps", description=__doc__.splitlines()[0])
    parser.add_argument("--coarsen", type=int, default=1, help="divide the quickstart grid's cells by this")
    parser.add_argument("--solvers", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--agreement", action="store_true", help="print the cross-solver agreement table")
    parser.add_argument("--fft-threads", action="store_true", help="time pyFFTW with 1 thread and all cores")
    args = parser.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    if args.agreement:
        agreement()
        return 0
    if args.fft_threads:
        fft_threads()
        return 0
    problem, _ = problem_at(args.coarsen)
    print(f"quickstart, {'x'.join(map(str, problem.grid.cells))} cells: time per step")
    print(f"{'solver':>9} {'ms/step':>9} {'mean dt':>9} {'s per unit t':>13} {'setup s':>8}  notes")
    for kind in args.solvers.split(","):
        r = time_steps(kind.strip(), args.coarsen)
        print(f"{r['kind']:>9} {r['ms_per_step']:9.2f} {r['dt']:9.4f} {r['s_per_unit_time']:13.3f} "
              f"{r['setup_s']:8.2f}  {r['summary']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
