"""A truncated, corrupt, foreign or hostile file given to compare, plot or info: one line, exit 2.

The hostile classes one by one, the peak memory and the generated damage are in
tests/test_hostile_run_files.py; here each command meets a few of them beside the damaged files.
"""
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


def _edited(good, path, edit):
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "a") as f:
        edit(f)


def _huge_time(good, path):
    # 2e9 snapshots declared, none stored: the file stays small, a read would take 16 GB
    def edit(f):
        del f["time"]
        f.create_dataset("time", (2_000_000_000,), maxshape=(None,), dtype="f8", chunks=(1024,))
    _edited(good, path, edit)


def _string_time(good, path):
    def edit(f):
        del f["time"]
        f["time"] = np.array(["0", "1"], dtype=object)
    _edited(good, path, edit)


def _external_time(good, path):
    def edit(f):
        del f["time"]
        f["time"] = h5py.ExternalLink(str(good), "/time")
    _edited(good, path, edit)


def _soft_density(good, path):
    def edit(f):
        del f["density"]
        f["density"] = h5py.SoftLink("/a")
    _edited(good, path, edit)


def _deep_case(good, path):
    def edit(f):
        f.attrs["case"] = "a = " + "[" * 5000 + "]" * 5000
    _edited(good, path, edit)


BAD = {"truncated": _truncated, "random": _random, "foreign": _foreign, "missing": _missing,
       "no_density": _no_density, "nan_density": _nan_density, "empty": _empty, "huge_time": _huge_time,
       "string_time": _string_time, "external_time": _external_time, "soft_density": _soft_density,
       "deep_case": _deep_case}
#: damage that only reading a snapshot meets (info reads metadata only)
SNAPSHOT_DAMAGE = ("no_density", "nan_density", "empty", "soft_density")


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("command", ["compare_a", "compare_b", "plot", "info"])
def test_bad_file_gives_one_line_and_exit_2(good, tmp_path, capsys, kind, command):
    bad = tmp_path / "bad.h5"
    BAD[kind](good, bad)
    if command == "info" and kind in SNAPSHOT_DAMAGE:
        pytest.skip("info reads metadata only; these files are readable for it")
    argv = {"compare_a": ["compare", bad, good], "compare_b": ["compare", good, bad],
            "plot": ["plot", bad, "-o", tmp_path / "out.png"], "info": ["info", bad]}[command]
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("gflow: ")
    assert str(bad) in captured.err
    assert captured.out == "" and "Traceback" not in captured.err
    assert not (tmp_path / "out.png").exists()


def test_bad_file_through_the_installed_command(good, tmp_path):
    bad = tmp_path / "bad.h5"
    _truncated(good, bad)
    for argv in (["compare", good, bad], ["plot", bad], ["info", bad]):
        result = run_gflow(*argv, timeout=120)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
