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
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gflow.errors import InputError
from gflow.run_file import printable
from gflow.snapshots import Run, Snapshot
from gflow.postprocess.layers import depth_marginal
from gflow.postprocess.runs import cell_masses, faces, grid_points, marginal

#: particles drawn over a density at most (a fixed subsample beyond)
MAX_DRAWN = 3000
#: snapshot columns in `gflow plot`
COLUMNS = 4
#: a layered run's depth axis is ticked at every layer up to this many layers
MAX_DEPTH_TICKS = 8


def _label(text) -> str:
    """Text from a run file, safe to draw: printable, short, and literal (no mathtext)."""
    return printable(text, 120).replace("$", r"\$")


# ----------------------------------------------------------------------------- panels

def density_panel(ax, run: Run, snap: Snapshot, plane=(0, 1), particles: bool = True):
    """The density at one time: a curve (1D), a heatmap (2D) or the 2D marginal on `plane` (3D+).

    Particles, where the run has them, are drawn over it (projected onto the plane).
    """
    f = faces(run)
    if len(run.axes) == 1:
        ax.plot(0.5 * (f[0][1:] + f[0][:-1]), snap.density, color="C0")
        if particles and snap.positions is not None:
            ax.plot(_subsample(snap.positions)[:, 0], np.zeros(min(len(snap.positions), MAX_DRAWN)), "|",
                    color="C3", alpha=0.4, markersize=8)
        ax.set(xlabel=run.axes[0], ylabel="density", xlim=(f[0][0], f[0][-1]))
    else:
        i, j = plane
        values = snap.density if len(run.axes) == 2 else marginal(snap.density, f, plane)
        mesh = ax.pcolormesh(f[i], f[j], values.T, cmap="viridis", shading="flat", rasterized=True)
        label = "density" if len(run.axes) == 2 else f"marginal density ({run.axes[i]}, {run.axes[j]})"
        ax.figure.colorbar(mesh, ax=ax, label=label)
        if particles and snap.positions is not None:
            drawn = _subsample(snap.positions)
            ax.scatter(drawn[:, i], drawn[:, j], s=1.0, c="white", alpha=0.4, linewidths=0)
        ax.set(xlabel=run.axes[i], ylabel=run.axes[j], xlim=(f[i][0], f[i][-1]), ylim=(f[j][0], f[j][-1]))
    ax.set_title(f"{_label(run.solver)}, t = {snap.time:.4g}")
    return ax


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
        return snap.positions, np.ones(len(snap.positions)) if conventional else run.weights
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


def curve_panel(ax, runs, name: str, labels=None):
    """`name` ("risk" or "energy") against time for several runs; log scale when positive."""
    labels = [_label(label) for label in (labels or [r.solver for r in runs])]
    values = [getattr(r, name) for r in runs]
    for r, v, label in zip(runs, values, labels):
        ax.plot(r.time, v, marker=".", label=label)
    positive = all(np.all(v > 0) for v in values)
    ax.set_yscale("log" if positive else "linear")
    ax.set(xlabel="t", ylabel=name if positive else f"{name} (linear: not all positive)", title=f"{name}")
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

def _figure(width: float, height: float, dpi: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _planes(ndim: int):
    """Density rows: one plane for 1D and 2D; for 3D the (a, w) and (w, b)-type marginals."""
    return [(0, 1)] if ndim <= 2 else [(0, 1), (1, 2)]


def run_figure(run: Run, columns: int = COLUMNS, dpi: float = 100) -> Figure:
    """Densities at several times, f(x) against the target at those times, risk and energy.

    A layered run has one row per parameter axis: its marginal density against depth (`depth_panel`)."""
    picks = sorted(set(np.linspace(0, len(run.time) - 1, min(columns, len(run.time))).round().astype(int)))
    snaps = [run.snapshot(i) for i in picks]
    model, why = network_model(run)
    panels = range(1, len(run.axes)) if run.layers else _planes(len(run.axes))
    rows = len(panels) + (model is not None)
    fig = _figure(3.3 * max(len(snaps), 2), 2.7 * (rows + 1), dpi)
    top, bottom = fig.subfigures(2, 1, height_ratios=[rows, 1])
    axes = top.subplots(rows, len(snaps), squeeze=False)
    for r, panel in enumerate(panels):
        for k, snap in enumerate(snaps):
            if run.layers:
                depth_panel(axes[r, k], run, snap, panel)
            else:
                density_panel(axes[r, k], run, snap, panel)
    if model is not None:
        for k, snap in enumerate(snaps):
            network_panel(axes[-1, k], run, snap, model)
    risk_ax, energy_ax = bottom.subplots(1, 2)
    curve_panel(risk_ax, [run], "risk")
    predicted_bands(risk_ax, [run])
    curve_panel(energy_ax, [run], "energy")
    fig.suptitle(_label(f"{run.path}  ({run.solver})") + (f"\nno f(x) panel: {_label(why)}" if why else ""))
    return fig


def comparison_figure(runs, comparisons, dpi: float = 100) -> Figure:
    """Risk of every run on one axis, W against time for each comparison, final densities side by side."""
    labels = run_labels(runs)
    fig = _figure(3.6 * max(len(runs), 2), 2 * 2.8, dpi)
    top, bottom = fig.subfigures(2, 1)
    risk_ax, distance_ax = top.subplots(1, 2)
    curve_panel(risk_ax, runs, "risk", labels)
    predicted_bands(risk_ax, runs, labels)
    distance_panel(distance_ax, comparisons, [f"{labels[0]} vs {label}" for label in labels[1:]])
    for ax, run, label in zip(bottom.subplots(1, len(runs), squeeze=False)[0], runs, labels):
        if run.layers:        # the first parameter axis against depth
            depth_panel(ax, run, run.snapshot(len(run.time) - 1), 1)
        else:
            density_panel(ax, run, run.snapshot(len(run.time) - 1))
        ax.set_title(f"{_label(label)}, t = {run.time[-1]:.4g}")
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


def movie_writer(path, fps: float):
    """A Pillow GIF writer, or ffmpeg for .mp4 where it is installed."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise InputError(f"{path}: .mp4 needs ffmpeg, which is not installed; write a .gif instead")
        return animation.FFMpegWriter(fps=fps)
    raise InputError(f"{path}: a movie is .gif or .mp4, not {suffix!r}")


def depth_scale(run: Run, frames) -> float:
    """The top of a layered run's movie colour scale: the largest marginal density of any
    parameter in any layer over the frames, so that one colour means one density throughout."""
    top = 0.0
    for i in frames:
        snap = run.snapshot(i)
        top = max(top, *(float(depth_marginal(run, snap, k).max()) for k in range(1, len(run.axes))))
    return top if top > 0 else 1.0


def _write_depth_movie(run: Run, path: Path, writer, frames, dpi: float) -> None:
    """A layered run's movie: a row of depth panels, one per parameter axis, one colour scale."""
    top = depth_scale(run, frames)
    count = len(run.axes) - 1
    fig = _figure(3.2 * count + 1.0, 3.4, dpi, layout=None)
    with writer.saving(fig, str(path), dpi):
        for i in frames:
            fig.clear()
            fig.subplots_adjust(left=0.75 / (3.2 * count + 1.0), right=0.86, bottom=0.15, top=0.88, wspace=0.35)
            snap = run.snapshot(i)
            for k in range(1, count + 1):
                ax = depth_panel(fig.add_subplot(1, count, k), run, snap, k, vmax=top, colorbar=False)
            fig.colorbar(ax.collections[-1], cax=fig.add_axes((0.89, 0.15, 0.02, 0.73)), label="density per layer")
            writer.grab_frame()


def write_movie(run: Run, path, fps: float = 5, dpi: float = 100, max_frames: int = 200) -> Path:
    """An animation of the density (for 3D its first-plane marginal), one frame per snapshot;
    for a layered run, of every parameter's marginal against depth (`_write_depth_movie`)."""
    path = Path(path)
    writer = movie_writer(path, fps)
    frames = range(0, len(run.time), -(-len(run.time) // max_frames))
    if run.layers:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_depth_movie(run, path, writer, frames, dpi)
        except OSError as exc:
            raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
        return path
    # fixed margins: a layout engine would measure every frame's text again
    fig = _figure(5.0, 4.0, dpi, layout=None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with writer.saving(fig, str(path), dpi):
            for i in frames:
                fig.clear()
                fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.91)
                density_panel(fig.add_subplot(), run, run.snapshot(i))
                writer.grab_frame()
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path
