"""The command line as a user runs it: files per SPEC.md, progress, info, bundled cases."""
import json
import subprocess
import sys
import tomllib

import h5py
import numpy as np
import pytest

from conftest import ROOT, check_snapshot, has_module, run_gflow

CASES = sorted((ROOT / "cases").glob("*.toml"))


def smoke_overrides(case_path, cells=12, solver=None):
    """--set arguments that shrink a bundled case to a few seconds."""
    doc = tomllib.loads(case_path.read_text())
    ndim = len(doc["grid"]["cells"])
    time = doc["time"]
    # a case that lists its times (chizat_relu: whole steps of lr = 1) keeps its first three
    shorter = [f"time.times={json.dumps(time['times'][:3])}"] if "times" in time else \
        [f"time.end={time['end'] / 10}", "time.snapshots=3"]
    sets = [f"grid.cells={json.dumps([cells] * ndim)}", *shorter]
    return [arg for s in sets for arg in ("--set", s)]


def test_run_writes_spec_files(tmp_path):
    out = tmp_path / "qs"
    result = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", out,
                       "--set", "grid.cells=[32, 40]", "--set", "time.end=1.0", "--set", "time.snapshots=5")
    assert result.returncode == 0, result.stderr
    path = out / "fv.h5"
    assert f"wrote {path}" in result.stdout and "steps in" in result.stdout
    assert result.stderr == ""   # no progress bar when not on a terminal
    check_snapshot(path)
    with h5py.File(path) as f:
        assert f.attrs["format"] == "gflow" and f.attrs["solver"] == "fv"
        assert list(f.attrs["axes"]) == ["a", "w"]
        np.testing.assert_array_equal(f["time"][()], [0.0, 0.25, 0.5, 0.75, 1.0])
        assert f["density"].shape == (5, 32, 40)
        case = tomllib.loads(f.attrs["case"])
        assert case["grid"]["cells"] == [32, 40] and case["solver"]["kind"] == "fv"
        risk = f["risk"][()]
        assert risk[-1] < risk[0]
        assert np.all(np.abs(f["mass"][()] - 1) < 1e-12)


@pytest.mark.skipif(not has_module("xarray") or not has_module("h5netcdf"), reason="needs xarray + h5netcdf")
def test_xarray_opens_a_run(tmp_path):
    import xarray as xr
    result = run_gflow("run", ROOT / "cases" / "semicircle.toml", "-o", tmp_path, "--set", "grid.cells=[40]",
                       "--set", "time.end=0.5", "--set", "time.snapshots=3")
    assert result.returncode == 0, result.stderr
    with xr.open_dataset(tmp_path / "fv.h5", engine="h5netcdf") as ds:
        assert ds["density"].dims == ("time", "x")
        assert ds["x"].shape == (40,) and ds["time"].values.tolist() == [0.0, 0.25, 0.5]
        dx = float(ds["x"][1] - ds["x"][0])
        assert float(ds["density"].isel(time=-1).sum()) * dx == pytest.approx(1.0, abs=1e-12)


def test_info(tmp_path):
    run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", tmp_path, "--set", "grid.cells=[16,16]",
              "--set", "time.end=0.2", "--set", "time.snapshots=2")
    result = run_gflow("info", tmp_path / "fv.h5")
    assert result.returncode == 0, result.stderr
    assert "solver   fv" in result.stdout and "2 snapshots" in result.stdout and "16 x 16" in result.stdout


@pytest.mark.parametrize("case_path", CASES, ids=[c.stem for c in CASES])
def test_bundled_case_runs_at_smoke_size(case_path, tmp_path):
    result = run_gflow("run", case_path, "-o", tmp_path, *smoke_overrides(case_path))
    assert result.returncode == 0, result.stderr
    files = list(tmp_path.glob("*.h5"))
    assert files
    for path in files:
        check_snapshot(path)
        with h5py.File(path) as f:
            energy = f["energy"][()]
            if f.attrs["solver"] == "fv":   # a gradient flow: the free energy never rises
                assert np.all(np.diff(energy) <= 1e-10 * abs(energy[0])), energy


def test_ctrl_c_after_the_command_ends_prints_no_traceback():
    """A SIGINT that lands once the command is over (the fault suite caught one in the
    interpreter's shutdown, in weakref's atexit hook) leaves the status and prints nothing."""
    code = ("import os, signal, sys\n"
            "from gflow.__main__ import entry\n"
            "sys.argv = ['gflow', 'template', '--list']\n"
            "status = entry()\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "two_layer" in result.stdout
    assert result.stderr == "", result.stderr
