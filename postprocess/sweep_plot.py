"""The figure of a sweep (`gflow plot sweep.csv`): error against resolution and against wall time.

Reads sweep.csv only (written by `gflow sweep`, docs/sweeps.md). Rows that differ only in
a resolution key (`...cells`, `...particles`) form one group, one line per group: each
error e (final-time |R - R_ref| and W1 to the reference) against the resolution N (grid
cells, or particles for particle solvers) on log-log axes, with the least-squares slope p of

    log e = p log N + c,

the observed convergence order in N (a particle method's Monte Carlo error has p = -1/2;
a grid method of order k in d dimensions has p = -k/d in cells). The second row plots the
same errors against wall time: accuracy per cost, where the method whose line lies lower
at a given cost is the better buy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from gflow.errors import InputError
from gflow.solver_options import PARTICLE_KINDS
from gflow.sweep_table import group_key, read_csv, resolution_keys

#: error columns drawn, with their axis labels
ERRORS = {"risk_error": "|R - R_ref| at the final time", "W1": "W1 to the reference at the final time"}


@dataclass
class Line:
    """One group of a sweep: its label and the points (resolution, wall time, errors)."""

    label: str
    kind: str
    resolution: np.ndarray
    wall: np.ndarray
    errors: dict[str, np.ndarray]


def read_sweep(path) -> tuple[list[dict], list[str]]:
    """The rows of a sweep.csv and its varied keys, with the columns this figure needs."""
    return read_csv(path, ("run", "solver", "status", "resolution", "wall_time", *ERRORS))


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def sweep_lines(rows: list[dict], keys: list[str]) -> list[Line]:
    """Rows with errors, grouped as gflow sweep chose references: solver and the non-resolution keys."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if any(math.isfinite(_number(row.get(e))) for e in ERRORS):
            groups.setdefault(group_key(row, keys), []).append(row)
    lines = []
    for (kind, *values), members in groups.items():
        members.sort(key=lambda r: _number(r["resolution"]))
        others = [k for k in keys if k.rsplit(".", 1)[-1] not in resolution_keys(kind)]
        label = ", ".join([kind, *(f"{k}={v}" for k, v in zip(others, values))])
        lines.append(Line(label, kind, np.array([_number(r["resolution"]) for r in members]),
                          np.array([_number(r["wall_time"]) for r in members]),
                          {e: np.array([_number(r.get(e)) for r in members]) for e in ERRORS}))
    return lines


def fit_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """(slope p, intercept c) of log y = p log x + c over the positive finite points; None if < 2 x values."""
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return None
    p, c = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(p), float(c)


def _panel(ax, lines: list[Line], error: str, x_of, xlabel: str, slopes: dict, what: str):
    for k, line in enumerate(lines):
        x, y = x_of(line), line.errors[error]
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        if not keep.any():
            continue
        fit = fit_slope(x, y)
        label = line.label
        if fit is not None:
            slopes[(line.label, error, what)] = fit[0]
            label += f" (slope {fit[0]:.2f})"
            xs = np.geomspace(x[keep].min(), x[keep].max(), 20)
            ax.plot(xs, np.exp(fit[1]) * xs ** fit[0], ls="--", color=f"C{k}", lw=1)
        ax.plot(x[keep], y[keep], marker="o", ls="", color=f"C{k}", label=label)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ERRORS[error])
    for axis in (ax.xaxis, ax.yaxis):
        # ticks at 1, 2, 5 per decade, labelled plainly: readable over a fraction of a decade too
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no positive values", transform=ax.transAxes, ha="center")
    return ax


def _guide(ax, slope: float, label: str):
    """A dotted line of the given slope through the leftmost point drawn."""
    points = [line.get_xydata() for line in ax.get_lines() if line.get_linestyle() == "None"]
    if not points:
        return
    x0, y0 = min((p for pts in points for p in pts), key=lambda p: p[0])
    x1 = max(p[0] for pts in points for p in pts)
    xs = np.array([x0, x1])
    ax.plot(xs, y0 * (xs / x0) ** slope, ls=":", color="0.4", label=label)
    ax.legend(fontsize="small")


def sweep_figure(path, dpi: float = 100):
    """The figure and the fitted slopes {(group, error, "resolution" | "wall time"): p}."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, keys = read_sweep(path)
    lines = sweep_lines(rows, keys)
    if not lines:
        raise InputError(f"{path}: no run has a distance to a reference; run the sweep over a resolution key "
                         "(grid.cells, solver.particles) or give gflow sweep --reference RUN.h5")
    particles = {line.kind in PARTICLE_KINDS for line in lines}
    xlabel = {frozenset([True]): "particles m", frozenset([False]): "grid cells"}.get(
        frozenset(particles), "resolution (grid cells, or particles m)")
    fig = Figure(figsize=(5.0 * len(ERRORS), 8.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)     # the Agg canvas, never pyplot: no global backend, no display
    axes = fig.subplots(2, len(ERRORS), squeeze=False)
    slopes: dict = {}
    for j, error in enumerate(ERRORS):
        _panel(axes[0, j], lines, error, lambda line: line.resolution, xlabel, slopes, "resolution")
        axes[0, j].set_title("error against resolution")
        _panel(axes[1, j], lines, error, lambda line: line.wall, "wall time (s)", slopes, "wall time")
        axes[1, j].set_title("error against cost")
    if particles == {True}:     # the Monte Carlo rate, through each panel's first point
        for ax in axes[0]:
            _guide(ax, -0.5, "m^-1/2 (Monte Carlo)")
    where = Path(path)
    fig.suptitle(f"{where.parent.name}/{where.name}: dashed lines are least-squares fits of log error against log x")
    return fig, slopes

