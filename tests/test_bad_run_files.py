"""A truncated, corrupt or foreign file given to compare, plot or info: one line, exit 2."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from gflow.app.cli import main
from runfiles import gaussian, write_grid_run
from conftest import run_gflow

BOX = [[-4.0, 4.0], [-4.0, 4.0]]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    rho = gaussian(BOX, (8, 8), [0.0, 0.0], [1.0, 1.0])
    return write_grid_run(d / "good.h5", BOX, (8, 8), [rho, rho])


def _truncated(good, path):
    data = good.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _random(good, path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _foreign(good, path):
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3.0)


def _missing(good, path):
    pass


def _no_density(good, path):
    # metadata reads fine; the failure comes only when a snapshot is read
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "a") as f:
        del f["density"]


def _nan_density(good, path):
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "a") as f:
        f["density"][1] = np.nan


def _empty(good, path):
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "a") as f:
        for name in ("time", "risk", "energy", "mass"):
            f[name].resize(0, axis=0)


BAD = {"truncated": _truncated, "random": _random, "foreign": _foreign, "missing": _missing,
       "no_density": _no_density, "nan_density": _nan_density, "empty": _empty}


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("command", ["compare_a", "compare_b", "plot", "info"])
def test_bad_file_gives_one_line_and_exit_2(good, tmp_path, capsys, kind, command):
    bad = tmp_path / "bad.h5"
    BAD[kind](good, bad)
    if command == "info" and kind in ("no_density", "nan_density", "empty"):
        pytest.skip("info reads metadata only; these files are readable for it")
    argv = {"compare_a": ["compare", bad, good], "compare_b": ["compare", good, bad],
            "plot": ["plot", bad, "-o", tmp_path / "out.png"], "info": ["info", bad]}[command]
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("gflow: ")
    assert str(bad) in captured.err
    assert captured.out == ""
    assert not (tmp_path / "out.png").exists()


def test_bad_file_through_the_installed_command(good, tmp_path):
    bad = tmp_path / "bad.h5"
    _truncated(good, bad)
    for argv in (["compare", good, bad], ["plot", bad], ["info", bad]):
        result = run_gflow(*argv, timeout=120)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
