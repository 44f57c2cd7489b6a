"""`gflow compare` and `gflow plot` for layered (resnet) runs.

Nothing moves along a layered run's first axis "layer" (the depth tau_l = l/L), so distances
are per layer over the parameter axes, and overall the distance between the joint measures
mu = sum_l (1/L) delta_{tau_l} x rho_l under plans that keep every layer's mass in its layer:
W_p^p(mu_A, mu_B) = (1/L) sum_l W_p^p(rho_l^A, rho_l^B). A translation by s moves a layer
exactly |s| in W1 and W2 (as in test_compare.py), which fixes the synthetic cases' values.
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from gflow.app.cli import main
from gflow.grids import CartesianGrid, gaussian_cell_average
from gflow.postprocess.compare import compare_runs, table
from gflow.postprocess.layers import depth_marginal
from gflow.postprocess.plot import _neurons, depth_scale, network_model
from gflow.postprocess.runs import faces
from gflow.snapshots import Observation, SnapshotWriter, open_run
from conftest import check_snapshot

DPI = 40
#: grey-level variance of a figure with drawn panels; a blank canvas has 0 (as in test_plot.py)
VARIANCE_FLOOR = 0.01
LAYERS, M = 3, 1000

#: the resnet example case of issue 17 (r1.toml), on a smaller grid, fewer particles, a shorter time
CASE = f"""
name = "r1_small"
[model]
kind = "resnet"
activation = "tanh"
layers = {LAYERS}
[target]
expression = "2*x"
[data]
distribution = "uniform"
nodes = 16
[initial]
distribution = "gaussian"
mean = [0.0, 0.5]
std = [0.3, 0.3]
[grid]
bounds = [[-2, 2], [-2, 2]]
cells = [16, 16]
[time]
end = 0.5
snapshots = 3
[[solvers]]
kind = "fv"
[[solvers]]
kind = "particle"
particles = {M}
lr = 0.01
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """fv and particle runs of CASE (one `gflow run`, which also writes the compare report)."""
    d = tmp_path_factory.mktemp("resnet")
    (d / "case.toml").write_text(CASE)
    assert main(["run", str(d / "case.toml"), "-o", str(d / "out")]) == 0
    for name in ("fv", "particle"):
        check_snapshot(d / "out" / f"{name}.h5")
    return {"fv": d / "out" / "fv.h5", "particle": d / "out" / "particle.h5", "report": d / "out" / "compare.txt"}


def json_compare(a, b, capsys) -> dict:
    assert main(["compare", str(a), str(b), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------------------- synthetic layered runs

BOX, CELLS = [[-4.0, 4.0], [-4.0, 4.0]], (16, 16)
SYNTHETIC = """
[model]
kind = "resnet"
activation = "tanh"
layers = {layers}
[target]
expression = "2*x"
[initial]
distribution = "gaussian"
mean = [0.0, 0.0]
std = [0.6, 0.6]
[grid]
bounds = [[-4.0, 4.0], [-4.0, 4.0]]
cells = [16, 16]
[time]
end = 1.0
snapshots = 1
"""


def gaussian(mean) -> np.ndarray:
    return gaussian_cell_average(CartesianGrid(BOX, CELLS), mean, [0.6, 0.6])


def write_layered(path, layers, density=None, positions=None, weights=None):
    """A layered run of one snapshot: `density` (L, 16, 16) of per-layer densities, or particles
    `positions` (L, M, 2) with one layer's `weights` (M,), binned onto the grid per layer."""
    grid = CartesianGrid(BOX, CELLS)
    depths = np.arange(layers) / layers
    kind = "fv" if positions is None else "particle"
    n = None if positions is None else positions.shape[1]
    joint = None if positions is None else np.tile(weights, layers) / layers
    writer = SnapshotWriter(path, case_text=SYNTHETIC.format(layers=layers), solver=kind, axes=("layer", "a", "w"),
                            coordinates=(depths, *grid.centres), n_particles=n, weights=joint, layered=True)
    flat = None
    if positions is not None:
        f = faces_of(grid)
        density = np.stack([np.histogramdd(p, bins=f, weights=weights)[0] / grid.cell_volume for p in positions])
        flat = np.column_stack([np.repeat(depths, n), positions.reshape(-1, 2)])
    writer.append(0.0, Observation(density, risk=0.5, energy=0.5, mass=1.0, positions=flat))
    return path


def faces_of(grid):
    return [np.linspace(lo, hi, c + 1) for (lo, hi), c in zip(BOX, CELLS)]


def test_layer_masses_alike_give_no_depth_distance(tmp_path):
    # particles on the grid run's cell centres with its cell masses: layer 0 as the grid has it,
    # layer 1 shifted by two cells (1.0) in a. The old joint transport saw W1[layer] = 1/(4L)
    # (each grid layer spread over its depth cell) and moved mass across layers.
    g = gaussian([0.0, 0.0])
    grid_run = write_layered(tmp_path / "g.h5", 2, density=np.stack([g, g]))
    centres = np.stack([c.ravel() for c in np.meshgrid(*CartesianGrid(BOX, CELLS).centres, indexing="ij")], axis=1)
    weights = (g * CartesianGrid(BOX, CELLS).cell_volume).ravel()
    particles = write_layered(tmp_path / "p.h5", 2, positions=np.stack([centres, centres + [1.0, 0.0]]),
                              weights=weights / weights.sum())
    c = compare_runs(open_run(grid_run), open_run(particles))
    row = c.rows[0]
    assert [layer["W1"] for layer in row["layers"]] == pytest.approx([0.0, 1.0], abs=1e-9)
    # W2 is the root of the plan's cost: its round-off (1e-12) shows as 1e-6
    assert [layer["W2"] for layer in row["layers"]] == pytest.approx([0.0, 1.0], abs=1e-5)
    # a marginal's W1 reads the grid's cells as uniform, the particles as points: a cell's
    # uniform mass against its centre is width / 4 = 0.125 apart; shifted by 1.0, exactly 1.0
    assert [layer["marginal_W1_a"] for layer in row["layers"]] == pytest.approx([0.125, 1.0], abs=1e-9)
    assert [layer["marginal_W1_w"] for layer in row["layers"]] == pytest.approx([0.125, 0.125], abs=1e-9)
    # overall: the mean of W1, the root mean square of W2
    assert row["W1"] == pytest.approx(0.5, abs=1e-9) and row["W2"] == pytest.approx(np.sqrt(0.5), abs=1e-7)
    assert c.axes == ("a", "w") and not any("layer" in key for key in row if key != "layers")
    assert "W1[layer]" not in table(c) and "L1[layer]" not in table(c)


def test_swapped_layers_are_apart_by_the_shift(tmp_path):
    # A's layers (g0, g1), B's (g1, g0), g1 = g0 moved by 1.0 in w: every layer is 1.0 apart; a joint
    # plan could swap the layers for |delta tau| = 0.5 instead
    g0, g1 = gaussian([0.0, 0.0]), gaussian([0.0, 1.0])
    a = write_layered(tmp_path / "a.h5", 2, density=np.stack([g0, g1]))
    b = write_layered(tmp_path / "b.h5", 2, density=np.stack([g1, g0]))
    row = compare_runs(open_run(a), open_run(b)).rows[0]
    # 1.0 up to the tail the box [-4, 4] cuts off the shifted Gaussian (5 sigma: 3e-7 of its mass)
    assert [layer["W1"] for layer in row["layers"]] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert row["W1"] == pytest.approx(1.0, abs=1e-5) and row["W2"] == pytest.approx(1.0, abs=1e-5)
    assert row["marginal_W1_w"] == pytest.approx(1.0, abs=1e-5) and row["marginal_W1_a"] == pytest.approx(0.0, abs=1e-9)


def test_runs_of_other_layer_counts_are_refused(tmp_path, capsys):
    g = gaussian([0.0, 0.0])
    a = write_layered(tmp_path / "a.h5", 2, density=np.stack([g, g]))
    b = write_layered(tmp_path / "b.h5", 3, density=np.stack([g, g, g]))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer by layer" in err


# ----------------------------------------------------------------------------- real runs

@pytest.mark.parametrize("name", ["fv", "particle"])
def test_per_layer_distances_between_a_run_and_itself_are_zero(runs, name, capsys):
    out = json_compare(runs[name], runs[name], capsys)
    assert out["layers"]["count"] == LAYERS and out["axes"] == ["a", "w"]
    assert out["layers"]["depths"] == pytest.approx(np.arange(LAYERS) / LAYERS, abs=1e-15)
    for row in out["rows"]:
        assert row["risk_diff"] == 0.0
        for d in [row, *row["layers"]]:
            assert d["L1"] == 0.0 and d["L2"] == 0.0
            assert d["W1"] < 1e-12 and d["W2"] < 1e-7
            assert all(v == 0.0 for k, v in d.items() if k.startswith("marginal_"))
        assert [d["layer"] for d in row["layers"]] == list(range(LAYERS))


def test_grid_and_particles_of_one_case_agree_per_layer(runs, capsys):
    out = json_compare(runs["fv"], runs["particle"], capsys)
    assert out["methods"]["W"] == "emd" and f"B's {M} particles" in out["methods"]["W_description"]
    assert len(out["rows"]) == 3
    for row in out["rows"]:
        # M random particles per layer against the grid: W1 of 1D marginals of an M-sample of
        # N(m, 0.3^2) is ~0.8 sigma / sqrt(M) = 0.008 (measured <= 0.015); allow 4 sigma / sqrt(M)
        assert abs(row["risk_diff"]) < 2e-3 * row["risk_a"]
        for d in row["layers"]:
            assert d["marginal_W1_a"] < 0.04 and d["marginal_W1_w"] < 0.04
            # the grid's cell masses sit at the cell centres: W1 within the stated bound plus sampling
            assert d["W1"] < d["W_bound"] + 0.04
        # overall: the mean over layers, W2 and L2 the root mean square
        for key in ("W1", "L1", "marginal_W1_a", "marginal_L1_w"):
            assert row[key] == pytest.approx(np.mean([d[key] for d in row["layers"]]), rel=1e-12)
        for key in ("W2", "L2"):
            assert row[key] == pytest.approx(np.sqrt(np.mean([d[key] ** 2 for d in row["layers"]])), rel=1e-12)
        assert not any("layer" in key for key in row if key != "layers")


def test_table_csv_and_report_of_layered_runs(runs, capsys, tmp_path):
    assert main(["compare", str(runs["fv"]), str(runs["particle"]), "--csv", str(tmp_path / "c.csv"),
                 "--plot", str(tmp_path / "c.png")]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[2].startswith(f"layers: {LAYERS}, at depths 0, 0.3333, 0.6667") and lines[3].startswith("overall:")
    assert "overall" in lines and "W1[layer]" not in text
    start = lines.index("per layer: W1 (rows: layers, columns: times)")
    assert lines[start + 1].split()[:2] == ["layer", "depth"] and len(lines[start + 2:start + 2 + LAYERS]) == LAYERS
    last = lines.index("per layer at t = 0.5 (the last common time)")
    assert [line.split()[0] for line in lines[last + 2:last + 2 + LAYERS]] == list(map(str, range(LAYERS)))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "c.csv").read_text())))
    assert len(rows) == 3 * (1 + LAYERS)
    assert [r["layer"] for r in rows[:1 + LAYERS]] == ["overall", *map(str, range(LAYERS))]
    assert rows[0]["risk_a"] != "" and rows[1]["risk_a"] == "" and float(rows[2]["depth"]) == pytest.approx(1 / 3)
    assert (tmp_path / "c.png").stat().st_size > 10_000
    # the report `gflow run` wrote for the two solvers holds the same tables
    report = runs["report"].read_text()
    assert "per layer: W1" in report and "W1[layer]" not in report


def grey_variance(image: Image.Image) -> float:
    return float((np.asarray(image.convert("L"), dtype=float) / 255.0).var())


@pytest.mark.parametrize("name", ["fv", "particle"])
def test_plot_and_movie_of_a_layered_run(runs, name, tmp_path, capsys):
    png, gif = tmp_path / "run.png", tmp_path / "run.gif"
    assert main(["plot", str(runs[name]), "-o", str(png), "--movie", str(gif), "--dpi", str(DPI)]) == 0
    assert capsys.readouterr().out.split() == ["wrote", str(png), "wrote", str(gif)]
    # 3 times; rows: a and w against depth, f(x) (input_dim 1), and the risk and energy row
    with Image.open(png) as image:
        assert image.size == (round(3.3 * 3 * DPI), round(2.7 * 4 * DPI))
        assert grey_variance(image) > VARIANCE_FLOOR
    with Image.open(gif) as movie:
        assert movie.size == (round((3.2 * 2 + 1.0) * DPI), round(3.4 * DPI)) and movie.n_frames == 3
        movie.seek(movie.n_frames - 1)
        assert grey_variance(movie) > VARIANCE_FLOOR


@pytest.mark.parametrize("name", ["fv", "particle"])
def test_depth_marginals_scale_and_network_of_a_layered_run(runs, name):
    run = open_run(runs[name])
    f = faces(run)
    tops = []
    for i in range(len(run.time)):
        snap = run.snapshot(i)
        for k in (1, 2):
            m = depth_marginal(run, snap, k)
            assert m.shape == (LAYERS, 16)
            # every layer's marginal density integrates to its mass, 1
            assert m @ np.diff(f[k]) == pytest.approx(np.ones(LAYERS), abs=1e-12)
            tops.append(m.max())
    # the movie's one colour scale: the largest marginal density over every frame and axis
    assert depth_scale(run, range(len(run.time))) == max(tops)
    # the f(x) panel draws the network whose risk the run stored
    model, why = network_model(run)
    assert model is not None and why == ""
    for i in range(len(run.time)):
        u, q = _neurons(run, run.snapshot(i))
        r = model.network(u, q, model.x) - model.y
        assert 0.5 * model.p @ (r * r) == pytest.approx(run.risk[i], rel=1e-12)
