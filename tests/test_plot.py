"""`gflow plot`: a figure and a movie for 1D, 2D and 3D grid runs and for particle runs.

Each image must have the size its layout promises and must not be blank: the variance of
its grey levels stays above a floor that an empty or single-colour canvas cannot reach.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gflow.app.cli import main
from gflow.postprocess.plot import comparison_figure, save
from gflow.snapshots import open_run
from runfiles import CASE_1D, CASE_2D, write_particle_run
from conftest import TWO_LAYER_2D

DPI = 50
#: grey-level variance of a figure with drawn panels is ~0.05-0.1; a blank canvas has 0
VARIANCE_FLOOR = 0.01

ONE_D = """
[model]
kind = "potential"
axes = ["x"]
potential = "0.5*x**2"
[initial]
distribution = "gaussian"
mean = [1.0]
std = [0.5]
[grid]
bounds = [[-4.0, 4.0]]
cells = [32]
[time]
end = 0.5
snapshots = 3
"""

THREE_D = """
[model]
kind = "two_layer"
activation = "tanh"
bias = true
[target]
neurons = [{ a = 1.5, w = 2.0, b = 0.3 }]
[data]
nodes = 8
[initial]
distribution = "gaussian"
mean = [0.0, 0.0, 0.0]
std = [0.5, 0.8, 0.5]
[grid]
bounds = [[-3.0, 3.0], [-4.0, 4.0], [-2.0, 2.0]]
cells = [10, 12, 8]
[time]
end = 0.2
snapshots = 3
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> (run file, rows of the figure): fv runs of small cases and synthetic particle runs."""
    d = tmp_path_factory.mktemp("plot")
    out = {}
    for name, text, extra, rows in [("1d", ONE_D, [], 2), ("2d", TWO_LAYER_2D, ["--set", "grid.cells=[16,16]"], 3),
                                    ("3d", THREE_D, [], 4)]:
        (d / f"{name}.toml").write_text(text)
        assert main(["run", str(d / f"{name}.toml"), "-o", str(d / name), *extra]) == 0
        out[name] = (d / name / "fv.h5", rows)
    rng = np.random.default_rng(0)
    drift = np.array([0.0, 0.5, 1.0])[:, None, None]
    out["particles_2d"] = (write_particle_run(d / "p2.h5", [[-4.0, 4.0], [-4.0, 4.0]], (16, 16),
                                              rng.normal(0.0, 0.7, size=(3, 400, 2)) + drift,
                                              case_text=CASE_2D), 3)
    out["particles_1d"] = (write_particle_run(d / "p1.h5", [[-6.0, 6.0]], (32,), rng.normal(size=(3, 300, 1)) + drift,
                                              case_text=CASE_1D, axes=("x",)), 2)
    return out


def grey_variance(image: Image.Image) -> float:
    grey = np.asarray(image.convert("L"), dtype=float) / 255.0
    return float(grey.var())


@pytest.mark.parametrize("name", ["1d", "2d", "3d", "particles_2d", "particles_1d"])
def test_plot_writes_a_figure_and_a_movie(runs, name, tmp_path, capsys):
    path, rows = runs[name]
    png, gif = tmp_path / "run.png", tmp_path / "run.gif"
    assert main(["plot", str(path), "-o", str(png), "--movie", str(gif), "--dpi", str(DPI)]) == 0
    assert capsys.readouterr().out.split() == ["wrote", str(png), "wrote", str(gif)]
    columns = min(4, len(open_run(path).time))
    with Image.open(png) as image:
        assert image.size == (round(3.3 * columns * DPI), round(2.7 * rows * DPI))
        assert grey_variance(image) > VARIANCE_FLOOR
    with Image.open(gif) as movie:
        assert movie.size == (5 * DPI, 4 * DPI)
        assert movie.n_frames == len(open_run(path).time) > 1
        movie.seek(movie.n_frames - 1)
        assert grey_variance(movie) > VARIANCE_FLOOR


def test_plot_default_output_is_beside_the_run(runs, tmp_path, capsys):
    source, _ = runs["1d"]
    path = tmp_path / "one.h5"
    path.write_bytes(source.read_bytes())
    assert main(["plot", str(path), "--dpi", str(DPI)]) == 0
    assert (tmp_path / "one.png").stat().st_size > 5_000


def test_comparison_figure_of_a_grid_and_a_particle_run(runs, tmp_path):
    grid_run, particle_run = open_run(runs["2d"][0]), open_run(runs["particles_2d"][0])
    from gflow.postprocess.compare import compare_runs
    path = save(comparison_figure([grid_run, particle_run], [compare_runs(grid_run, particle_run)], dpi=DPI),
                tmp_path / "c.png")
    with Image.open(path) as image:
        assert image.size == (round(3.6 * 2 * DPI), round(2 * 2.8 * DPI))
        assert grey_variance(image) > VARIANCE_FLOOR


def test_mp4_needs_no_system_ffmpeg(runs, tmp_path, monkeypatch, capsys):
    """.mp4 is written by imageio-ffmpeg's binary: with no ffmpeg on PATH it still works."""
    monkeypatch.setenv("PATH", str(tmp_path))          # no system ffmpeg reachable
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    path, _ = runs["1d"]
    movie = tmp_path / "out.mp4"
    assert main(["plot", str(path), "-o", str(tmp_path / "f.png"), "--movie", str(movie), "--dpi", "30"]) == 0
    head = movie.read_bytes()[:12]
    assert movie.stat().st_size > 1000 and head[4:8] == b"ftyp"       # an ISO base media (MP4) file


def test_unknown_movie_type_is_refused_before_any_work(runs, tmp_path, capsys):
    path, _ = runs["1d"]
    rc = main(["plot", str(path), "-o", str(tmp_path / "f.png"), "--movie", str(tmp_path / "out.avi"), "--dpi", "30"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "out.avi" in err
    assert not (tmp_path / "f.png").exists()      # refused before any work


def test_unknown_image_type_is_bad_input(runs, tmp_path, capsys):
    path, _ = runs["1d"]
    assert main(["plot", str(path), "-o", str(tmp_path / "f.xyz")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
