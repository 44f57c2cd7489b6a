"""Initial laws beyond the Gaussians (docs/initial_conditions.md): point masses inline or from a
file, the sphere, per-axis products and another run's snapshot.

The particle runs are held to a hand-written gradient descent (Chizat's ReLU illustration:
d = 2, no bias, 15 data points on the unit circle, weight decay, m = 20), the grid densities
to hand-written cell masses, and a run continued from a snapshot to the snapshot's mass and
first moments.
"""
from __future__ import annotations

import itertools
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

import gflow
from gflow.case import case_from_text
from gflow.case_keys import template
from gflow.errors import InputError
from gflow.grids import CartesianGrid
from gflow.grids.draws import product_draws, sphere_draws
from gflow.grids.initial import product_cell_average, shell_cell_average
from gflow.initial_snapshot import load_initial
from gflow.problem import build_problem

LR, STEPS, DECAY = 0.0625, 64, 0.05          # lr and the end time 4.0 are exact in binary
M = 20


# ----------------------------------------------------------------------------- Chizat's ReLU set-up

def circle_data() -> tuple[np.ndarray, np.ndarray]:
    """15 points on the unit circle and a ReLU teacher's values there."""
    theta = 2 * np.pi * np.arange(15) / 15 + 0.1
    x = np.column_stack([np.cos(theta), np.sin(theta)])
    y = np.maximum(x @ [1.0, 0.5], 0.0) - 0.8 * np.maximum(x @ [-0.6, 1.0], 0.0)
    return x, y


def relu_gd(u: np.ndarray, q: np.ndarray, x: np.ndarray, y: np.ndarray, steps: int) -> np.ndarray:
    """Plain gradient descent u_j <- u_j - lr grad V(u_j) for f(x) = sum_j q_j a_j relu(w_j.x),
    V(u) = E_x[(f - y) a relu(w.x)] + lam |u|^2 / 2 over the data's uniform weights."""
    u = u.copy()
    p = 1.0 / len(x)
    for _ in range(steps):
        a, w = u[:, 0], u[:, 1:]
        z = x @ w.T                                  # (data, neurons)
        s = np.maximum(z, 0.0)
        pr = p * (s @ (q * a) - y)                   # weighted residual
        grad_a = pr @ s + DECAY * a
        grad_w = a[:, None] * ((pr[:, None] * (z > 0)).T @ x) + DECAY * w
        u -= LR * np.column_stack([grad_a, grad_w])
    return u


def chizat_doc(initial: dict) -> dict:
    return {"name": "chizat_relu",
            "model": {"kind": "two_layer", "activation": "relu", "input_dim": 2},
            "data": {"file": "data.csv"},
            "regularization": {"weight_decay": DECAY},
            "initial": initial,
            "grid": {"bounds": [[-4.0, 4.0]] * 3, "cells": 8},
            "time": {"end": LR * STEPS, "snapshots": 3},
            "solver": {"kind": "particle", "integrator": "euler", "lr": LR, "kernel": "numpy",
                       "particles": M, "seed": 3}}


def write_case(folder: Path, doc: dict) -> Path:
    x, y = circle_data()
    lines = ["x1,x2,y"] + [",".join(map(repr, map(float, row))) for row in np.column_stack([x, y])]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    path = folder / "case.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def given_points(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (M, 3)), rng.uniform(0.5, 2.0, M)


@pytest.mark.parametrize("law", ["points", "file", "sphere"])
def test_given_particles_reproduce_a_hand_written_gradient_descent(law, tmp_path):
    u0, weights = given_points()
    if law == "points":          # inline, equal weights
        initial = {"distribution": "points", "points": u0.tolist()}
        weights = np.ones(M)
    elif law == "file":          # columns in another order, and unequal weights
        rows = [",".join(map(repr, map(float, (w2, q, a, w1)))) for (a, w1, w2), q in zip(u0, weights)]
        (tmp_path / "particles.csv").write_text("w2,weight,a,w1   # any order\n" + "\n".join(rows) + "\n\n")
        initial = {"file": "particles.csv"}
    else:                        # Chizat: (a, w1, w2) uniform on the sphere of radius 2
        initial = {"distribution": "sphere", "radius": 2.0}
        weights = np.ones(M)
    run, = gflow.run(write_case(tmp_path, chizat_doc(initial)), output=tmp_path / "run")
    q = weights / weights.sum()
    assert len(run.weights) == M and np.allclose(run.weights, q, rtol=0, atol=1e-15)
    start = run.positions(0)
    if law == "sphere":
        assert np.allclose(np.linalg.norm(start, axis=1), 2.0, rtol=0, atol=1e-14)
    else:
        assert np.array_equal(start, u0)              # as given, to the bit
    x, y = circle_data()
    for k, steps in ((1, STEPS // 2), (2, STEPS)):
        np.testing.assert_allclose(run.positions(k), relu_gd(start, q, x, y, steps), rtol=0, atol=1e-12)
    # the particles did move: the comparison is not between two copies of the start
    assert np.abs(run.positions(2) - start).max() > 0.05


def test_the_stored_case_finds_the_particles_file_from_anywhere(tmp_path):
    u0, weights = given_points()
    rows = [",".join(map(repr, map(float, row))) for row in np.column_stack([u0, weights])]
    (tmp_path / "particles.csv").write_text("a,w1,w2,weight\n" + "\n".join(rows) + "\n")
    case = gflow.load_case(write_case(tmp_path, chizat_doc({"file": "particles.csv"})))
    assert case.files["initial.file"] == (tmp_path / "particles.csv").resolve()
    other = tmp_path / "elsewhere"
    other.mkdir()
    again = case_from_text(case.text_for(case.solvers[0]), "stored", base_dir=other)
    assert np.array_equal(again.initial.points, u0)
    np.testing.assert_allclose(again.initial.point_weights, weights / weights.sum(), rtol=1e-15)


# ----------------------------------------------------------------------------- the sphere

def test_a_sphere_draw_lies_on_the_sphere_with_no_mean_direction():
    rng = np.random.default_rng(0)
    m, center, radius = 40_000, np.array([0.5, -1.0, 2.0]), 1.5
    u = sphere_draws(rng, m, center, radius)
    np.testing.assert_allclose(np.linalg.norm(u - center, axis=1), radius, rtol=1e-15)
    direction = (u - center) / radius
    # each coordinate of a uniform unit vector in R^3 has mean 0 and variance 1/3
    assert np.abs(direction.mean(axis=0)).max() < 5 / math.sqrt(3 * m)
    # and second moments I/3 (the variance of x_i^2 is 1/5 - 1/9 = 4/45)
    np.testing.assert_allclose(direction.T @ direction / m, np.eye(3) / 3, atol=5 * math.sqrt(4 / 45 / m))


def test_the_shell_density_has_mass_one_and_its_radial_mean_near_the_radius():
    radius, width = 2.0, 0.15
    # the exact radial mean of rho ~ exp(-(r - R)^2 / (2 w^2)) in 2-D: the weight r dr
    r = np.linspace(radius - 12 * width, radius + 12 * width, 200_001)
    profile = r * np.exp(-0.5 * ((r - radius) / width) ** 2)
    exact = (r * profile).sum() / profile.sum()
    assert abs(exact - radius) > 5e-3          # (D - 1) w^2 / R beyond R: the shell is not the sphere
    errors = []
    for n in (60, 120):
        grid = CartesianGrid(((-3.0, 3.0), (-3.0, 3.0)), (n, n))
        rho = shell_cell_average(grid, (0.0, 0.0), radius, width)
        assert abs(grid.mass(rho) - 1.0) < 1e-13 and rho.min() >= 0
        a, b = np.meshgrid(*grid.centres, indexing="ij")
        errors.append(abs(float((rho * np.hypot(a, b)).sum() * grid.cell_volume) - exact))
    # second order: halving h quarters the error of the radial mean (|u| taken at the cell centres)
    assert errors[1] < 1e-4 and 3.5 < errors[0] / errors[1] < 4.5


def test_shell_cell_averages_match_a_brute_force_average_of_the_profile():
    grid = CartesianGrid(((-3.0, 3.0), (-2.5, 3.5)), (24, 24))
    center, radius, width = (0.3, 0.5), 1.7, 0.4
    rho = shell_cell_average(grid, center, radius, width)
    # 60 x 60 midpoint samples inside each cell, by hand
    fine = 60
    sub = [lo + (np.arange(n * fine) + 0.5) * (hi - lo) / (n * fine) for (lo, hi), n in zip(grid.bounds, grid.cells)]
    a, b = np.meshgrid(*sub, indexing="ij")
    values = np.exp(-0.5 * ((np.hypot(a - center[0], b - center[1]) - radius) / width) ** 2)
    masses = values.reshape(24, fine, 24, fine).mean(axis=(1, 3))
    reference = masses / (masses.sum() * grid.cell_volume)
    assert np.abs(rho - reference).max() < 1e-4 * rho.max()


def test_a_grid_sphere_needs_its_width_in_one_line(tmp_path):
    case = gflow.load_case(write_case(tmp_path, chizat_doc({"distribution": "sphere", "radius": 2.0})))
    with pytest.raises(InputError) as err:
        build_problem(case).initial_density()
    assert "initial.width" in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- products

def test_product_cell_averages_are_the_products_of_one_dimensional_masses():
    grid = CartesianGrid(((-5.0, 5.0), (-5.0, 5.0)), (37, 41))     # faces not on +-2
    rho = product_cell_average(grid, (("gaussian", 0.3, 0.7), ("uniform", -2.0, 2.0)))
    fa, fy = grid.faces
    gauss = np.diff([0.5 * (1 + math.erf((f - 0.3) / (0.7 * math.sqrt(2)))) for f in fa])
    uniform = np.array([max(0.0, min(hi, 2.0) - max(lo, -2.0)) / 4.0 for lo, hi in itertools.pairwise(fy)])
    masses = np.outer(gauss, uniform)
    np.testing.assert_allclose(rho, masses / (masses.sum() * grid.cell_volume), rtol=1e-12, atol=1e-15)
    assert abs(grid.mass(rho) - 1.0) < 1e-13


def test_product_draws_follow_each_axis_law():
    rng = np.random.default_rng(1)
    m = 20_000
    u = product_draws(rng, m, (("gaussian", 0.3, 0.7), ("uniform", -2.0, 2.0)))
    assert abs(u[:, 0].mean() - 0.3) < 5 * 0.7 / math.sqrt(m) and abs(u[:, 0].std() - 0.7) < 0.02
    assert u[:, 1].min() >= -2.0 and u[:, 1].max() <= 2.0 and abs(u[:, 1].mean()) < 5 * (4 / math.sqrt(12 * m))


def test_a_product_case_gives_its_cell_averages_and_draws(tmp_path):
    doc = chizat_doc({"distribution": "product", "factors": {
        "w2": {"distribution": "uniform", "low": -1.0, "high": 1.5},
        "a": {"distribution": "gaussian", "mean": 0.0, "std": 1.0},
        "w1": {"distribution": "gaussian", "mean": 0.5, "std": 0.5}}})
    problem = build_problem(gflow.load_case(write_case(tmp_path, doc)))
    expected = product_cell_average(problem.grid, (("gaussian", 0.0, 1.0), ("gaussian", 0.5, 0.5),
                                                   ("uniform", -1.0, 1.5)))
    np.testing.assert_array_equal(problem.initial_density(), expected)
    u = problem.sample_initial(5000, np.random.default_rng(0))
    assert u[:, 2].min() >= -1.0 and u[:, 2].max() <= 1.5 and abs(u[:, 1].mean() - 0.5) < 0.05


# ----------------------------------------------------------------------------- points on grids

def test_grid_solvers_deposit_inline_points(tmp_path):
    doc = chizat_doc({"points": [[0.1, 0.2, -0.5], [-0.5, 0.7, 0.25]], "weights": [1.0, 3.0]})
    doc["grid"] = {"bounds": [[-1.0, 1.0]] * 3, "cells": 4}         # centres -0.75, -0.25, 0.25, 0.75
    doc["solver"] = {"kind": "fv"}
    problem = build_problem(gflow.load_case(write_case(tmp_path, doc)))
    rho = problem.initial_density()
    # by hand: the tent weights of each coordinate on the centres around it (h = 0.5)
    expected = np.zeros((4, 4, 4))
    for q, cells in ((0.25, [{1: 0.3, 2: 0.7}, {1: 0.1, 2: 0.9}, {0: 0.5, 1: 0.5}]),
                     (0.75, [{0: 0.5, 1: 0.5}, {2: 0.1, 3: 0.9}, {2: 1.0}])):
        for i, wi in cells[0].items():
            for j, wj in cells[1].items():
                for k, wk in cells[2].items():
                    expected[i, j, k] += q * wi * wj * wk
    np.testing.assert_allclose(rho * problem.grid.cell_volume, expected, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- snapshots

def two_axis_doc(initial: dict, solver: dict, cells: int = 24) -> dict:
    return {"name": "continued", "model": {"kind": "two_layer", "activation": "tanh"},
            "target": {"expression": "sin(pi*x)"}, "data": {"nodes": 12},
            "initial": initial, "grid": {"bounds": [[-3.0, 3.0], [-3.0, 3.0]], "cells": cells},
            "time": {"end": 0.1, "snapshots": 2}, "solver": solver}


def run_doc(folder: Path, doc: dict, name: str):
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(doc))
    run, = gflow.run(path, output=folder / name)
    return run


def moments(run, index: int) -> tuple[float, np.ndarray]:
    """Mass and first moments of a grid run's snapshot (cell centres), or of its particles."""
    positions = run.positions(index)
    if positions is not None:
        return float(run.weights.sum()), run.weights @ positions
    rho, grid = run.density(index), np.meshgrid(*run.coordinates, indexing="ij")
    volume = run.cell_volume
    return float(rho.sum() * volume), np.array([(rho * c).sum() * volume for c in grid])


@pytest.fixture(scope="module")
def fv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("source")
    return run_doc(folder, two_axis_doc({"mean": [0.2, -0.3], "std": [0.5, 0.6]}, {"kind": "fv"}), "fv")


def test_particles_continue_a_grid_run_from_its_density(fv_run, tmp_path):
    mass, first = moments(fv_run, -1)
    doc = two_axis_doc({"snapshot": str(fv_run.path)}, {"kind": "particle", "init": "quadrature"})
    run = run_doc(tmp_path, doc, "particles")
    # one particle per cell centre of the run's grid, with its mass
    assert len(run.weights) <= fv_run.density(-1).size
    m2, f2 = moments(run, 0)
    assert abs(m2 - 1.0) < 1e-14 and abs(mass - 1.0) < 1e-12
    np.testing.assert_allclose(f2, first / mass, rtol=0, atol=1e-12)
    # random draws of its cells: the same moments within their sampling error
    drawn = load_initial(gflow.load_case(tmp_path / "particles.toml"))
    u = build_problem(drawn).sample_initial(4000, np.random.default_rng(5))
    assert np.abs(u.mean(axis=0) - first / mass).max() < 5 * 0.6 / math.sqrt(4000)


def test_a_grid_continues_a_particle_run_from_its_deposit(tmp_path):
    source = run_doc(tmp_path, two_axis_doc({"mean": [0.1, 0.0], "std": [0.4, 0.5]},
                                            {"kind": "particle", "particles": 400, "kernel": "numpy"}), "particle")
    u, q = source.positions(-1), source.weights
    assert np.abs(u).max() < 3.0 - 0.125          # inside the box, off the outer half of its edge cells
    run = run_doc(tmp_path, two_axis_doc({"snapshot": str(source.path)}, {"kind": "fv"}), "fv")
    mass, first = moments(run, 0)
    assert abs(mass - 1.0) < 1e-13
    np.testing.assert_allclose(first, q @ u, rtol=0, atol=1e-13)     # cloud-in-cell keeps first moments


def test_a_grid_continues_a_grid_run_on_a_coarser_grid(fv_run, tmp_path):
    run = run_doc(tmp_path, two_axis_doc({"snapshot": str(fv_run.path), "snapshot_index": 1}, {"kind": "fv"},
                                         cells=12), "coarse")
    fine = fv_run.density(1)
    blocks = fine.reshape(12, 2, 12, 2).mean(axis=(1, 3))        # by hand: the 2 x 2 cell averages
    np.testing.assert_allclose(run.density(0), blocks / (blocks.sum() * run.cell_volume), rtol=1e-12, atol=1e-15)
    # and the same grid keeps the density as it is
    same = run_doc(tmp_path, two_axis_doc({"snapshot": str(fv_run.path)}, {"kind": "fv"}), "same")
    np.testing.assert_allclose(same.density(0), fine / (fine.sum() * fv_run.cell_volume), rtol=1e-12, atol=1e-15)


def test_bad_snapshots_are_one_line(fv_run, tmp_path):
    def refused(initial: dict, bias: bool = False) -> str:
        doc = two_axis_doc(initial, {"kind": "fv"})
        if bias:
            doc["model"]["bias"] = True
            doc["grid"] = {"bounds": [[-3.0, 3.0]] * 3, "cells": 8}
        case = case_from_text(tomli_w.dumps(doc), "bad.toml", base_dir=tmp_path)
        with pytest.raises(InputError) as err:
            load_initial(case)
        text = str(err.value)
        assert text.startswith("bad.toml: initial.snapshot") and "\n" not in text, text
        return text

    assert "axes (a, w) are not the case's (a, w, b)" in refused({"snapshot": str(fv_run.path)}, bias=True)
    assert "holds 2 snapshots" in refused({"snapshot": str(fv_run.path), "snapshot_index": 2})
    assert "no such file" in refused({"snapshot": "missing.h5"})
    (tmp_path / "text.h5").write_text("not a run")
    assert "text.h5" in refused({"snapshot": "text.h5"})
    # not loaded: the problem says how to load it, in one line
    case = case_from_text(tomli_w.dumps(two_axis_doc({"snapshot": "x.h5"}, {"kind": "fv"})), "c.toml", base_dir=tmp_path)
    with pytest.raises(InputError, match="load_initial"):
        build_problem(case).initial_density()


# ----------------------------------------------------------------------------- bad keys and files

@pytest.mark.parametrize("initial, file_text, expected", [
    ({"file": "p.csv"}, None, "initial.file: "),
    ({"file": "p.csv"}, "a,w1\n1,2\n", "no column for the axis 'w2'"),
    ({"file": "p.csv"}, "a,w1,w2,z\n1,2,3,4\n", "column 'z' is neither an axis"),
    ({"file": "p.csv"}, "a,w1,w2,a\n1,2,3,4\n", "column 'a' appears twice"),
    ({"file": "p.csv"}, "a,w1,w2\n1,2\n", "line 2 has 2 values"),
    ({"file": "p.csv"}, "a,w1,w2\n1,2,abc\n", "'abc' in column 'w2' is not a number"),
    ({"file": "p.csv"}, "a,w1,w2\n1,2,nan\n", "point 1 has nan"),
    ({"file": "p.csv"}, "a,w1,w2,weight\n1,2,3,-1\n", "non-negative"),
    ({"file": "p.csv"}, "", "is empty"),
    ({"file": "p.csv"}, "a,w1,w2\n", "no points"),
    ({"file": "p.csv", "points": [[0.0, 0.0, 0.0]]}, "a,w1,w2\n1,2,3\n", "not both"),
    ({"file": "p.csv", "distribution": "gaussian"}, "a,w1,w2\n1,2,3\n", "initial.file: gives point masses"),
    ({"distribution": "sphere"}, None, "initial.radius"),
    ({"distribution": "sphere", "radius": -1.0}, None, "initial.radius"),
    ({"distribution": "sphere", "radius": 1.0, "center": [0.0, 1.0]}, None, "initial.center: has 2 entries"),
    ({"radius": 1.0, "mean": 0.0, "std": 1.0}, None, 'initial.radius: belongs to distribution = "sphere"'),
    ({"snapshot_index": 0, "mean": 0.0, "std": 1.0}, None, 'belongs to distribution = "snapshot"'),
    ({"distribution": "product"}, None, "initial.factors"),
    ({"distribution": "product", "factors": {"a": {"distribution": "uniform", "low": 0.0, "high": 1.0}}}, None,
     "names no law for the axis 'w1'"),
    ({"distribution": "product", "factors": {"z": {}}}, None, "initial.factors.z: is not an axis"),
    ({"distribution": "product", "factors": {"a": 1.0, "w1": {}, "w2": {}}}, None, "initial.factors.a: must be a table"),
    ({"distribution": "product", "factors": {
        "a": {"distribution": "cauchy"}, "w1": {}, "w2": {}}}, None, "initial.factors.a.distribution"),
    ({"distribution": "product", "factors": {
        "a": {"distribution": "uniform", "low": 1.0, "high": 1.0}, "w1": {}, "w2": {}}}, None,
     "initial.factors.a.high: must be above low"),
    ({"distribution": "product", "factors": {
        "a": {"distribution": "gaussian", "mean": 0.0, "std": 0.0}, "w1": {}, "w2": {}}}, None, "initial.factors.a.std"),
    ({"distribution": "product", "factors": {
        "a": {"distribution": "gaussian", "mean": 0.0, "std": 1.0, "low": 0.0}, "w1": {}, "w2": {}}}, None,
     "initial.factors.a.low: unknown key"),
])
def test_bad_initial_keys_and_files_are_one_line(initial, file_text, expected, tmp_path):
    if file_text is not None:
        (tmp_path / "p.csv").write_text(file_text)
    path = write_case(tmp_path, chizat_doc(initial))
    with pytest.raises(InputError) as err:
        gflow.load_case(path)
    text = str(err.value)
    assert expected in text and "\n" not in text and text.startswith(str(path)), text


def test_a_layered_model_cannot_start_from_a_snapshot():
    doc = tomllib.loads(template("resnet"))
    doc["initial"] = {"snapshot": "runs/x/fv.h5"}
    with pytest.raises(InputError, match="initial.snapshot: a layered model"):
        case_from_text(tomli_w.dumps(doc), "resnet.toml")


def test_the_command_line_refuses_a_bad_snapshot_with_exit_2(tmp_path):
    path = tmp_path / "case.toml"
    path.write_text(tomli_w.dumps(two_axis_doc({"snapshot": "missing.h5"}, {"kind": "fv"})))
    out = subprocess.run([sys.executable, "-m", "gflow", "run", str(path), "-o", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "initial.snapshot" in out.stderr and "no such file" in out.stderr
