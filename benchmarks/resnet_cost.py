"""The resnet model's step costs (issue 17): fv against two-layer fv, particles against PyTorch.

    python -m benchmarks --only resnet [--quick] --output benchmarks/results/resnet.json
    python -m benchmarks.resnet_cost --profile        # where the time of each step goes

- `resnet_fv_step_over_two_layer`: one fv step (SSP-RK3, all stages, the depth sweep included)
  of an L-layer ResNet, d = 1, tanh, on a per-layer grid (64 x 64 without bias; 32^3 with bias),
  over L fv steps of the two-layer model on the same grid with the same data, target and initial
  law; L = 4, 8, 16 per grid (goal <= 1.5). Both use gflow's default fv options (`defaults("fv")`,
  the two-layer model taking its fused numba kernel); `..._numpy` is the same ratio against the
  two-layer model's plain numpy path (kernel = "numpy"), which separates the depth sweep's
  arithmetic from the kernel. Both step with a fixed tiny dt = 1e-5, so that every step costs the same.
- `resnet_particle_speedup_vs_torch` (and `..._vs_numpy`): the median time of a gradient-descent
  step written in PyTorch with autograd (in numpy) over that of one forward-Euler step of gflow's
  particle solver on the ResNet with M particles per layer (L = 8, M = 1e2, 1e3, 1e4; 256 data
  nodes; d = 1 and 2; tanh with bias; above 1: gflow is faster), the same step
  (`benchmarks.torch_resnet`, float64, torch's default threads) and in plain numpy (`numpy_step`,
  a hand-written forward and backward pass), learning rate L M dt. Before timing, all three take
  one step from the same parameters: their updates must agree to round-off
  (`resnet_particle_max_rel_diff_vs_*` = max |du_gflow - du_other| / max |du_other|).

Timings are medians over repeats after a warm-up; spreads are the quartiles. The fv steps are
interleaved repeat by repeat (the machine is shared: a slow spell hits both), each ratio the
median of the paired ratios; the particle steps are timed in blocks, one implementation at a
time (interleaving numpy's and torch's thread pools makes both spin on the same cores), in
five rounds (one with --quick), each ratio the median over rounds of a ratio of medians
(`timing.block_rounds`). Without PyTorch the torch column is skipped with a note.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks.timing import block_rounds, in_fresh_process, round_ratio

from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.solvers import make_stepper

#: per-layer grid name -> (cells, bias)
FV_GRIDS = {"64x64": ((64, 64), False), "32^3": ((32, 32, 32), True)}
FV_LAYERS = (4, 8, 16)
FV_DT = 1e-5
FV_DATA_NODES = 32
PARTICLE_LAYERS = 8
PARTICLES = (100, 1_000, 10_000)
PARTICLE_DATA = 256
PARTICLE_DT = 0.05
#: calls per particle count, shared among the rounds (--quick: a ninth; at least MIN_REPEATS a block)
PARTICLE_REPEATS = {100: 101, 1_000: 31, 10_000: 9}


def case(kind: str, solver: str, cells, bias: bool, layers: int = 1, d: int = 1, nodes: int = FV_DATA_NODES,
         options: dict | None = None):
    """The benchmark case: tanh, teacher 1.5 tanh(2 x.1 [+ 0.5]), uniform data on [-1, 1]^d
    (`nodes` per axis), a centred Gaussian of std 0.6 on [-4, 4] along every parameter axis."""
    D = (1 + d if kind == "two_layer" else 2 * d) + bias
    w = 2.0 if d == 1 else [2.0] * d
    lines = "\n".join(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v).replace(chr(39), chr(34))}"
                      for k, v in (options or {}).items())
    text = f"""
[model]
kind = "{kind}"
activation = "tanh"
bias = {str(bias).lower()}
input_dim = {d}
{f"layers = {layers}" if kind == "resnet" else ""}
[target]
neurons = [{{ a = 1.5, w = {w}{", b = 0.5" if bias else ""} }}]
[data]
distribution = "uniform"
low = -1.0
high = 1.0
nodes = {nodes}
[initial]
distribution = "gaussian"
mean = {[0.0] * D}
std = {[0.6] * D}
[grid]
bounds = {[[-4.0, 4.0]] * D}
cells = {list(cells)}
[time]
end = 1.0
[solver]
kind = "{solver}"
{lines}
"""
    return case_from_text(text, f"<benchmark {kind} {solver}>")


def stepper(kind: str, solver: str, cells, bias: bool, **kwargs):
    c = case(kind, solver, cells, bias, **kwargs)
    return make_stepper(solver, build_problem(c), c.solvers[0].options)


def paired(fns, repeats: int, warmup: int = 1) -> np.ndarray:
    """Wall seconds of each of `fns`, shape (repeats, len(fns)), the calls interleaved."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out = np.empty((repeats, len(fns)))
    for r in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            out[r, i] = time.perf_counter() - start
    return out


def spread_ms(seconds: np.ndarray) -> dict:
    q25, q50, q75 = np.percentile(seconds, [25, 50, 75])
    return {"median_ms": 1e3 * q50, "q25_ms": 1e3 * q25, "q75_ms": 1e3 * q75, "repeats": len(seconds)}


def ratio_summary(ratios: np.ndarray) -> dict:
    q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75)}


# ----------------------------------------------------------------------------- fv

def _fixed_step(s, dt: float):
    def step():
        taken = s.step(dt)
        if taken != dt:
            raise RuntimeError(f"the fv step was limited to {taken:g} < {dt:g}: the comparison needs equal steps")
    return step


def fv_steps(quick: bool) -> dict:
    repeats = 5 if quick else 15
    ratios, ratios_numpy, ms, detail = [], [], [], []
    for name, (cells, bias) in FV_GRIDS.items():
        two = _fixed_step(stepper("two_layer", "fv", cells, bias), FV_DT)
        two_numpy = _fixed_step(stepper("two_layer", "fv", cells, bias, options={"kernel": "numpy"}), FV_DT)
        for L in FV_LAYERS:
            res_stepper = stepper("resnet", "fv", cells, bias, layers=L)
            res = _fixed_step(res_stepper, FV_DT)
            t = paired([res, lambda: [two() for _ in range(L)], lambda: [two_numpy() for _ in range(L)]],
                       repeats)
            r, rn = t[:, 0] / t[:, 1], t[:, 0] / t[:, 2]
            ratios.append(float(np.median(r)))
            ratios_numpy.append(float(np.median(rn)))
            ms.append(1e3 * float(np.median(t[:, 0])))
            detail.append({"grid": name, "layers": L, "cells": res_stepper.rho.shape,
                           "resnet_fused": bool(getattr(res_stepper, "fused", False)),
                           "resnet_step": spread_ms(t[:, 0]), "two_layer_L_steps": spread_ms(t[:, 1]),
                           "two_layer_numpy_L_steps": spread_ms(t[:, 2]),
                           "ratio": ratio_summary(r), "ratio_vs_numpy": ratio_summary(rn)})
    return {"resnet_fv_step_over_two_layer": ratios,
            "resnet_fv_step_over_two_layer_numpy": ratios_numpy,
            "resnet_fv_step_ms": ms,
            "resnet_fv_detail": {"configs": [f"{d['grid']} L={d['layers']}" for d in detail],
                                 "data_nodes": FV_DATA_NODES, "dt": FV_DT, "rows": detail}}


# ----------------------------------------------------------------------------- particles

def numpy_step(u: np.ndarray, x: np.ndarray, p: np.ndarray, y: np.ndarray, dt: float, bias: bool):
    """One GD step, in place, of the tanh ResNet with parameters u (L, M, D) = (a, w[, b]),
    z_{l+1} = z_l + (1/(L M)) tanh(z_l W_l^T + b_l) a_l, f = sum_k z_L[k], learning rate L M dt:
    a plain numpy forward pass that keeps every layer's state and activations, then back-propagation."""
    L, M, _ = u.shape
    d = x.shape[1]
    c, lr = 1.0 / (L * M), dt * L * M
    z, s = [x], []
    for l in range(L):
        pre = z[-1] @ u[l, :, d:2 * d].T
        if bias:
            pre += u[l, :, -1]
        s.append(np.tanh(pre))
        z.append(z[-1] + c * (s[-1] @ u[l, :, :d]))
    g = np.repeat((p * (z[-1].sum(axis=1) - y))[:, None], d, axis=1)     # dR/dz_L
    grad = np.empty_like(u)
    for l in range(L - 1, -1, -1):
        a, w = u[l, :, :d], u[l, :, d:2 * d]
        grad[l, :, :d] = c * (s[l].T @ g)
        delta = c * (g @ a.T) * (1.0 - s[l] * s[l])                      # dR/dpre, (N, M)
        grad[l, :, d:2 * d] = delta.T @ z[l]
        if bias:
            grad[l, :, -1] = delta.sum(axis=0)
        g = g + delta @ w
    u -= lr * grad


def _relative(du: np.ndarray, du_ref: np.ndarray) -> float:
    return float(np.abs(du - du_ref).max() / np.abs(du_ref).max())


def particle_steps(quick: bool) -> dict:
    try:
        from benchmarks import torch_resnet
    except ImportError as exc:
        torch_resnet, torch_note = None, f"skipped: PyTorch is not installed ({exc})"
    else:
        torch_note = f"{torch_resnet.threads()} threads, torch {torch_resnet.version()}"
    L, bias = PARTICLE_LAYERS, True
    configs, ours, vs_torch, vs_numpy, detail = [], [], [], [], []
    worst = {"torch": 0.0, "numpy": 0.0}
    for d in (1, 2):
        nodes = PARTICLE_DATA if d == 1 else round(PARTICLE_DATA ** 0.5)
        cells = [4] * (2 * d + bias)          # the grid only bins the cloud for snapshots
        for M in PARTICLES:
            s = stepper("resnet", "particle", cells, bias, layers=L, d=d, nodes=nodes,
                        options={"particles": M, "integrator": "euler", "lr": PARTICLE_DT})
            model = s.model
            x, p, y = model.x, model.p, model.y
            index = model.layer_index(s.u)
            assert np.array_equal(index, np.repeat(np.arange(L), M)), "particles are not given layer by layer"
            u0 = s.u[:, 1:].reshape(L, M, -1).copy()
            # the same step from the same parameters: gflow, numpy, torch
            s.step(PARTICLE_DT)
            du = s.u[:, 1:].reshape(L, M, -1) - u0
            mine = u0.copy()
            numpy_step(mine, x, p, y, PARTICLE_DT, bias)
            row = {"d": d, "M": M, "data": len(p), "max_rel_diff_vs_numpy": _relative(du, mine - u0),
                   "update_max": float(np.abs(du).max())}
            worst["numpy"] = max(worst["numpy"], row["max_rel_diff_vs_numpy"])
            fns = [lambda: s.step(PARTICLE_DT), lambda: numpy_step(mine, x, p, y, PARTICLE_DT, bias)]
            if torch_resnet is not None:
                theirs = torch_resnet.TorchResNetStep(u0, x, p, y, PARTICLE_DT, "tanh", bias)
                theirs()
                row["max_rel_diff_vs_torch"] = _relative(du, theirs.parameters() - u0)
                worst["torch"] = max(worst["torch"], row["max_rel_diff_vs_torch"])
                fns.append(theirs)
            # rounds of blocks, each ratio the median over rounds (`timing.block_rounds`): five,
            # since at M = 1e4 (160 MB temporaries per layer) one round's ratio ranged over
            # 0.30-0.79 within a run and the median of three moved by 40% between runs
            rounds = 1 if quick else 5          # --quick: one round, for a look (its 3 minutes)
            repeats = PARTICLE_REPEATS[M] // (9 if quick else rounds)
            t = block_rounds(fns, repeats, rounds=rounds)
            row["gflow_step"] = spread_ms(t[0].ravel())
            row["numpy_step"] = spread_ms(t[1].ravel())
            row["speedup_vs_numpy"], *row["speedup_vs_numpy_range"] = round_ratio(t[1], t[0])
            vs_numpy.append(row["speedup_vs_numpy"])
            if torch_resnet is not None:
                row["torch_step"] = spread_ms(t[2].ravel())
                row["speedup_vs_torch"], *row["speedup_vs_torch_range"] = round_ratio(t[2], t[0])
                vs_torch.append(row["speedup_vs_torch"])
            else:
                vs_torch.append(None)
            ours.append(row["gflow_step"]["median_ms"])
            configs.append(f"d={d} M={M}")
            detail.append(row)
    # the same step: round-off only (the updates are O(dt), the parameters O(1))
    assert worst["numpy"] < 1e-10, detail
    if torch_resnet is not None:
        assert worst["torch"] < 1e-10, detail
    out = {"resnet_particle_step_ms": ours,
           "resnet_particle_speedup_vs_torch": vs_torch,
           "resnet_particle_speedup_vs_numpy": vs_numpy,
           "resnet_particle_max_rel_diff_vs_numpy": worst["numpy"],
           "resnet_particle_max_rel_diff_vs_torch": worst["torch"] if torch_resnet is not None else None,
           "resnet_torch": torch_note,
           "resnet_particle_detail": {"configs": configs, "layers": L, "bias": bias, "dt": PARTICLE_DT,
                                      "rows": detail}}
    return out


def measure(root, quick: bool) -> dict:
    """`python -m benchmarks --only resnet`: both studies."""
    import os

    import numba
    before = os.getloadavg()[0]
    # the particle steps in a fresh process (`timing.in_fresh_process`: torch's step there does
    # not depend on what ran before it in this one)
    out = {**fv_steps(quick), **in_fresh_process(root, "benchmarks.resnet_cost", "particle_steps", quick)}
    out["resnet_numba_threads"] = numba.get_num_threads()
    # another process on these 2 cores slows torch's two OpenMP threads 20-40x (a barrier
    # waits for the preempted thread): the 1-minute load tells a reader whether it was quiet
    out["resnet_load_average_before_after"] = [before, os.getloadavg()[0]]
    return out


# ----------------------------------------------------------------------------- profiles

def profile(top: int = 14) -> None:
    """cProfile of the particle step (d = 2, L = 8, M = 1: the fixed per-step cost, 1e2, 1e4) and
    of the fv step (L = 8, both grids), the wall time per step first."""
    import cProfile
    import pstats

    runs = []
    for M, steps in ((1, 500), (100, 200), (10_000, 10)):
        s = stepper("resnet", "particle", [4] * 5, True, layers=PARTICLE_LAYERS, d=2, nodes=16,
                    options={"particles": M, "integrator": "euler", "lr": PARTICLE_DT})
        runs.append((f"particle step, d = 2, L = 8, M = {M}, {steps} steps", s, PARTICLE_DT, steps))
    for name, (cells, bias) in FV_GRIDS.items():
        runs.append((f"fv step, {name}, L = 8, 10 steps", stepper("resnet", "fv", cells, bias, layers=8), FV_DT, 10))
    for title, s, dt, steps in runs:
        s.step(dt)
        start = time.perf_counter()
        for _ in range(steps):
            s.step(dt)
        wall = (time.perf_counter() - start) / steps
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            s.step(dt)
        prof.disable()
        print(f"\n=== {title}: {1e3 * wall:.3f} ms per step (unprofiled)")
        pstats.Stats(prof).sort_stats("tottime").print_stats(top)


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m benchmarks.resnet_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print where the time of each step goes")
    args = parser.parse_args()
    if args.profile:
        profile()
    else:
        print(json.dumps(measure(Path(__file__).resolve().parents[1], args.quick), indent=1, default=str))
