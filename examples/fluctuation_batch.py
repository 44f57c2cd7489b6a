"""The batch-size law of SGD fluctuations: Var R_m,B(t) = A/m + C/B, fitted over m and B.

Steps 100 seeds of m random neurons with minibatch B (B = 0: full batch) on
cases/fluctuation_tanh.toml to t = 2 for every (m, B), in memory (no run files: 1200 short runs),
prints the variance table, the weighted least-squares fit of A and C with its chi^2 per degree
of freedom, the predicted A = risk_fluctuation(2)^2 of the quadrature solve, and the SGD excess
at m = 400, B = 2 for three learning rates (docs/fluctuations.md, "Minibatch noise"):

    python examples/fluctuation_batch.py
"""
from __future__ import annotations

import numpy as np

from common import CASES
from gflow import load_case
from gflow.problem import build_problem
from gflow.solver_options import defaults
from gflow.solvers import make_stepper

CASE = CASES / "fluctuation_tanh.toml"
END, LR, SEEDS = 2.0, 0.02, 100
WIDTHS, BATCHES = (25, 100, 400), (2, 8, 32, 0)


def final_risk(problem, m: int, batch: int, seed: int, lr: float = LR, fluctuation: bool = False):
    init = {"init": "quadrature", "nodes": 20, "fluctuation": True} if fluctuation else {"particles": m, "seed": seed}
    options = {**defaults("particle"), **init, "integrator": "euler", "lr": lr, "batch": batch}
    stepper = make_stepper("particle", problem, options)
    t = 0.0
    while t < END - 1e-12:
        t += stepper.step(END - t)
    return stepper.observe()


def variance(problem, m: int, batch: int, lr: float = LR) -> tuple[float, float]:
    R = np.array([final_risk(problem, m, batch, seed, lr).risk for seed in range(SEEDS)])
    var = float(R.var(ddof=1))
    return var, var * np.sqrt(2.0 / (SEEDS - 1))


def main() -> int:
    problem = build_problem(load_case(CASE, [], ["particle"]))
    rows = [(m, b, *variance(problem, m, b)) for m in WIDTHS for b in BATCHES]
    print(f"Var R_m(2) over {SEEDS} seeds, lr {LR} (batch 0: full)")
    for m in WIDTHS:
        print(f"  m = {m:3d}: " + "  ".join(f"B = {b or 'full'}: {v:.2e} +- {s:.1e}" for mm, b, v, s in rows if mm == m))
    X = np.array([[1.0 / m, 1.0 / b if b else 0.0] for m, b, _, _ in rows])
    y, w = np.array([r[2] for r in rows]), 1.0 / np.array([r[3] for r in rows])
    (A, C), *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    chi2 = float(np.sum(((y - X @ [A, C]) * w) ** 2) / (len(y) - 2))
    predicted = final_risk(problem, 0, 0, 0, fluctuation=True).extras["risk_fluctuation"] ** 2
    print(f"fit Var = A/m + C/B: A = {A:.2e} (predicted {predicted:.2e}), C = {C:.2e}, chi^2/dof = {chi2:.2f}")
    for lr in (0.01, 0.02, 0.04):
        sgd, full = variance(problem, 400, 2, lr), variance(problem, 400, 0, lr)
        print(f"  lr = {lr}: SGD excess at m = 400, B = 2: {sgd[0] - full[0]:.2e} +- {np.hypot(sgd[1], full[1]):.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
