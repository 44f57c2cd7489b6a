"""Figures and movies of runs (`gflow plot`, `gflow compare --plot`, the multi-solver report).

Panel functions take an `ax`, draw one thing, and return the `ax`. Figures are built on
`matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so nothing here
changes a global backend or needs a display. Movies iterate the snapshot file frame by frame.

A run file is untrusted: text from it (the solver's name, a message about its stored case) is
drawn through `_label`, which no mathtext `$` can break; and the f(x) panel, which rebuilds the
model from the stored case, is left out with a note when that case names a file (a `[data]`
file): `gflow plot` reads the run file and nothing the run file names (`network_model`).

A layered run (`Run.layers` = L, the `resnet` kind) is drawn against depth: for each parameter
axis an image of its marginal density in every layer, depth tau = l/L across and the parameter
up (`depth_panel`, `postprocess.layers.depth_marginal`), from the cell densities of a grid run
and the binned density of a particle run alike; its movie animates those images with one
colour scale for every panel and frame (`depth_scale`).

So that amplitudes can be read and compared:
- one colour scale (a 1D curve: one y range) over every frame of a movie and over the density
  panels of one row of a figure (`density_scale`, `shared_scale=False` gives each its own);
  a movie finds its scale in a first pass over its frames, one snapshot in memory at a time;
- particles are small, edge-less, semi-transparent magenta dots (a colour viridis lacks), at
  most MAX_DRAWN of them, so the binned density under them stays readable (`particles=False`:
  none); in 1D a rug of ticks along the bottom;
- a risk or energy axis is logarithmic only where its values span more than LOG_RANGE
  (`curve_scale`): a 10 % range on a log axis is one tick label and clutter;
- axes that share units (a potential model's positions x1, x2, ...) are drawn at equal aspect
  (`spatial_axes`); a network's parameters (a, w, b) are not positions of one space;
- each functional is labelled with what it is (`functional_label`): a potential model's
  `risk` is its interaction energy and `energy` its free energy; where energy and risk are
  the same numbers (no weight decay, T = 0) one panel says so instead of two identical ones.

Long work shows a tqdm bar on stderr on a terminal (`progress_bar`, the convention of
`gflow run`). MP4 movies are written by ffmpeg from the imageio-ffmpeg wheel (`ffmpeg_exe`),
so no system package is needed.
"""
from __future__ import annotations

import contextlib
import math
import shutil
import sys
from pathlib import Path

import numpy as np
from matplotlib import animation, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gflow.errors import InputError
from gflow.run_file import printable
from gflow.snapshots import Run, Snapshot
from gflow.postprocess.layers import depth_marginal
from gflow.postprocess.runs import cell_masses, faces, grid_points, marginal

#: particles drawn over a density at most (a fixed subsample beyond): more would hide it
MAX_DRAWN = 1000
#: snapshot columns in `gflow plot`
COLUMNS = 4
#: a layered run's depth axis is ticked at every layer up to this many layers
MAX_DEPTH_TICKS = 8
#: a risk or energy axis is logarithmic only when its (positive) values span more than this factor
LOG_RANGE = 10.0
#: the particles' colour: magenta, which viridis (dark blue to yellow) never takes
PARTICLE_COLOUR = "#ff2bd6"


def _label(text) -> str:
    """Text from a run file, safe to draw: printable, short, and literal (no mathtext)."""
    return printable(text, 120).replace("$", r"\$")


# ----------------------------------------------------------------------------- panels

def model_kind(run: Run) -> str | None:
    """The stored case's model kind ("two_layer", "potential", "resnet", ...), None when unknown."""
    model = (run.document or {}).get("model")
    kind = model.get("kind") if isinstance(model, dict) else None
    return kind if isinstance(kind, str) else None


def spatial_axes(run: Run) -> bool:
    """Whether the density's axes share units, so that a heatmap is drawn at equal aspect: a
    potential model's axes are positions x1, x2, ... of one space (a disk must look round); a
    network's (a, w, b) are an output weight, input weights and a bias, and a layered run's
    first axis is its depth."""
    return model_kind(run) == "potential" and not run.layers


def _regularisation(run: Run) -> tuple[float, float]:
    """(weight decay lam, temperature T) of the stored case, 0 where absent or not a number."""
    reg = (run.document or {}).get("regularization")
    reg = reg if isinstance(reg, dict) else {}

    def number(key: str) -> float:
        value = reg.get(key, 0.0)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else 0.0

    return number("weight_decay"), number("temperature")


def functional_label(run: Run, name: str) -> str:
    """What the run's dataset `name` ("risk" or "energy") is, in words and formula (mathtext).

    A potential model (aggregation-diffusion, `gflow.models.potential`) has no risk: its `risk`
    is the energy R = int P rho + 1/2 int int W rho rho and its `energy` the free energy
    E = R + (lam/2) int |u|^2 rho + T int rho log rho. A network's `risk` is its risk, and its
    `energy` the same E over it. E's label names the terms that the stored case adds to R."""
    potential = model_kind(run) == "potential"
    if name == "risk":
        if not potential:
            return r"risk $R[\rho]$"
        model = (run.document or {}).get("model")
        interaction = isinstance(model, dict) and bool(model.get("interaction"))
        return r"energy $R[\rho] = \int P\rho" + (r" + \frac{1}{2}\iint W\rho\rho$" if interaction else "$")
    lam, temperature = _regularisation(run)
    terms = [term for term, on in ((r"\frac{\lambda}{2}\int |u|^2\rho", lam > 0),
                                   (r"T\int \rho\log\rho", temperature > 0)) if on]
    return ("free energy" if potential else "energy") + r" $E[\rho] = R" + "".join(f" + {t}" for t in terms) + "$"


def _symbol(run: Run, name: str) -> str:
    """The short y label of a functional: its name and letter."""
    if model_kind(run) == "potential":
        return r"energy $R$" if name == "risk" else r"free energy $E$"
    return r"risk $R$" if name == "risk" else r"energy $E$"


def same_functionals(run: Run) -> bool:
    """Whether the run's energy is its risk (to round-off): no weight decay and T = 0, where
    E = R + 0 + 0 and a second panel would repeat the first."""
    return len(run.energy) == len(run.risk) and bool(np.allclose(run.energy, run.risk, rtol=1e-12, atol=0.0))


def drawn_density(run: Run, snap: Snapshot, plane=(0, 1)) -> np.ndarray:
    """What `density_panel` draws of `snap`: the density (1D, 2D) or its marginal on `plane` (3D+)."""
    if len(run.axes) <= 2:
        return snap.density
    return marginal(snap.density, faces(run), plane)


def density_scale(run: Run, snaps, plane=(0, 1)) -> tuple[float, float]:
    """The range (low, high) of what `density_panel` draws over `snaps`, from 0 up (below 0 only
    where a density is): given to every panel or frame, one colour, or one height, is one
    density in all of them. `snaps` is any iterable, consumed one snapshot at a time (a movie
    streams its frames: a run file may hold more than memory)."""
    low = high = 0.0
    for snap in snaps:
        values = drawn_density(run, snap, plane)
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    return (low, high) if high > low else (low, low + 1.0)


def density_label(run: Run, plane=(0, 1)) -> str:
    if len(run.axes) <= 2:
        return "density"
    return f"marginal density ({run.axes[plane[0]]}, {run.axes[plane[1]]})"


def density_panel(ax, run: Run, snap: Snapshot, plane=(0, 1), particles: bool = True,
                  scale: tuple[float, float] | None = None, colorbar: bool = True):
    """The density at one time: a curve (1D), a heatmap (2D) or the 2D marginal on `plane` (3D+).

    `scale` (low, high) fixes the colour scale (1D: the y range) so that several panels or frames
    share it (`density_scale`); None scales this panel on its own. Particles, where the run has
    them and `particles` is true, are drawn over it (projected onto the plane) so that the
    density stays readable (`_dots`, `_rug`). `colorbar` False leaves the colour bar to the caller
    (one for a row of panels on one scale).
    """
    f = faces(run)
    shown = particles and snap.positions is not None
    if len(run.axes) == 1:
        ax.plot(0.5 * (f[0][1:] + f[0][:-1]), snap.density, color="C0")
        if shown:
            _rug(ax, snap.positions[:, 0])
        ax.set(xlabel=run.axes[0], ylabel="density", xlim=(f[0][0], f[0][-1]))
        if scale is not None:
            pad = 0.05 * (scale[1] - scale[0])
            ax.set_ylim(scale[0] - pad if scale[0] < 0 else 0.0, scale[1] + pad)
    else:
        i, j = plane
        low, high = scale if scale is not None else (None, None)
        mesh = ax.pcolormesh(f[i], f[j], drawn_density(run, snap, plane).T, cmap="viridis", shading="flat",
                             rasterized=True, vmin=low, vmax=high)
        if colorbar:
            ax.figure.colorbar(mesh, ax=ax, label=density_label(run, plane))
        if shown:
            _dots(ax, snap.positions[:, [i, j]])
        ax.set(xlabel=run.axes[i], ylabel=run.axes[j], xlim=(f[i][0], f[i][-1]), ylim=(f[j][0], f[j][-1]))
        if spatial_axes(run):
            ax.set_aspect("equal")
    ax.set_title(f"{_label(run.solver)}, t = {snap.time:.4g}")
    return ax


def _particle_alpha(count: int) -> float:
    """Opacity of one dot: about 300 dots' worth of ink in all, within [0.3, 0.7]."""
    return float(np.clip(300.0 / max(count, 1), 0.3, 0.7))


def _dots(ax, points: np.ndarray) -> None:
    """Particles as small edge-less magenta dots, at most MAX_DRAWN, faint when many: the
    density under them stays visible, the cloud's shape too."""
    drawn = _subsample(points)
    ax.scatter(drawn[:, 0], drawn[:, 1], s=3.0, c=PARTICLE_COLOUR, alpha=_particle_alpha(len(drawn)),
               linewidths=0, rasterized=True)


def _rug(ax, x: np.ndarray) -> None:
    """1D particles as a rug of short ticks along the bottom of the axes (axes coordinates in y:
    they leave the curve and the y range alone)."""
    drawn = _subsample(x[:, None])[:, 0]
    ax.plot(drawn, np.full(len(drawn), 0.025), "|", transform=ax.get_xaxis_transform(), color=PARTICLE_COLOUR,
            alpha=_particle_alpha(len(drawn)), markersize=7, markeredgewidth=0.8)


def depth_panel(ax, run: Run, snap: Snapshot, axis: int, vmax: float | None = None, colorbar: bool = True):
    """A layered run's marginal density of parameter `axis` (an index into run.axes, >= 1) in
    every layer: an image with the depth tau = l/L across (one column per layer) and the
    parameter up. `vmax` fixes the top of the colour scale (a movie's, over all its frames)."""
    f = faces(run)
    values = depth_marginal(run, snap, axis)
    mesh = ax.pcolormesh(f[0], f[axis], values.T, cmap="viridis", shading="flat", rasterized=True,
                         vmin=0.0 if vmax is not None else None, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=f"density of {run.axes[axis]} per layer")
    ax.set(xlabel="depth l/L", ylabel=run.axes[axis], xlim=(f[0][0], f[0][-1]), ylim=(f[axis][0], f[axis][-1]))
    if run.layers <= MAX_DEPTH_TICKS:
        ax.set_xticks(0.5 * (f[0][1:] + f[0][:-1]), [f"{tau:.2g}" for tau in run.coordinates[0]])
    ax.set_title(f"{_label(run.solver)}, t = {snap.time:.4g}")
    return ax


def _subsample(points: np.ndarray) -> np.ndarray:
    if len(points) <= MAX_DRAWN:
        return points
    return points[np.random.default_rng(0).choice(len(points), MAX_DRAWN, replace=False)]


def network_model(run: Run):
    """The run's model when it is a network f(x) that can be drawn (input_dim 1), else (None, why not).

    A network is a model with the optional `network(u, q, x)` and `input_dim` of the Model
    protocol (`gflow.models.base`); which kind it is does not matter here.

    The model is rebuilt from the stored case only when that case names no file
    (`Run.named_files`, e.g. `data.file`): a run file is untrusted, and one naming /dev/zero or
    another user's file must not make `gflow plot` read it. Such a run is drawn without the f(x)
    panel, and the figure says why.
    """
    from gflow.problem import problem_from_text

    named = run.named_files()
    if named:
        return None, (f"the stored case names a file ({', '.join(named)}); gflow plot reads only the run file")
    try:
        problem = problem_from_text(run.case_text, str(run.path))
    except InputError as exc:
        return None, f"cannot rebuild the model: {exc}"
    model = problem.model
    if not hasattr(model, "network"):
        return None, ""
    if model.input_dim != 1:
        return None, f"f(x) is drawn for input_dim 1 only (this model has {model.input_dim})"
    return model, ""


def _neurons(run: Run, snap: Snapshot):
    """Neurons and their network weights: particles, or cell centres with cell masses."""
    if snap.positions is not None:
        solver = (run.document or {}).get("solver", {})
        conventional = isinstance(solver, dict) and solver.get("scaling") == "conventional"
        weights = run.weights if snap.weights is None else snap.weights      # this snapshot's (birth-death)
        return snap.positions, np.ones(len(snap.positions)) if conventional else weights
    f = faces(run)
    return grid_points(f), cell_masses(snap.density, f).ravel()


def network_panel(ax, run: Run, snap: Snapshot, model):
    """The learned f(x; rho_t) against the target f*(x) (or the data points when a file gives y)."""
    x = np.linspace(model.x[:, 0].min(), model.x[:, 0].max(), 200)[:, None]
    u, q = _neurons(run, snap)
    if model.target is not None:
        ax.plot(x[:, 0], model.target(x), color="k", lw=1.0, ls="--", label="target f*")
    else:
        ax.plot(model.x[:, 0], model.y, "o", color="k", ms=2, label="data")
    ax.plot(x[:, 0], model.network(u, q, x), color="C1", label="learned f")
    ax.set(xlabel="x", ylabel="f(x)", title=f"f(x), t = {snap.time:.4g}")
    ax.legend(fontsize="small")
    return ax


def curve_scale(values) -> str:
    """"log" when every value is positive and they span more than LOG_RANGE, else "linear": a
    log axis over a 10 % range shows one tick label, or none, among minor-tick clutter."""
    v = np.concatenate([np.ravel(x) for x in values]) if len(values) else np.empty(0)
    v = v[np.isfinite(v)]
    return "log" if v.size and v.min() > 0 and v.max() > LOG_RANGE * v.min() else "linear"


def curve_panel(ax, runs, name: str, labels=None, title: str | None = None):
    """`name` ("risk" or "energy") against time for several runs, labelled with what it is for
    their model (`functional_label`); a log axis where the values span more than LOG_RANGE."""
    labels = [_label(label) for label in (labels or [r.solver for r in runs])]
    values = [getattr(r, name) for r in runs]
    for r, v, label in zip(runs, values, labels):
        ax.plot(r.time, v, marker=".", label=label)
    ax.set_yscale(curve_scale(values))
    positive = all(np.all(v > 0) for v in values)
    ax.set(xlabel="t", ylabel=_symbol(runs[0], name) + ("" if positive else " (not all positive)"))
    ax.set_title(title or functional_label(runs[0], name), fontsize="medium")
    ax.legend(fontsize="small")
    return ax


#: the width whose band `gflow plot` draws for a run that predicts its fluctuation on its own
PLOT_WIDTH = 100


def predicted_bands(ax, runs, labels=None) -> None:
    """The band R(t) +- 2 risk_fluctuation(t) / sqrt(m) that a run storing its predicted spread
    (`fluctuation = true`, docs/fluctuations.md) gives for m neurons: for each particle run beside
    it, m its particle count; alone, m = PLOT_WIDTH. About 95% of m-neuron runs fall inside."""
    labels = labels or [r.solver for r in runs]
    widths = [(k, len(r.weights)) for k, r in enumerate(runs)
              if r.has_particles and not r.layers and r.weights is not None and r.dataset("risk_fluctuation") is None]
    for r, label in zip(runs, labels):
        sd = r.dataset("risk_fluctuation")
        if sd is None or len(sd) != len(r.time) or not np.isfinite(sd).all():
            continue
        for k, m in widths or [(None, PLOT_WIDTH)]:
            half = 2.0 * sd / np.sqrt(m)
            colour = f"C{k}" if k is not None else "grey"
            low = r.risk - half
            if ax.get_yscale() == "log":
                low = np.maximum(low, 0.5 * r.risk)   # the band below zero would leave a log axis
            ax.fill_between(r.time, low, r.risk + half, color=colour, alpha=0.15, linewidth=0,
                            label=_label(f"{label}: predicted +-2 sd for m = {m}"))
    ax.legend(fontsize="small")


def distance_panel(ax, comparisons, labels):
    """W1 (solid) and W2 (dotted) against time for each comparison (layered runs: the overall
    distances, `postprocess.compare.overall`)."""
    for k, (c, label) in enumerate(zip(comparisons, map(_label, labels))):
        t = [row["time"] for row in c.rows]
        ax.plot(t, [row["W1"] for row in c.rows], marker=".", color=f"C{k}", label=f"W1 {label}")
        ax.plot(t, [row["W2"] for row in c.rows], ls=":", color=f"C{k}", label=f"W2 {label}")
    layered = any(c.layers for c in comparisons)
    ax.set(xlabel="t", ylabel="Wasserstein distance" + (" (overall, over the layers)" if layered else ""),
           title="distance between the densities")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return ax


# ----------------------------------------------------------------------------- figures

def progress_bar(total: int, desc: str, enabled: bool | None = None):
    """A tqdm bar on stderr over `total` steps; as for `gflow run`, shown only on a terminal
    unless `enabled` says otherwise (a log or a pipe gets no carriage-return clutter). Used as
    a context manager; disabled, its `update` does nothing."""
    from tqdm import tqdm

    on = sys.stderr.isatty() if enabled is None else bool(enabled)
    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, mininterval=0.5,
                disable=not on)


def _figure(width: float, height: float, dpi: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _planes(ndim: int):
    """Density rows: one plane for 1D and 2D; for 3D the (a, w) and (w, b)-type marginals."""
    return [(0, 1)] if ndim <= 2 else [(0, 1), (1, 2)]


def depth_top(run: Run, snaps, axes=None) -> float:
    """The top of one colour scale for a layered run's depth panels: the largest marginal density
    of the parameter `axes` (indices into run.axes, >= 1; default all) in any layer over `snaps`,
    any iterable, consumed one snapshot at a time (1 where every density is 0)."""
    axes = range(1, len(run.axes)) if axes is None else axes
    top = 0.0
    for snap in snaps:
        top = max(top, *(float(depth_marginal(run, snap, k).max()) for k in axes))
    return top if top > 0 else 1.0


def _density_row(subfigure, axes, run: Run, snaps, panel, shared_scale: bool, particles: bool) -> None:
    """One row of density panels at several times: on one colour scale (1D: one y range) with
    one colour bar for the row, or each on its own."""
    if run.layers:
        vmax = depth_top(run, snaps, [panel]) if shared_scale else None
        for ax, snap in zip(axes, snaps):
            depth_panel(ax, run, snap, panel, vmax=vmax, colorbar=not shared_scale)
        label = f"density of {run.axes[panel]} per layer"
    else:
        scale = density_scale(run, snaps, panel) if shared_scale else None
        for ax, snap in zip(axes, snaps):
            density_panel(ax, run, snap, panel, particles=particles, scale=scale, colorbar=not shared_scale)
        label = density_label(run, panel)
    if shared_scale and (run.layers or len(run.axes) > 1):
        subfigure.colorbar(axes[-1].collections[0], ax=list(axes), label=label)


def run_figure(run: Run, columns: int = COLUMNS, dpi: float = 100, *, shared_scale: bool = True,
               particles: bool = True, progress: bool | None = None) -> Figure:
    """Densities at several times, f(x) against the target at those times, risk and energy.

    A layered run has one row per parameter axis: its marginal density against depth (`depth_panel`).
    Each row of densities is on one colour scale (`shared_scale`); `particles` False draws no
    particles; where energy is risk (`same_functionals`) one panel shows both. `progress`: a bar
    over the snapshots read and drawn (None: on a terminal)."""
    picks = sorted(set(np.linspace(0, len(run.time) - 1, min(columns, len(run.time))).round().astype(int)))
    model, why = network_model(run)
    panels = range(1, len(run.axes)) if run.layers else _planes(len(run.axes))
    rows = len(panels) + (model is not None)
    with progress_bar(2 * len(picks), "gflow plot", progress) as bar:
        snaps = []
        for i in picks:
            snaps.append(run.snapshot(i))
            bar.update()
        fig = _figure(3.3 * max(len(snaps), 2), 2.7 * (rows + 1), dpi)
        top, bottom = fig.subfigures(2, 1, height_ratios=[rows, 1])
        axes = top.subplots(rows, len(snaps), squeeze=False)
        for r, panel in enumerate(panels):
            _density_row(top, axes[r], run, snaps, panel, shared_scale, particles)
        if model is not None:
            for k, snap in enumerate(snaps):
                network_panel(axes[-1, k], run, snap, model)
        bar.update(len(picks))
    if same_functionals(run):
        ax = bottom.subplots()
        curve_panel(ax, [run], "risk", title=f"{functional_label(run, 'risk')} = {_symbol(run, 'energy')}"
                                             " (no weight decay, T = 0)")
        predicted_bands(ax, [run])
    else:
        risk_ax, energy_ax = bottom.subplots(1, 2)
        curve_panel(risk_ax, [run], "risk")
        predicted_bands(risk_ax, [run])
        curve_panel(energy_ax, [run], "energy")
    fig.suptitle(_label(f"{run.path}  ({run.solver})") + (f"\nno f(x) panel: {_label(why)}" if why else ""))
    return fig


def comparison_figure(runs, comparisons, dpi: float = 100, *, shared_scale: bool = True,
                      particles: bool = True) -> Figure:
    """Risk of every run on one axis, W against time for each comparison, final densities side
    by side, on one colour scale (`shared_scale`) so that their amplitudes compare."""
    labels = run_labels(runs)
    fig = _figure(3.6 * max(len(runs), 2), 2 * 2.8, dpi)
    top, bottom = fig.subfigures(2, 1)
    risk_ax, distance_ax = top.subplots(1, 2)
    curve_panel(risk_ax, runs, "risk", labels)
    predicted_bands(risk_ax, runs, labels)
    distance_panel(distance_ax, comparisons, [f"{labels[0]} vs {label}" for label in labels[1:]])
    finals = [run.snapshot(len(run.time) - 1) for run in runs]
    layered = [bool(run.layers) for run in runs]
    # one scale where the panels show one thing: all layered (the first parameter against depth) or none
    shared = shared_scale and len(set(layered)) == 1
    vmax = max(depth_top(r, [s], [1]) for r, s in zip(runs, finals)) if shared and layered[0] else None
    scale = None
    if shared and not layered[0]:
        ranges = [density_scale(r, [s]) for r, s in zip(runs, finals)]
        scale = (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))
    axes = bottom.subplots(1, len(runs), squeeze=False)[0]
    for ax, run, snap, label in zip(axes, runs, finals, labels):
        if run.layers:        # the first parameter axis against depth
            depth_panel(ax, run, snap, 1, vmax=vmax, colorbar=not shared)
        else:
            density_panel(ax, run, snap, particles=particles, scale=scale, colorbar=not shared)
        ax.set_title(f"{_label(label)}, t = {run.time[-1]:.4g}")
    if shared and (layered[0] or len(runs[0].axes) > 1):
        what = f"density of {runs[0].axes[1]} per layer" if layered[0] else density_label(runs[0])
        bottom.colorbar(axes[-1].collections[0], ax=list(axes), label=what)
    return fig


def run_labels(runs) -> list[str]:
    """Solver kinds when they tell the runs apart, else the files' folder/name."""
    kinds = [r.solver for r in runs]
    if len(set(kinds)) == len(kinds):
        return kinds
    return [f"{Path(r.path).parent.name}/{Path(r.path).name}" for r in runs]


# ----------------------------------------------------------------------------- files

def check_image_path(path) -> Path:
    path = Path(path)
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in supported:
        raise InputError(f"{path}: unknown image type {path.suffix!r} (use one of: .{', .'.join(sorted(supported))})")
    return path


def save(fig: Figure, path) -> Path:
    path = check_image_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


def ffmpeg_exe() -> str | None:
    """The ffmpeg that writes .mp4 movies: the binary of the imageio-ffmpeg wheel (a dependency
    of gflow, so that no system package is needed; its IMAGEIO_FFMPEG_EXE setting is honoured),
    else an ffmpeg on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def movie_writer(path, fps: float):
    """A Pillow GIF writer, or an H.264 ffmpeg writer for .mp4 (`ffmpeg_exe`; `_saving` points
    matplotlib at it)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix == ".mp4":
        if ffmpeg_exe() is None:
            raise InputError(f"{path}: .mp4 needs ffmpeg: pip install imageio-ffmpeg (a gflow dependency), "
                             f"or write a .gif instead")
        # h264 in yuv420p (matplotlib's default for h264): what browsers and players read
        return animation.FFMpegWriter(fps=fps, codec="h264")
    raise InputError(f"{path}: a movie is .gif or .mp4, not {suffix!r}")


@contextlib.contextmanager
def _saving(writer, fig: Figure, path: Path, dpi: float):
    """`writer.saving`, with matplotlib's ffmpeg path set to `ffmpeg_exe` for an ffmpeg writer
    (matplotlib reads it when the writer starts ffmpeg) and restored after: nothing global changes."""
    settings = {"animation.ffmpeg_path": ffmpeg_exe()} if isinstance(writer, animation.FFMpegWriter) else {}
    with rc_context(settings), writer.saving(fig, str(path), dpi):
        yield


def depth_scale(run: Run, frames) -> float:
    """The top of a layered run's movie colour scale: `depth_top` over every parameter and the
    snapshots `frames`, read one at a time, so that one colour means one density throughout."""
    return depth_top(run, map(run.snapshot, frames))


def movie_frames(run: Run, max_frames: int = 200) -> range:
    """The snapshots a movie shows: all of them, or every k-th for at most `max_frames`."""
    return range(0, len(run.time), -(-len(run.time) // max_frames))


def movie_figure(run: Run, dpi: float = 100) -> Figure:
    """The figure a movie's frames are drawn on, with fixed margins: a layout engine would
    measure every frame's text again."""
    if run.layers:
        return _figure(3.2 * (len(run.axes) - 1) + 1.0, 3.4, dpi, layout=None)
    return _figure(5.0, 4.0, dpi, layout=None)


def _depth_frame(fig: Figure, run: Run, snap: Snapshot, top: float | None) -> None:
    """A layered run's frame: a row of depth panels, one per parameter axis, one colour bar
    (`top` None: this frame's own top, shared by its panels)."""
    count = len(run.axes) - 1
    if top is None:
        top = depth_top(run, [snap])
    fig.subplots_adjust(left=0.75 / (3.2 * count + 1.0), right=0.86, bottom=0.15, top=0.88, wspace=0.35)
    for k in range(1, count + 1):
        ax = depth_panel(fig.add_subplot(1, count, k), run, snap, k, vmax=top, colorbar=False)
    fig.colorbar(ax.collections[-1], cax=fig.add_axes((0.89, 0.15, 0.02, 0.73)), label="density per layer")


def draw_frames(fig: Figure, run: Run, frames, *, shared_scale: bool = True, particles: bool = True,
                progress: bool | None = None):
    """Draw a movie's frames on `fig` one after another, yielding each snapshot index once its
    frame is drawn, for the caller to grab (`write_movie`; a test reads the colour limits back).

    With `shared_scale` every frame is drawn on one colour scale (1D: one y range) found in a
    first pass over the frames, one snapshot read at a time (`density_scale`, `depth_top`),
    so that amplitudes can be read across the movie; without, each frame has its own.
    The density is the first-plane marginal in 3D, a layered run's every parameter against depth.
    `progress`: a bar over both passes (None: on a terminal)."""
    frames = list(frames)
    with progress_bar(len(frames) * (2 if shared_scale else 1), "gflow movie", progress) as bar:
        def read(i: int) -> Snapshot:
            snap = run.snapshot(i)
            bar.update()
            return snap

        scale = top = None
        if shared_scale and run.layers:
            top = depth_top(run, map(read, frames))
        elif shared_scale:
            scale = density_scale(run, map(read, frames))
        for i in frames:
            snap = read(i)
            fig.clear()
            if run.layers:
                _depth_frame(fig, run, snap, top)
            else:
                fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.91)
                density_panel(fig.add_subplot(), run, snap, particles=particles, scale=scale)
            yield i


def write_movie(run: Run, path, fps: float = 5, dpi: float = 100, max_frames: int = 200, *,
                shared_scale: bool = True, particles: bool = True, progress: bool | None = None) -> Path:
    """An animation of the density (for 3D its first-plane marginal), one frame per snapshot
    (`movie_frames`), on one colour scale (`draw_frames`); for a layered run, of every
    parameter's marginal against depth. A .gif through Pillow, an .mp4 through ffmpeg."""
    path = Path(path)
    writer = movie_writer(path, fps)
    fig = movie_figure(run, dpi)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _saving(writer, fig, path, dpi):
            for _ in draw_frames(fig, run, movie_frames(run, max_frames), shared_scale=shared_scale,
                                 particles=particles, progress=progress):
                writer.grab_frame()
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path
