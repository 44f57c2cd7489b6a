"""`gflow compare`: Wasserstein, L1/L2 and marginal distances against exact values.

A translation by s moves any measure exactly |s| in W1 and W2 (Kantorovich duality with the
1-Lipschitz test function u.s/|s| gives the lower bound, the translation plan the upper);
two Gaussians N(m1, diag s1^2), N(m2, diag s2^2) are sqrt(|m1 - m2|^2 + |s1 - s2|^2) apart in W2.
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

import gflow.postprocess.compare as compare
from gflow.app.cli import main
from gflow.postprocess.regrid import cell_volumes
from gflow.postprocess.runs import faces
from gflow.snapshots import open_run
from runfiles import CASE_1D, gaussian, write_grid_run, write_particle_run
from conftest import TWO_LAYER_2D, check_snapshot

BOX = [[-4.0, 4.0], [-4.0, 4.0]]


def distances(a, b):
    return compare.compare_runs(open_run(a), open_run(b))


@pytest.mark.parametrize("cells", [(32, 32), (64, 64)])
def test_w1_of_a_shifted_gaussian_on_grids_is_the_shift(tmp_path, cells):
    # shifts that are whole cells of the (possibly coarsened, 32 x 32) transport grid
    shift = np.array([0.5, -0.75])
    a = write_grid_run(tmp_path / "a.h5", BOX, cells, [gaussian(BOX, cells, [0.0, 0.0], [0.6, 0.5])])
    b = write_grid_run(tmp_path / "b.h5", BOX, cells, [gaussian(BOX, cells, shift, [0.6, 0.5])])
    c = distances(a, b)
    assert c.transport.method == "emd"
    row = c.rows[0]
    assert row["W1"] == pytest.approx(np.linalg.norm(shift), abs=1e-8)
    assert row["W2"] == pytest.approx(np.linalg.norm(shift), abs=1e-8)
    assert row["marginal_W1_a"] == pytest.approx(0.5, abs=1e-8)
    assert row["marginal_W1_w"] == pytest.approx(0.75, abs=1e-8)


def test_w1_of_a_shift_in_1d_is_the_shift(tmp_path):
    box, cells = [[-6.0, 6.0]], [240]
    rho = [gaussian(box, cells, [-0.3], [0.7])]
    a = write_grid_run(tmp_path / "a.h5", box, cells, rho, case_text=CASE_1D, axes=("x",))
    b = write_grid_run(tmp_path / "b.h5", box, cells, [gaussian(box, cells, [0.9], [0.7])],
                       case_text=CASE_1D, axes=("x",))
    c = distances(a, b)
    assert c.transport.method == "quantile"
    assert c.rows[0]["W1"] == pytest.approx(1.2, abs=1e-8)
    assert c.rows[0]["W2"] == pytest.approx(1.2, abs=1e-6)


def test_w_of_shifted_particles_is_the_shift(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, [0.6, 0.8], size=(300, 2))
    shift = np.array([0.37, 0.21])
    a = write_particle_run(tmp_path / "a.h5", BOX, (16, 16), [x])
    b = write_particle_run(tmp_path / "b.h5", BOX, (16, 16), [x + shift])
    c = distances(a, b)
    assert "300 particles" in c.transport.description
    assert c.rows[0]["W1"] == pytest.approx(np.linalg.norm(shift), abs=1e-10)
    assert c.rows[0]["W2"] == pytest.approx(np.linalg.norm(shift), abs=1e-8)


def test_w_between_particles_and_a_grid_uses_positions_and_cell_masses(tmp_path):
    # particles sitting on the cell centres with the cell masses, shifted by two cells
    cells = (16, 16)
    rho = gaussian(BOX, cells, [0.0, 0.0], [0.7, 0.7])
    grid_faces = faces(open_run(write_grid_run(tmp_path / "g.h5", BOX, cells, [rho])))
    centres = np.stack([c.ravel() for c in np.meshgrid(*[0.5 * (f[1:] + f[:-1]) for f in grid_faces],
                                                       indexing="ij")], axis=1)
    shift = np.array([1.0, 0.0])
    p = write_particle_run(tmp_path / "p.h5", BOX, cells, [centres + shift],
                           weights=(rho * cell_volumes(grid_faces)).ravel())
    c = distances(tmp_path / "g.h5", p)
    assert "A's cell masses on 16 x 16 cells and B's 256 particles" in c.transport.description
    assert c.rows[0]["W1"] == pytest.approx(1.0, abs=1e-8)


def test_w2_of_two_gaussians_matches_the_closed_form(tmp_path):
    (m1, s1), (m2, s2) = ([0.0, 0.0], [0.6, 0.9]), ([0.5, -0.3], [0.8, 0.6])
    exact = np.sqrt(np.sum(np.subtract(m1, m2) ** 2) + np.sum(np.subtract(s1, s2) ** 2))
    errors = []
    for cells in [(16, 16), (32, 32)]:
        a = write_grid_run(tmp_path / "a.h5", BOX, cells, [gaussian(BOX, cells, m1, s1)])
        b = write_grid_run(tmp_path / "b.h5", BOX, cells, [gaussian(BOX, cells, m2, s2)])
        errors.append(distances(a, b).rows[0]["W2"] - exact)
    assert abs(errors[1]) < 0.02
    # cell-centre quantisation is second order in the cell size
    assert 3.0 < errors[0] / errors[1] < 5.0
    box, cells = [[-6.0, 6.0]], [400]
    a = write_grid_run(tmp_path / "a1.h5", box, cells, [gaussian(box, cells, [0.3], [0.5])],
                       case_text=CASE_1D, axes=("x",))
    b = write_grid_run(tmp_path / "b1.h5", box, cells, [gaussian(box, cells, [-0.4], [0.9])],
                       case_text=CASE_1D, axes=("x",))
    assert distances(a, b).rows[0]["W2"] == pytest.approx(np.sqrt(0.7**2 + 0.4**2), abs=2e-4)


def test_sliced_fallback_is_named_and_bounds_w_from_below(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "PAIR_MAX", 10)
    cells, shift = (32, 32), np.array([0.5, -0.75])
    a = write_grid_run(tmp_path / "a.h5", BOX, cells, [gaussian(BOX, cells, [0.0, 0.0], [0.6, 0.5])])
    b = write_grid_run(tmp_path / "b.h5", BOX, cells, [gaussian(BOX, cells, shift, [0.6, 0.5])])
    c = distances(a, b)
    assert c.transport.method == "sliced" and "sliced Wasserstein" in compare.header(c)[2]
    # the projection bounds are exact for a pure shift (issue 14: W2 was W_p^p raised to p again)
    assert c.rows[0]["W1"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)
    assert c.rows[0]["W2"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)


@pytest.fixture(scope="module")
def fv_runs(tmp_path_factory):
    """Real fv runs of one small case on a 32 x 32 and a 16 x 16 grid."""
    d = tmp_path_factory.mktemp("fv")
    case = d / "case.toml"
    case.write_text(TWO_LAYER_2D)
    for cells in (32, 16):
        assert main(["run", str(case), "-o", str(d / f"g{cells}"), "--set", f"grid.cells=[{cells},{cells}]"]) == 0
    return d / "g32" / "fv.h5", d / "g16" / "fv.h5"


def test_identical_runs_give_distance_zero(fv_runs, capsys, tmp_path):
    fine, _ = fv_runs
    particles = write_particle_run(tmp_path / "p.h5", BOX, (8, 8),
                                   np.random.default_rng(0).normal(size=(2, 50, 2)))
    for path in (fine, particles):
        assert main(["compare", str(path), str(path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert len(out["rows"]) == len(open_run(path).time)
        for row in out["rows"]:
            assert row["risk_diff"] == 0.0 and row["L1"] == 0.0 and row["L2"] == 0.0
            assert row["W1"] < 1e-12 and row["W2"] < 1e-7   # W2 is the root of a round-off-sized W2^2
            assert all(v == 0.0 for k, v in row.items() if k.startswith("marginal_L1"))


def test_runs_on_different_grids_compare(fv_runs, capsys, tmp_path):
    fine, coarse = fv_runs
    assert main(["compare", str(fine), str(coarse), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [float(r["time"]) for r in rows] == [0.0, 0.5, 1.0]
    # at t = 0 both hold exact cell averages of one Gaussian: on the coarser grid they agree
    assert float(rows[0]["L1"]) < 1e-12
    assert float(rows[0]["W1"]) < 1e-8     # one transport grid: equal densities are 0 apart
    assert float(rows[-1]["L1"]) > 1e-4 and float(rows[-1]["risk_diff"]) != 0.0
    assert all(r["W_method"] == "emd" for r in rows)


def test_table_json_csv_and_plot(fv_runs, capsys, tmp_path):
    fine, coarse = fv_runs
    particles = write_particle_run(tmp_path / "p.h5", BOX, (16, 16),
                                   np.random.default_rng(0).normal(0.0, 0.6, size=(3, 200, 2)),
                                   times=[0.0, 0.5, 1.0])
    check_snapshot(particles)
    assert main(["compare", str(fine), str(particles), "--plot", str(tmp_path / "c.png"),
                 "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("A: ") and "200 particles" in out[1]
    assert out[2].startswith("W1, W2: exact optimal transport") and out[3].startswith("L1, L2:")
    rows = out[out.index("") + 1:out.index("") + 5]
    assert rows[0].split()[:4] == ["t", "risk", "A", "risk"]
    assert len({len(line) for line in rows}) == 1       # aligned columns
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["methods"]["W"] == "emd" and data["b"]["solver"] == "particle"
    assert data["rows"][1]["risk_diff"] == pytest.approx(data["rows"][1]["risk_a"] - data["rows"][1]["risk_b"])
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_runs_that_cannot_be_compared_are_bad_input(fv_runs, capsys, tmp_path):
    fine, _ = fv_runs
    one_d = write_grid_run(tmp_path / "x.h5", [[-1.0, 1.0]], [8], [np.full(8, 0.5)], case_text=CASE_1D, axes=("x",))
    later = write_grid_run(tmp_path / "t.h5", BOX, (8, 8), [np.full((8, 8), 1 / 64)], times=[7.0])
    for other in (one_d, later):
        assert main(["compare", str(fine), str(other)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("gflow: ")
