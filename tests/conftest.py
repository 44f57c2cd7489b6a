"""Shared test helpers: small cases as TOML text, and the SPEC.md snapshot checker."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from gflow.snapshot_check import problems

ROOT = Path(__file__).resolve().parents[1]


def check_snapshot(path) -> None:
    """Assert that a snapshot file follows SPEC.md's layout (`gflow check`, in-process)."""
    found = problems(path)
    assert not found, f"{path}: " + "; ".join(found)


def result_datasets(path) -> dict:
    """Every root dataset of a run file but `wall_time`, which is a measurement (the seconds a run
    took), not a result: what two runs of one case must agree on bit for bit."""
    import h5py

    from gflow.snapshots import WALL_TIME

    with h5py.File(path, "r") as f:
        return {name: ds[()] for name, ds in f.items() if isinstance(ds, h5py.Dataset) and name != WALL_TIME}


def assert_same_results(a, b) -> None:
    """Two run files hold the same datasets, equal bit for bit (`result_datasets`)."""
    import numpy as np

    da, db = result_datasets(a), result_datasets(b)
    assert sorted(da) == sorted(db), (a, b)
    for name, value in da.items():
        assert value.shape == db[name].shape, name
        np.testing.assert_array_equal(value, db[name], err_msg=f"{a}: {name} differs from {b}")   # bitwise


def interrupted_and_resumed(case, tmp_path, kind: str):
    """Run `case` whole, then again stopped by Ctrl-C after its second snapshot and resumed;
    the resumed file passes `gflow check` and holds the whole run's results bit for bit.
    Returns (the whole run, the resumed file's path)."""
    import h5py

    from gflow.app.execute import run_case

    quiet = {"progress": False, "echo": lambda line: None, "warn": lambda line: None}
    [whole] = run_case(case, tmp_path / "whole", **quiet)

    def stop(index, t, obs):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_case(case, tmp_path / "cut", on_snapshot=stop, **quiet)
    path = tmp_path / "cut" / f"{kind}.h5"
    with h5py.File(path) as f:
        assert f["time"].shape == (2,)
    [resumed] = run_case(case, tmp_path / "cut", resume=True, **quiet)
    assert resumed.resumed_from == pytest.approx(case.times[1])
    check_snapshot(path)
    assert_same_results(whole.path, path)
    return whole, path


def run_gflow(*args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """Run the command line in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "gflow.app.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


@pytest.fixture
def write_case(tmp_path):
    """Write TOML text to tmp_path/NAME.toml and return the path."""
    def write(text: str, name: str = "case") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path
    return write


TWO_LAYER_2D = """
name = "small"
[model]
kind = "two_layer"
activation = "tanh"
[target]
neurons = [{ a = 1.5, w = 2.0 }]
[data]
nodes = 16
[initial]
distribution = "gaussian"
mean = [0.0, 0.0]
std = [0.5, 0.8]
[grid]
bounds = [[-4.0, 4.0], [-5.0, 5.0]]
cells = [32, 32]
[time]
end = 1.0
snapshots = 3
"""


#: the quickstart case as first bundled (box [-4, 4] x [-5, 5]), pinned here so that the
#: figures measured on it stay valid whatever becomes of cases/quickstart.toml
TANH_TEACHER = """
name = "tanh_teacher"
[model]
kind = "two_layer"
activation = "tanh"
bias = false
input_dim = 1
[target]
neurons = [{ a = 1.5, w = 2.0 }]
[data]
distribution = "uniform"
low = -1.0
high = 1.0
nodes = 32
[initial]
distribution = "gaussian"
mean = [0.0, 0.0]
std = [0.5, 0.8]
[grid]
bounds = [[-4.0, 4.0], [-5.0, 5.0]]
cells = [128, 128]
[time]
end = 10.0
snapshots = 21
[solver]
kind = "fv"
"""


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
