"""Ensembles of particle runs against the mean-field reference: the finite-width statistics.

For each width m, S runs of m random neurons (seeds 0..S-1) give at each snapshot time the
risks R_m^(s)(t); against the reference risk R(t) of a mean-field solve (quadrature particles
or a grid) this module tabulates

    mean, sd            of R_m(t) over the seeds, with the mean's standard error sd / sqrt(S);
    sqrt(m) sd          with its standard error sqrt(m) sd / sqrt(2 (S - 1)) (Gaussian spread);
    m (mean - R)        the 1/m bias, with its standard error m sd / sqrt(S);

and, where the reference run stored it (`fluctuation = true`, docs/fluctuations.md), the
predicted sqrt(m) sd, `risk_fluctuation`. Everything is read from run files only.
"""
from __future__ import annotations

import numpy as np

from gflow.errors import InputError
from gflow.snapshots import open_run

#: the columns of ensemble.csv, in order
COLUMNS = ("width", "t", "runs", "reference_risk", "mean", "sd", "mean_se", "sqrt_m_sd", "sqrt_m_sd_se",
           "predicted_sqrt_m_sd", "m_bias", "m_bias_se", "predicted_m_bias")


def ensemble_rows(runs_by_width: dict[int, list], reference, initial_bias: float = np.nan) -> list[dict]:
    """One row per (width, snapshot time); `runs_by_width` maps m to run files, `reference` a run file;
    `initial_bias` the exact m (E R_m(0) - R(0)), shown at t = 0 (later times have no prediction)."""
    ref = open_run(reference)
    predicted = ref.dataset("risk_fluctuation")
    rows = []
    for m, paths in sorted(runs_by_width.items()):
        risks = []
        for path in paths:
            run = open_run(path)
            if len(run.time) != len(ref.time) or not np.allclose(run.time, ref.time, rtol=0, atol=1e-12):
                raise InputError(f"{path}: its snapshot times are not the reference's ({reference})")
            risks.append(run.risk)
        R = np.array(risks)
        S = len(R)
        mean = R.mean(axis=0)
        sd = R.std(axis=0, ddof=1) if S > 1 else np.full(len(ref.time), np.nan)
        for k, t in enumerate(ref.time):
            rows.append({
                "width": m, "t": float(t), "runs": S, "reference_risk": float(ref.risk[k]),
                "mean": float(mean[k]), "sd": float(sd[k]), "mean_se": float(sd[k] / np.sqrt(S)),
                "sqrt_m_sd": float(np.sqrt(m) * sd[k]),
                "sqrt_m_sd_se": float(np.sqrt(m) * sd[k] / np.sqrt(2 * (S - 1))) if S > 1 else np.nan,
                "predicted_sqrt_m_sd": float(predicted[k]) if predicted is not None else np.nan,
                "m_bias": float(m * (mean[k] - ref.risk[k])), "m_bias_se": float(m * sd[k] / np.sqrt(S)),
                "predicted_m_bias": float(initial_bias) if k == 0 else np.nan,
            })
    return rows


def ensemble_table(rows: list[dict]) -> str:
    """The rows as aligned text: one block per width."""
    lines = []
    for m in sorted({r["width"] for r in rows}):
        block = [r for r in rows if r["width"] == m]
        lines.append(f"m = {m}, {block[0]['runs']} runs")
        lines.append(f"{'t':>8} {'R (ref)':>10} {'mean':>10} {'sqrt(m) sd':>16} {'predicted':>10} "
                     f"{'m (mean - R)':>18} {'predicted':>10}")
        for r in block:
            bias = "" if np.isnan(r["predicted_m_bias"]) else f"{r['predicted_m_bias']:10.3g}"
            lines.append(f"{r['t']:8.4g} {r['reference_risk']:10.4g} {r['mean']:10.4g} "
                         f"{r['sqrt_m_sd']:8.4g} +- {r['sqrt_m_sd_se']:<5.2g} {r['predicted_sqrt_m_sd']:10.4g} "
                         f"{r['m_bias']:9.3g} +- {r['m_bias_se']:<6.2g} {bias}".rstrip())
        lines.append("")
    return "\n".join(lines)


def ensemble_figure(rows: list[dict], title: str = ""):
    """sqrt(m) sd over time per width (bands: +- 2 standard errors) against the prediction, and
    m (mean - R) likewise."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({r["width"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(widths)))
    for m, colour in zip(widths, colours):
        block = [r for r in rows if r["width"] == m]
        t = np.array([r["t"] for r in block])
        for axis, key in ((left, "sqrt_m_sd"), (right, "m_bias")):
            y = np.array([r[key] for r in block])
            se = np.array([r[f"{key}_se"] for r in block])
            axis.plot(t, y, color=colour, label=f"m = {m} ({block[0]['runs']} runs)")
            axis.fill_between(t, y - 2 * se, y + 2 * se, color=colour, alpha=0.15, linewidth=0)
    block = [r for r in rows if r["width"] == widths[0]]
    predicted = np.array([r["predicted_sqrt_m_sd"] for r in block])
    if np.isfinite(predicted).any():
        left.plot([r["t"] for r in block], predicted, "k--", label="predicted (adjoint)")
    right.axhline(0.0, color="grey", linewidth=0.8)
    if np.isfinite(block[0]["predicted_m_bias"]):
        right.plot([block[0]["t"]], [block[0]["predicted_m_bias"]], "k*", ms=9, label="exact at t = 0")
        right.legend(fontsize=8)
    left.set(xlabel="t", ylabel="sqrt(m) x sd of the risk", title="spread (bands: +- 2 standard errors)")
    right.set(xlabel="t", ylabel="m x (mean risk - mean-field risk)", title="1/m bias")
    left.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
