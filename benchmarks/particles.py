"""Particle benchmarks: the step's speed (issue 7), random particles against fv (issue 7) and
quadrature particles against fv (issue 10).

- `particles`: the Euler (GD) step of the quickstart with 64 data nodes at m = 10^3, 10^5,
  10^6: `particle_ns_per_particle_datum` = step time / (m x data nodes) at 10^6 (and
  `..._f32` with precision = "float32"), and `particle_speedup_vs_torch` = PyTorch CPU time
  of the same step (`benchmarks.torch_step`, checked to give the same particles) over
  gflow's, per m. Medians of repeated steps. `particle_flops_per_particle_datum` is the
  fused kernel's count (`two_layer_kernels.FLOPS_PER_PAIR`, FMA = 2), `particle_gflops` the
  rate it reaches, `machine_peak_gflops` the theoretical float64 peak (`peak_gflops`).
- `particles_vs_fv`: `fv_cost_advantage_vs_particles` = the wall time random particles
  need to reach relative risk error 1e-3 on the accuracy study's 2D case (quickstart to
  t = 2, `benchmarks.accuracy`) over the time fv needs; `..._1e4` the same at 1e-4, and
  `..._t10` both at t = 10 (not in --quick). The reference is the spectral solver (checked
  against fv's finest grids, Richardson-extrapolated). The particles' error at each m is the
  mean over seeds; they step with RK4 at the largest step whose time error stays below 1/20
  of 1e-4 (`particle_step`), their cheapest accurate setting: Euler's O(dt) error would keep
  them from 1e-3 at any affordable step. Where no affordable m reaches a tolerance (1e-4
  needs ~100x the m of 1e-3), the cost is the fitted error law's (err = C m^-1/2, wall linear
  in m) and the ratio is flagged `_is_extrapolated`. Runs shorter than 0.5 s are timed as the
  median of five.
- `quadrature`: `quadrature_cost_advantage_vs_fv_tanh` and `..._relu` = fv's wall time over
  quadrature particles' (init = "quadrature", rk4) at relative risk error 1e-4 on the same
  tanh case and 1e-3 on its ReLU version (activation and teacher ReLU). Below 1: fv wins.
  References: tanh, 64^2 Gauss-Hermite nodes (spectrally converged: 48^2 and 64^2 agree to
  1e-9), cross-checked against the fv Richardson reference; ReLU, whose kink limits
  quadrature to first order in the nodes per axis, Richardson at order 1 from 512^2 and
  1024^2 nodes, cross-checked against fv (also first order there) on 256 and 512 cells.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

from benchmarks.accuracy import (cheapest, cheapest_index, cost_at, grid, integrate, paired_ratio,
                                 reference_risk, short_for, timed)
from benchmarks.timing import MIN_REPEATS, block_rounds, median_time, round_medians, round_ratio

#: particle counts of the step timings
STEP_PARTICLES = (1_000, 100_000, 1_000_000)
DATA_NODES = 64
RELU = ['model.activation="relu"']


def _particle_stepper(root, m: int, **options):
    from gflow.case import load_case
    from gflow.problem import build_problem
    from gflow.solver_options import defaults
    from gflow.solvers.particle import ParticleStepper

    case = load_case(root / "cases" / "quickstart.toml", [f"data.nodes={DATA_NODES}"], ["particle"])
    problem = build_problem(case)
    opts = defaults("particle")
    return ParticleStepper(problem, {**opts, "particles": m, "integrator": "euler", **options})


def peak_gflops() -> dict:
    """The machine's theoretical float64 peak: cores x GHz x float64 lanes x 2 FMA units x 2
    flops per FMA, from what the OS says (os.sched_getaffinity, lscpu's max MHz or else
    /proc/cpuinfo's cpu MHz, avx512f / avx2 + fma flags). Assumed, not detected: 2 FMA units
    per core (every x86 core with AVX2 since Haswell and Zen 2, Zen 3 included). A VM's
    cpu MHz is the nominal clock: cores boosting above it beat this 'peak'; vCPUs sharing
    one physical core (SMT siblings on the host) reach half of it."""
    import os
    import platform
    import re
    import subprocess
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    mhz, source, flags = None, "assumed 2.0 GHz", ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"CPU max MHz:\s+([\d.]+)", lscpu)
        if found:
            mhz, source = float(found.group(1)), "lscpu CPU max MHz"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as file:
            cpuinfo = file.read()
        flags = (re.search(r"^flags\s*:(.*)$", cpuinfo, re.M) or [None, ""])[1]
        found = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)
        if mhz is None and found:
            mhz, source = float(found.group(1)), "/proc/cpuinfo cpu MHz (nominal)"
    except OSError:
        pass
    flags = set(flags.split())
    lanes = 8 if "avx512f" in flags else 4 if {"avx2", "fma"} <= flags else 2
    ghz = (mhz or 2000.0) / 1000
    peak = cores * ghz * lanes * 2 * 2
    return {"machine_peak_gflops": peak,
            "machine_peak_detail": f"{cores} cores x {ghz:.3f} GHz ({source}) x {lanes} float64 lanes "
                                   f"({'avx512f' if lanes == 8 else 'avx2+fma' if lanes == 4 else 'sse2'}) x 2 FMA units "
                                   f"(assumed) x 2 flops; float32: twice that; {platform.processor() or platform.machine()}"}


def step_speed(root, quick: bool) -> dict:
    """gflow's Euler step against PyTorch's, per m; the float32 kernel's step at 10^6."""
    from gflow.models.two_layer_kernels import FLOPS_PER_PAIR
    try:
        from benchmarks import torch_step
    except ImportError:
        torch_step = None
    dt = 0.01
    ours, theirs, speedup, detail = [], [], [], {}
    for m in STEP_PARTICLES:
        repeats = {1_000: 201, 100_000: 21, 1_000_000: 7}[m] // (3 if quick else 1)
        stepper = _particle_stepper(root, m)
        u0 = stepper.u.copy()
        stepper.step(dt)                                   # compile / warm outside the timing
        if m == STEP_PARTICLES[-1]:
            single = _particle_stepper(root, m, precision="float32")
            single.step(dt)
            f64, f32 = block_rounds([lambda: stepper.step(dt), lambda: single.step(dt)], repeats,
                                    rounds=2 if quick else 3)
            # each the median over rounds of a round's median: one slow block does not decide it
            per_datum = 1e9 / (m * DATA_NODES)
            f64_ns, *f64_range = (t * per_datum for t in round_medians(f64))
            detail["particle_ns_per_particle_datum"] = f64_ns
            detail["particle_ns_per_particle_datum_f32"] = round_medians(f32)[0] * per_datum
            detail["particle_ns_per_particle_datum_range"] = f64_range
            del single
            tracemalloc.start()
            stepper.step(dt)
            detail["particle_step_temp_mb_1e6"] = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            detail["particle_state_mb_1e6"] = stepper.u.nbytes / 1e6
        if torch_step is None:
            ours.append(median_time(lambda: stepper.step(dt), repeats) if m != STEP_PARTICLES[-1]
                        else round_medians(f64)[0])
            theirs.append(None)
            continue
        model = stepper.model
        step = torch_step.TorchStep(u0, model.x, model.p, model.y, dt, model.spec.activation, model.bias)
        check = _particle_stepper(root, m)
        check.step(dt)
        step()
        detail.setdefault("particle_max_diff_vs_torch", 0.0)
        detail["particle_max_diff_vs_torch"] = max(detail["particle_max_diff_vs_torch"],
                                                   float(np.abs(step.positions() - check.u).max()))
        # numba's and torch's thread pools in separate blocks, in rounds (`timing.block_rounds`)
        mine, torch_times = block_rounds([lambda: stepper.step(dt), step], [repeats, max(3, repeats // 3)],
                                         rounds=2 if quick else 3)
        ours.append(round_medians(mine)[0])
        theirs.append(round_medians(torch_times)[0])
        speedup.append(round_ratio(torch_times, mine))
    ns = detail.pop("particle_ns_per_particle_datum")
    result = {
        "particle_ns_per_particle_datum": ns,
        # the fused kernel's flops per (particle, datum) pair and step, counted in its source
        "particle_flops_per_particle_datum": FLOPS_PER_PAIR["float64"],
        "particle_flops_per_particle_datum_f32": FLOPS_PER_PAIR["float32"],
        "particle_gflops": FLOPS_PER_PAIR["float64"] / ns,
        "particle_gflops_f32": FLOPS_PER_PAIR["float32"] / detail["particle_ns_per_particle_datum_f32"],
        **peak_gflops(),
        "particle_speedup_vs_torch": [r[0] for r in speedup] if speedup else [None] * len(ours),
        "particle_speedup_vs_torch_range": [list(r[1:]) for r in speedup],
        "particle_step_ms": [1e3 * t for t in ours],
        "particle_steps_per_s_1e5": 1.0 / ours[1],
        "particle_steps_per_s_1e6": 1.0 / ours[2],
        **detail,
    }
    if torch_step is not None:
        result["torch_step_ms"] = [1e3 * t for t in theirs]
        result["torch_threads_version"] = f"{torch_step.threads()} threads, torch {torch_step.version()}"
        # the same step: both start from the same particles, so they must end there too
        assert detail["particle_max_diff_vs_torch"] < 1e-10, detail
    import numba
    result["particle_numba_threads"] = numba.get_num_threads()
    return result


def _particle_table(**options) -> list[str]:
    items = ", ".join(f"{k}={v!r}".replace("'", '"') for k, v in options.items())
    return [f'solvers=[{{kind="particle", {items}}}]']


def particle_step(root, tolerance: float, end: float = 2.0) -> tuple[float, dict]:
    """The largest RK4 step (of 1, 1/2, 1/4) whose time error of the risk at t = end is below
    tolerance / 20, measured with 24^2 quadrature particles (no sampling noise) against
    lr = 0.05: the particles' cheapest step that costs them no accuracy."""
    extra = [f"time.end={end}"]
    reference = _quadrature(root, 24, extra)[0]
    errors = {}
    for lr in (1.0, 0.5, 0.25):
        risk = integrate("particle", root, [*extra, *_particle_table(init="quadrature", nodes=24, lr=lr)])[0]
        errors[lr] = abs(risk - reference) / reference
        if errors[lr] < tolerance / 20:
            return lr, errors
    return 0.1, errors


#: end time -> (particle counts, seeds) of the random-particle comparison (--quick: t = 2 only,
#: its first 6 counts and 4 seeds); each count's cost grows with the steps to the end
PARTICLE_LEVELS = {2.0: ([10_000, 30_000, 100_000, 200_000, 300_000, 500_000, 1_000_000], 8),
                   10.0: ([10_000, 30_000, 100_000, 200_000], 4)}
#: fv cells along w (--quick stops at 256, short of 1e-4)
FV_LEVELS = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384]


def particles_vs_fv(root, quick: bool, cache: dict) -> dict:
    """Random particles' cost over fv's on the 2D accuracy case at relative risk errors 1e-3
    and 1e-4, at t = 2 and t = 10."""
    integrate("fv", root, grid(16))          # compile the numba kernels outside the timings
    integrate("particle", root, _particle_table(particles=1000))
    result, detail = {}, {}
    for end, (levels, seeds) in PARTICLE_LEVELS.items():
        if quick and end != 2.0:
            continue
        if quick:
            levels, seeds = levels[:6], 4
        suffix = "" if end == 2.0 else f"_t{end:g}"
        fv_levels = FV_LEVELS[:-1] if quick else FV_LEVELS
        out, more = _particles_vs_fv_at(root, end, fv_levels, levels, seeds, suffix, short_for(quick))
        result.update(out)
        detail[f"t={end:g}"] = more
    result["particles_vs_fv_detail"] = detail
    return result


def _particles_vs_fv_at(root, end: float, fv_levels: list[int], levels: list[int], seeds: int,
                        suffix: str, short: float = 0.5) -> tuple[dict, dict]:
    """One end time: measured costs where the particle levels reach a tolerance, else (and
    beside it) the fitted m^-1/2 law's crossing, flagged `_is_extrapolated`."""
    extra = [f"time.end={end}"]
    # the reference: the spectral solver (converged to ~1e-12 on this smooth case at t = 2),
    # checked below against fv's two finest grids, Richardson-extrapolated
    reference = integrate("spectral", root, [*extra, *grid(192), "solver.cfl=0.25"])[0]
    fv_run = lambda n: timed(lambda: integrate("fv", root, [*extra, *grid(n)]), short)  # noqa: E731
    fv = {tol: None for tol in (1e-3, 1e-4)}
    fv_study = cost_at(1e-4, fv_levels, fv_run, reference)
    for tol in fv:
        fv[tol] = cheapest(tol, fv_study["errors"], fv_study["times"])
    r_coarse, r_fine = fv_study["risks"][-2:]
    ratio = (fv_levels[-1] / fv_levels[-2]) ** 2
    richardson = r_fine + (r_fine - r_coarse) / (ratio - 1.0)
    lr, time_errors = particle_step(root, 1e-4, end)

    def particles(m):
        return [integrate("particle", root, [*extra, *_particle_table(particles=m, seed=s, integrator="rk4", lr=lr)])
                for s in range(seeds)]

    part = cost_at(1e-3, levels, particles, reference)
    # the seed-mean error is itself noisy near a tolerance: fit err = C m^(-1/2) over all
    # levels, and the wall time linearly in m, for the m and time at which the law crosses
    m = np.array(levels, dtype=float)
    c = float(np.exp(np.mean(np.log(np.array(part["errors"]) * np.sqrt(m)))))
    slope, intercept = np.polyfit(m, part["times"], 1)
    # the ratios from back-to-back pairs (`paired_ratio`'s reason): the particles' run at the
    # level that meets the tolerance, else their largest (scaled by the fitted law's time over
    # that level's), against fv's cheapest run meeting it
    fv_index = {tol: cheapest_index(tol, fv_study["errors"]) for tol in (1e-3, 1e-4)}
    anchor = {}
    for tol in fv_index:
        i = cheapest_index(tol, part["errors"])
        anchor[tol] = len(levels) - 1 if i is None else i
    pairs = _paired_particles_fv(root, extra, lr, levels, fv_levels, anchor, fv_index, short)
    out = {}
    for tol, name in ((1e-3, ""), (1e-4, "_1e4")):
        key = f"fv_cost_advantage_vs_particles{name}{suffix}"
        m_star = (c / tol) ** 2
        fitted = slope * m_star + intercept
        measured = cheapest(tol, part["errors"], part["times"])
        out[f"particles_m_at_{tol:.0e}_fitted{suffix}"] = m_star
        if fv[tol] is None:     # fv's levels never reached it (--quick at 1e-4): no ratio
            out[key] = None
            continue
        scale = 1.0 if measured is not None else fitted / part["times"][anchor[tol]]
        pair, spread = pairs[tol]
        out[key] = scale * pair
        out[f"{key}_range"] = [scale * r for r in spread]
        out[f"fv_cost_advantage_vs_particles_fitted{name}{suffix}"] = fitted / part["times"][anchor[tol]] * pair
        if measured is None:
            out[f"{key}_is_extrapolated"] = True
    more = {"reference_risk": reference, "fv": {**fv_study, "cost_1e-3": fv[1e-3], "cost_1e-4": fv[1e-4]},
            "reference_check_fv_richardson": {"risk": richardson,
                                              "relative_difference": abs(richardson - reference) / reference},
            "particles": part, "seeds": seeds, "error_law_constant": c,
            "integrator": f"rk4, lr = {lr}", "rk4_time_errors": time_errors}
    return out, more


def _paired_particles_fv(root, extra, lr, levels, fv_levels, anchor, fv_index, short: float = 0.5) -> dict:
    """tol -> (median, [min, max]) over MIN_REPEATS rounds of (particles' wall at levels[anchor[tol]], seed 0)
    / (fv's wall on fv_levels[fv_index[tol]]), each round's runs back to back, for the tolerances
    fv reaches. A run that two tolerances share is run once per round."""
    tols = [tol for tol in fv_index if fv_index[tol] is not None]
    ratios: dict = {tol: [] for tol in tols}
    particle_run = lambda m: timed(lambda: integrate(  # noqa: E731
        "particle", root, [*extra, *_particle_table(particles=m, seed=0, integrator="rk4", lr=lr)]), short)[1]
    fv_run = lambda n: timed(lambda: integrate("fv", root, [*extra, *grid(n)]), short)[1]  # noqa: E731
    for _ in range(MIN_REPEATS):
        walls_p = {m: particle_run(m) for m in sorted({levels[anchor[t]] for t in tols})}
        walls_f = {n: fv_run(n) for n in sorted({fv_levels[fv_index[t]] for t in tols})}
        for tol in tols:
            ratios[tol].append(walls_p[levels[anchor[tol]]] / walls_f[fv_levels[fv_index[tol]]])
    return {tol: (float(np.median(r)), [float(min(r)), float(max(r))]) for tol, r in ratios.items()}


def _fv_reference(root, quick: bool, cache: dict) -> float:
    key = ("fv", quick)
    if key not in cache:
        cache[key] = reference_risk(root, 192 if quick else 256)
    return cache[key]


def _quadrature(root, n: int, extra=()) -> tuple[float, float]:
    """(risk, wall seconds) of a quadrature run with n nodes per axis (rk4, lr = 0.05)."""
    return integrate("particle", root, [*extra, *_particle_table(init="quadrature", nodes=n)])


def quadrature_vs_fv(root, quick: bool, cache: dict) -> dict:
    """Quadrature particles' cost against fv's: tanh at 1e-4, ReLU at 1e-3."""
    result, detail = {}, {}
    fv_levels = [32, 48, 64, 96, 128, 192, 256, 384] if not quick else [32, 64, 128, 256, 384]
    short = short_for(quick)
    integrate("fv", root, grid(16))
    integrate("particle", root, _particle_table(init="quadrature", nodes=8))
    for name, extra, tolerance in (("tanh", [], 1e-4), ("relu", RELU, 1e-3)):
        if name == "tanh":
            reference = _quadrature(root, 64)[0]
            check = _fv_reference(root, quick, cache)
            levels = [6, 8, 10, 12, 16, 20, 24, 32]
            fv_levels_here = fv_levels
        else:
            # first order in n (measured): Richardson at order 1 from 512^2 and 1024^2 nodes
            coarse, fine = _quadrature(root, 512, extra)[0], _quadrature(root, 1024, extra)[0]
            reference = 2 * fine - coarse
            check = None
            if not quick:
                fv_coarse, fv_fine = (integrate("fv", root, [*extra, *grid(n)])[0] for n in (256, 512))
                check = 2 * fv_fine - fv_coarse
            levels = [16, 24, 32, 48, 64, 96, 128, 192]
            fv_levels_here = [n for n in fv_levels if n <= 256] + ([384] if not quick else [])
        quad = cost_at(tolerance, levels, lambda n: timed(lambda: _quadrature(root, n, extra), short), reference)
        fv = cost_at(tolerance, fv_levels_here,
                     lambda n: timed(lambda: integrate("fv", root, [*extra, *grid(n)]), short), reference)
        i_fv, i_quad = cheapest_index(tolerance, fv["errors"]), cheapest_index(tolerance, quad["errors"])
        ratio = None
        if i_quad is not None:
            if i_fv is None:    # fv never got there: its finest run bounds the ratio from below
                i_fv = len(fv_levels_here) - 1
                result[f"quadrature_cost_advantage_vs_fv_{name}_is_lower_bound"] = True
            # the two chosen runs timed again as back-to-back pairs (`accuracy.paired_ratio`)
            n_fv, n_quad = fv_levels_here[i_fv], levels[i_quad]
            ratio, spread = paired_ratio(lambda: integrate("fv", root, [*extra, *grid(n_fv)]),
                                         lambda: _quadrature(root, n_quad, extra),
                                         repeats=MIN_REPEATS * (1 if quick else 2), short=short)
            result[f"quadrature_cost_advantage_vs_fv_{name}_range"] = spread
        result[f"quadrature_cost_advantage_vs_fv_{name}"] = ratio
        detail[name] = {"tolerance": tolerance, "reference_risk": reference,
                        "reference_check": check,
                        "reference_check_relative_difference": None if check is None else abs(check - reference) / reference,
                        "quadrature": quad, "fv": fv}
    result["quadrature_vs_fv_detail"] = detail
    return result


def measures(root, quick: bool, results: dict) -> dict:
    """name -> zero-argument function returning a dict of results (`python -m benchmarks`)."""
    cache: dict = {}
    return {
        "particles": lambda: step_speed(root, quick),
        "particles_vs_fv": lambda: particles_vs_fv(root, quick, cache),
        "quadrature": lambda: quadrature_vs_fv(root, quick, cache),
    }


if __name__ == "__main__":  # pragma: no cover - a quick look without the full suite
    from pathlib import Path
    started = time.perf_counter()
    print(step_speed(Path(__file__).resolve().parents[1], quick=True))
    print(f"{time.perf_counter() - started:.1f} s")
