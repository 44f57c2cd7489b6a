"""Plots whose amplitudes can be read: one colour scale over a movie's frames and over a
figure's panels (read back from the drawn artists), particles that leave the density visible,
linear axes over small ranges, equal aspect for positions, functionals named for what they are,
and progress bars on long work (`gflow.postprocess.plot`)."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection, QuadMesh

from gflow.app.cli import main
from gflow.postprocess.compare import compare_runs
from gflow.postprocess.plot import (LOG_RANGE, curve_scale, draw_frames, functional_label, movie_figure,
                                    run_figure, same_functionals)
from gflow.snapshots import open_run
from conftest import TWO_LAYER_2D
from runfiles import CASE_1D, CASE_2D, write_particle_run

DPI = 40

#: a gaussian drawn to the minimum of 0.5 x^2: its peak moves and grows between frames
POTENTIAL_1D = CASE_1D.replace("mean = [0.0]", "mean = [1.0]").replace("std = [1.0]", "std = [0.3]") \
    .replace("snapshots = 3", "snapshots = 4")

#: a spreading gaussian in 2D: its peak falls by far more than round-off between frames
DISK_2D = """
[model]
kind = "potential"
axes = ["x", "y"]
potential = "0"
interaction = "0.5*r**2 - log(r)"
[initial]
distribution = "gaussian"
mean = [0.0, 0.0]
std = [0.3, 0.3]
[grid]
bounds = [[-2.0, 2.0], [-2.0, 2.0]]
cells = [20, 20]
[time]
end = 1.0
snapshots = 4
"""

LANGEVIN = TWO_LAYER_2D + """
[regularization]
weight_decay = 1.0
temperature = 0.1
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("readable")
    out = {}
    for name, text in [("potential_1d", POTENTIAL_1D), ("disk", DISK_2D), ("two_layer", TWO_LAYER_2D),
                       ("langevin", LANGEVIN)]:
        (d / f"{name}.toml").write_text(text)
        extra = [] if name in ("potential_1d", "disk") else ["--set", "grid.cells=[16,16]"]
        assert main(["run", str(d / f"{name}.toml"), "-o", str(d / name), *extra]) == 0
        out[name] = open_run(d / name / "fv.h5")
    rng = np.random.default_rng(1)
    positions = rng.normal(0.0, 0.6, size=(3, 500, 2)) * np.array([1.0, 0.6, 0.3])[:, None, None]
    out["particles"] = open_run(write_particle_run(d / "p.h5", [[-4.0, 4.0], [-4.0, 4.0]], (16, 16), positions,
                                                   case_text=CASE_2D))
    return out


def _meshes(ax):
    return [c for c in ax.collections if isinstance(c, QuadMesh)]


def _movie_limits(run, **options):
    """The colour limits (2D) or y range (1D) of every movie frame, read back from the figure."""
    fig = movie_figure(run, DPI)
    limits = []
    for _ in draw_frames(fig, run, range(len(run.time)), progress=False, **options):
        ax = fig.axes[0]
        limits.append(_meshes(ax)[0].get_clim() if _meshes(ax) else ax.get_ylim())
    return np.array(limits, dtype=float)


@pytest.mark.parametrize("name", ["potential_1d", "disk", "particles"])
def test_movie_frames_share_one_colour_scale(runs, name):
    run = runs[name]
    shared = _movie_limits(run)
    assert len(shared) == len(run.time) >= 3
    assert np.ptp(shared, axis=0).max() == 0.0                        # one scale for every frame
    top = max(float(run.snapshot(i).density.max()) for i in range(len(run.time)))
    expected = top * (1.05 if len(run.axes) == 1 else 1.0)            # a 1D y range has a 5 % headroom
    assert shared[0, 1] == pytest.approx(expected, rel=1e-12)
    own = _movie_limits(run, shared_scale=False)                      # the option off: each its own
    assert np.ptp(own[:, 1]) > 0.05 * own[:, 1].max()


def test_figure_row_shares_one_colour_scale_and_one_colour_bar(runs):
    run = runs["disk"]
    fig = run_figure(run, columns=4, dpi=DPI, progress=False)
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if _meshes(ax) and ax.get_label() != "<colorbar>"]
    limits = {_meshes(ax)[0].get_clim() for ax in panels}
    assert len(panels) == 4 and len(limits) == 1
    top = max(float(run.snapshot(i).density.max()) for i in range(len(run.time)))
    assert limits.pop() == pytest.approx((0.0, top), rel=1e-12)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    own = run_figure(run, columns=4, dpi=DPI, shared_scale=False, progress=False)
    own_panels = [ax for ax in own.axes if _meshes(ax) and ax.get_label() != "<colorbar>"]
    assert len({_meshes(ax)[0].get_clim() for ax in own_panels}) == 4
    assert sum(ax.get_label() == "<colorbar>" for ax in own.axes) == 4


def test_particles_are_faint_small_dots_or_off(runs):
    run = runs["particles"]
    fig = run_figure(run, columns=3, dpi=DPI, progress=False)
    dots = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 3
    for c in dots:
        assert c.get_alpha() <= 0.7 and float(np.max(c.get_sizes())) <= 4.0
        assert np.all(np.asarray(c.get_linewidths()) == 0.0)          # no edges to thicken the cloud
    bare = run_figure(run, columns=3, dpi=DPI, particles=False, progress=False)
    assert not [c for ax in bare.axes for c in ax.collections if isinstance(c, PathCollection)]


@pytest.mark.parametrize("values, scale", [([np.linspace(1.0, 1.1, 5)], "linear"),
                                           ([np.array([1.0, LOG_RANGE * 0.99])], "linear"),
                                           ([np.array([1.0, 1e-3])], "log"),
                                           ([np.array([1.0, 1e-3]), np.array([-1.0, 2.0])], "linear"),
                                           ([np.array([1.0, np.nan, 1e-3])], "log")])
def test_curve_scale_is_log_only_over_a_wide_positive_range(values, scale):
    assert curve_scale(values) == scale


def _curve_axes(fig):
    return [ax for ax in fig.axes if ax.get_xlabel() == "t"]


def test_positions_get_equal_aspect_and_network_parameters_do_not(runs):
    disk = run_figure(runs["disk"], columns=2, dpi=DPI, progress=False)
    net = run_figure(runs["two_layer"], columns=2, dpi=DPI, progress=False)
    assert {ax.get_aspect() for ax in disk.axes if _meshes(ax) and ax.get_label() != "<colorbar>"} == {1.0}
    assert {ax.get_aspect() for ax in net.axes if _meshes(ax) and ax.get_label() != "<colorbar>"} == {"auto"}


def test_functionals_are_named_and_not_repeated(runs):
    disk, net, langevin = runs["disk"], runs["two_layer"], runs["langevin"]
    assert "energy" in functional_label(disk, "risk") and "W" in functional_label(disk, "risk")
    assert "risk" not in functional_label(disk, "risk")
    assert functional_label(net, "risk").startswith("risk")
    assert r"T\int \rho\log\rho" in functional_label(langevin, "energy")
    assert "lambda" in functional_label(langevin, "energy")
    # T = 0, no weight decay: energy is the risk, one panel; Langevin: two different curves
    assert same_functionals(net) and not same_functionals(langevin)
    assert len(_curve_axes(run_figure(net, columns=2, dpi=DPI, progress=False))) == 1
    curves = _curve_axes(run_figure(langevin, columns=2, dpi=DPI, progress=False))
    assert [ax.get_ylabel() for ax in curves] == [r"risk $R$", r"energy $E$"]
    titles = [ax.get_title() for ax in _curve_axes(run_figure(disk, columns=2, dpi=DPI, progress=False))]
    assert len(titles) == 1 and "energy" in titles[0] and "risk" not in titles[0]


def test_progress_bars_on_plot_movie_and_compare(runs, capsys):
    run = runs["disk"]
    run_figure(run, columns=2, dpi=DPI, progress=True)
    for _ in draw_frames(movie_figure(run, DPI), run, range(len(run.time)), progress=True):
        pass
    compare_runs(run, run, bar=True)
    err = capsys.readouterr().err
    assert "gflow plot" in err and "gflow movie" in err and "gflow compare" in err
    run_figure(run, columns=2, dpi=DPI, progress=False)
    compare_runs(run, run, progress=False)
    assert capsys.readouterr().err == ""


def test_cli_options_turn_the_shared_scale_and_the_particles_off(runs, tmp_path, capsys):
    run = runs["particles"]
    figure, movie = tmp_path / "f.png", tmp_path / "m.gif"
    assert main(["plot", str(run.path), "-o", str(figure), "--movie", str(movie), "--dpi", "30",
                 "--own-scale", "--no-particles"]) == 0
    assert figure.stat().st_size > 0 and movie.stat().st_size > 0
    assert main(["compare", str(run.path), str(run.path), "--plot", str(tmp_path / "c.png"), "--own-scale"]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
