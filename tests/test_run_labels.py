"""Run files describe themselves: `long_name` and `units` on every dataset (CF conventions, as
xarray shows them), `component` labelled by the axis names, the solver's resolved options and
the wall-clock time of each snapshot stored, and `gflow info` printing both."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import TWO_LAYER_2D, check_snapshot, has_module
from gflow.app.api import run
from gflow.app.cli import main
from gflow.case import case_from_text
from gflow.errors import InputError
from gflow.run_labels import LONG_NAMES, attributes, axis_long_name
from gflow.snapshots import WALL_TIME, open_run
from gflow.solver_options import complete

SMALL = TWO_LAYER_2D.replace("cells = [32, 32]", "cells = [12, 12]") + '''
[[solvers]]
kind = "fv"
[[solvers]]
kind = "particle"
particles = 200
lr = 0.1
'''
RESNET = '''
name = "labels_resnet"
[model]
kind = "resnet"
layers = 2
activation = "tanh"
[target]
expression = "0.5*x"
[data]
nodes = 6
[initial]
distribution = "gaussian"
mean = [0.0, 0.0]
std = [0.5, 0.5]
[grid]
bounds = [[-3.0, 3.0], [-3.0, 3.0]]
cells = [10, 10]
[time]
end = 0.2
snapshots = 3
[solver]
kind = "particle"
particles = 30
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    found = {r.solver: r for r in run(case_from_text(SMALL, "small.toml"), output=out / "two_layer")}
    [found["resnet"]] = run(case_from_text(RESNET, "resnet.toml"), output=out / "resnet")
    return found


def _datasets(path):
    with h5py.File(path) as f:
        return {name: (dict(ds.attrs), ds.dtype) for name, ds in f.items() if isinstance(ds, h5py.Dataset)}


@pytest.mark.parametrize("kind", ["fv", "particle", "resnet"])
def test_every_dataset_has_a_long_name_and_numbers_have_units(runs, kind):
    path = runs[kind].path
    check_snapshot(path)
    found = _datasets(path)
    assert {"time", "risk", "density", WALL_TIME} <= set(found)
    for name, (attrs, dtype) in found.items():
        assert attrs.get("long_name"), name
        if dtype.kind in "fiu":
            assert attrs["units"] == ("s" if name == WALL_TIME else "1"), name
    axes = [a for a in runs[kind].axes if a != "layer"]      # a layered run's frozen first axis
    assert axes == ["a", "w"]
    for axis in axes:
        assert found[axis][0]["long_name"] == axis_long_name(axis)
    if kind == "resnet":
        assert found["layer"][0]["long_name"] == LONG_NAMES["layer"]


def test_axis_meanings():
    assert axis_long_name("a") == "a (output weight, cell centres)"
    assert axis_long_name("w2") == "w2 (input weight, cell centres)"
    assert axis_long_name("b").startswith("b (bias")
    assert axis_long_name("x") == "x (axis, cell centres)"       # a potential model's own name
    assert attributes("outside_mass")["units"] == "1"
    assert "units" not in attributes("component")
    assert attributes("new_extra")["long_name"].startswith("new_extra (")


@pytest.mark.parametrize("kind", ["particle", "resnet"])
def test_component_holds_the_axis_names(runs, kind):
    r = runs[kind]
    with h5py.File(r.path) as f:
        names = [v.decode() for v in f["component"][()]]
        stored_axes = [a.decode() if isinstance(a, bytes) else str(a) for a in f.attrs["axes"]]
    assert names == stored_axes
    assert names == ["a", "w"]          # both cases are on (a, w); a layered run stores no layer here


@pytest.mark.skipif(not (has_module("xarray") and has_module("h5netcdf")), reason="needs xarray and h5netcdf")
def test_xarray_selects_a_position_component_by_axis_name(runs):
    r = runs["particle"]
    with r.to_xarray() as ds:
        w = ds["positions"].sel(component="w").isel(time=-1).values
        assert ds["risk"].attrs["units"] == "1" and "risk" in ds["risk"].attrs["long_name"]
    np.testing.assert_array_equal(w, r.positions(len(r.time) - 1)[:, 1])


@pytest.mark.parametrize("kind", ["fv", "particle", "resnet"])
def test_the_resolved_solver_options_are_stored(runs, kind):
    r = runs[kind]
    case = case_from_text(SMALL if kind != "resnet" else RESNET, "c.toml")
    solver = "particle" if kind == "resnet" else kind
    spec = next(s for s in case.solvers if s.kind == solver)
    assert r.solver_options == complete(solver, spec.options)
    assert r.solver_options == open_run(r.path).solver_options      # read back from the file
    if kind == "particle":
        assert r.solver_options["particles"] == 200 and r.solver_options["lr"] == 0.1


@pytest.mark.parametrize("kind", ["fv", "particle"])
def test_wall_time_grows_with_every_snapshot(runs, kind):
    wall = runs[kind].wall_time
    assert wall.shape == runs[kind].time.shape
    assert wall[0] >= 0 and np.all(np.diff(wall) > 0)
    assert wall[-1] < 600                    # seconds, not nanoseconds


def test_resume_continues_the_clock(tmp_path):
    """A stopped run resumed: its wall times keep growing from the last snapshot's."""
    case = case_from_text(TWO_LAYER_2D.replace("snapshots = 3", "snapshots = 4") + '[solver]\nkind = "fv"\n', "c.toml")

    class Stop(Exception):
        pass

    def stop_after_two(index, t, observation):
        if index == 1:
            raise Stop

    from gflow.app.execute import run_case
    with pytest.raises(Stop):
        run_case(case, tmp_path, on_snapshot=stop_after_two, echo=lambda line: None)
    first = open_run(tmp_path / "fv.h5").wall_time
    assert len(first) == 2
    [resumed] = run(case, output=tmp_path, resume=True)
    wall = resumed.wall_time
    assert len(wall) == 4 and np.all(np.diff(wall) > 0)
    np.testing.assert_array_equal(wall[:2], first)


def test_info_prints_options_and_wall_time(runs, capsys):
    assert main(["info", str(runs["particle"].path)]) == 0
    out = capsys.readouterr().out
    assert "particles = 200" in out and "lr = 0.1" in out
    line = next(l for l in out.splitlines() if l.startswith("wall"))
    assert f"{runs['particle'].wall_time[-1]:.3g} s" in line


def test_bad_solver_options_attribute_is_one_clear_error(runs, tmp_path, capsys):
    path = tmp_path / "fv.h5"
    path.write_bytes(runs["fv"].path.read_bytes())
    with h5py.File(path, "a") as f:
        f.attrs["solver_options"] = "[1, 2"
    with pytest.raises(InputError, match="solver_options"):
        _ = open_run(path).solver_options
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "solver_options" in err


def test_the_reference_page_lists_every_labelled_dataset():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "snapshots.md").read_text()
    missing = [name for name in LONG_NAMES if f"`{name}`" not in page]
    assert not missing, f"docs/reference/snapshots.md does not list {missing}"
