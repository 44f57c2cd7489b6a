"""`gflow check RUN.h5`: valid files pass; each kind of damage is one line naming it, exit 2.

Also the one reader, `gflow.snapshots.open_run`: the stored case, `matches`, `to_xarray`.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from gflow.app.cli import main
from gflow.case import case_from_text
from gflow.errors import InputError
from gflow.snapshot_check import problems
from gflow.snapshots import open_run
from runfiles import CASE_2D, gaussian, write_grid_run, write_particle_run
from conftest import has_module, run_gflow

BOX = [[-4.0, 4.0], [-4.0, 4.0]]
CELLS = (8, 8)


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    rho = gaussian(BOX, CELLS, [0.0, 0.0], [1.0, 1.0])
    return write_grid_run(tmp_path_factory.mktemp("grid") / "fv.h5", BOX, CELLS, [rho, rho, rho])


@pytest.fixture(scope="module")
def particle_run(tmp_path_factory):
    x = np.random.default_rng(0).normal(size=(3, 50, 2))
    return write_particle_run(tmp_path_factory.mktemp("particles") / "particle.h5", BOX, CELLS, x)


def copy(source, path):
    path.write_bytes(source.read_bytes())
    return path


def check(capsys, *paths):
    status = main(["check", *map(str, paths)])
    return status, capsys.readouterr()


def test_valid_files_pass(grid_run, particle_run, capsys):
    assert problems(grid_run) == [] and problems(particle_run) == []
    status, out = check(capsys, grid_run, particle_run)
    assert status == 0 and out.err == ""
    assert out.out.splitlines() == [f"{grid_run}: ok", f"{particle_run}: ok"]


def test_a_run_killed_while_appending_passes(grid_run, tmp_path):
    """`time` is written last: one unfinished row beyond it in the other datasets is allowed."""
    path = copy(grid_run, tmp_path / "killed.h5")
    with h5py.File(path, "a") as f:
        for name in ("density", "risk", "energy", "mass"):
            f[name].resize(f[name].shape[0] + 1, axis=0)
        f["density"][-1] = np.nan       # never finished: not checked
    assert problems(path) == []


def _missing_attribute(f):
    del f.attrs["gflow_version"]


def _wrong_format(f):
    f.attrs["format"] = "netcdf"


def _case_not_toml(f):
    f.attrs["case"] = "name = = 3"


def _wrong_density_shape(f):
    del f["density"]
    density = f.create_dataset("density", data=np.zeros((3, 8, 7)))
    for i, name in enumerate(("time", "a", "w")):
        density.dims[i].attach_scale(f[name])


def _missing_dimension_scale(f):
    f["density"].dims[2].detach_scale(f["w"])


def _coordinate_not_a_scale(f):
    # an axis whose coordinates are a plain dataset: no dimension scale named 'w'
    rho = f["density"][()]
    del f["density"]
    values = f["w"][()]
    del f["w"]
    f["w"] = values
    density = f.create_dataset("density", data=rho)
    density.dims[0].attach_scale(f["time"])
    density.dims[1].attach_scale(f["a"])


def _decreasing_time(f):
    f["time"][...] = [0.0, 2.0, 1.0]


def _short_risk(f):
    f["risk"].resize(1, axis=0)


def _missing_axis(f):
    del f["a"]


def _nan_density(f):
    f["density"][1, 2, 3] = np.nan


def _mass_mismatch(f):
    f["mass"][2] = 0.5


def _weights_not_one(f):
    f["weights"][...] = f["weights"][()] * 0.9


def _weights_2d(f):
    del f["weights"]
    f["weights"] = np.full((50, 1), 0.02)


def _positions_shape(f):
    del f["positions"]
    positions = f.create_dataset("positions", data=np.zeros((3, 50, 3)))
    for i, name in enumerate(("time", "particle", "component")):
        positions.dims[i].attach_scale(f[name])


#: (damage, the run it damages, words the line must hold)
DAMAGE = {
    "missing attribute": (_missing_attribute, "grid", ["gflow_version", "missing"]),
    "wrong format": (_wrong_format, "grid", ["format", "netcdf"]),
    "case not TOML": (_case_not_toml, "grid", ["case", "TOML"]),
    "wrong density shape": (_wrong_density_shape, "grid", ["density", "shape", "(3, 8, 7)"]),
    "missing dimension scale": (_missing_dimension_scale, "grid", ["dimension 2", "density", "scale"]),
    "coordinate not a scale": (_coordinate_not_a_scale, "grid", ["'w'", "not a dimension scale"]),
    "decreasing time": (_decreasing_time, "grid", ["time", "not increasing"]),
    "short risk": (_short_risk, "grid", ["risk", "shape"]),
    "missing axis": (_missing_axis, "grid", ["'a'", "missing"]),
    "nan density": (_nan_density, "grid", ["density", "non-finite", "snapshot 1"]),
    "mass mismatch": (_mass_mismatch, "grid", ["snapshot 2", "mass"]),
    "weights not summing to 1": (_weights_not_one, "particles", ["weights", "sums to 0.9", "not 1"]),
    "weights not 1-D": (_weights_2d, "particles", ["weights", "shape"]),
    "positions shape": (_positions_shape, "particles", ["positions", "shape", "(3, 50, 3)"]),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_damaged_file_is_one_line_naming_the_problem(grid_run, particle_run, tmp_path, capsys, name):
    damage, which, words = DAMAGE[name]
    path = copy(grid_run if which == "grid" else particle_run, tmp_path / "bad.h5")
    with h5py.File(path, "a") as f:
        damage(f)
    status, out = check(capsys, path)
    assert status == 2 and out.out == ""
    assert out.err.count("\n") == 1 and out.err.startswith(f"gflow: {path}: ")
    for word in words:
        assert word in out.err, out.err


@pytest.mark.parametrize("content,words", [(b"not a run at all\n" * 100, "not an HDF5 file"),
                                           (None, "no such file")])
def test_non_hdf5_or_missing_file(tmp_path, capsys, content, words):
    path = tmp_path / "bad.h5"
    if content is not None:
        path.write_bytes(content)
    status, out = check(capsys, path)
    assert status == 2 and out.err == f"gflow: {path}: {words}\n"


def test_truncated_file(grid_run, tmp_path, capsys):
    path = tmp_path / "bad.h5"
    data = grid_run.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    status, out = check(capsys, path)
    assert status == 2 and out.err.count("\n") == 1 and str(path) in out.err


def test_good_and_bad_files_together(grid_run, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("text")
    status, out = check(capsys, grid_run, bad)
    assert status == 2
    assert out.out == f"{grid_run}: ok\n" and out.err == f"gflow: {bad}: not an HDF5 file\n"


def test_through_the_installed_command(grid_run, tmp_path):
    bad = copy(grid_run, tmp_path / "bad.h5")
    with h5py.File(bad, "a") as f:
        _decreasing_time(f)
    result = run_gflow("check", grid_run, timeout=120)
    assert result.returncode == 0 and result.stdout == f"{grid_run}: ok\n"
    result = run_gflow("check", bad, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not increasing" in result.stderr


# ----------------------------------------------------------------------------- the reader

def test_run_case_and_matches(tmp_path):
    same = case_from_text(CASE_2D, "same.toml")
    rho = gaussian(BOX, CELLS, [0.0, 0.0], [1.0, 1.0])
    path = write_grid_run(tmp_path / "fv.h5", BOX, CELLS, [rho], case_text=same.text_for(same.solvers[0]))
    run = open_run(path, require_snapshots=True)
    assert run.case.name == "synthetic" and run.case.axes == ("a", "w")
    assert run.matches(same, same.solvers[0]) is None
    other = case_from_text(CASE_2D, "other.toml", ["time.end=2.0"])
    assert run.matches(other, other.solvers[0]) == "time.end"


def test_reader_checks(grid_run, tmp_path):
    empty = copy(grid_run, tmp_path / "empty.h5")
    with h5py.File(empty, "a") as f:
        for name in ("time", "risk", "energy", "mass"):
            f[name].resize(0, axis=0)
    assert len(open_run(empty).time) == 0
    with pytest.raises(InputError, match="no snapshots yet"):
        open_run(empty, require_snapshots=True)
    run = open_run(grid_run)
    assert run.snapshot(-1).time == 2.0 and run.snapshot(0).density.shape == CELLS
    with pytest.raises(InputError, match="no snapshot 3"):
        run.snapshot(3)


@pytest.mark.skipif(not has_module("xarray") or not has_module("h5netcdf"), reason="needs xarray, h5netcdf")
def test_to_xarray(particle_run):
    ds = open_run(particle_run).to_xarray()
    try:
        assert ds["density"].dims == ("time", "a", "w")
        assert ds["positions"].dims == ("time", "particle", "component")
        assert float(ds["weights"].sum()) == pytest.approx(1.0)
    finally:
        ds.close()


def test_to_xarray_without_xarray_is_one_line(particle_run, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xarray" else real(name, *a))
    with pytest.raises(InputError, match=r"needs xarray \(pip install xarray\)") as err:
        open_run(particle_run).to_xarray()
    assert str(particle_run) in str(err.value) and "\n" not in str(err.value)
