"""A damaged run file never hangs the command line (gflow.app.watchdog)."""
import os
import signal
import time

import pytest

from conftest import ROOT, run_gflow
from gflow import h5io
from gflow.app import watchdog

pytestmark = pytest.mark.skipif(not watchdog.available(), reason="no os.fork here")


@pytest.fixture(scope="module")
def looping_file(tmp_path_factory):
    """A run whose global heap (the case text) has 32 zeroed bytes: HDF5 2.0.0 loops for ever
    reading it (another HDF5 may refuse it at once: either way one line and exit 2)."""
    out = tmp_path_factory.mktemp("run")
    assert run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", out, "--set", "grid.cells=[16,16]",
                     "--set", "time.end=0.5", "--set", "time.snapshots=3").returncode == 0
    data = bytearray((out / "fv.h5").read_bytes())
    heap = data.find(b"GCOL")
    assert heap > 0
    data[heap + 16:heap + 48] = bytes(32)
    (out / "bad.h5").write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("command", [["info"], ["check"], ["plot", "-o", "x.png"], ["compare", "fv.h5"],
                                     ["resume"]])
def test_a_file_that_hangs_hdf5_is_one_line_and_exit_2(looping_file, command, tmp_path, monkeypatch):
    monkeypatch.setenv("GFLOW_READ_SECONDS", "2")
    bad = looping_file / "bad.h5"
    if command == ["resume"]:
        (tmp_path / "fv.h5").write_bytes(bad.read_bytes())
        args = ["run", ROOT / "cases" / "quickstart.toml", "-o", tmp_path, "--resume", "--set", "grid.cells=[16,16]",
                "--set", "time.end=0.5", "--set", "time.snapshots=3"]
    elif command[0] == "compare":
        args = ["compare", bad, looping_file / "fv.h5", "--plot", tmp_path / "c.png"]
    elif command[0] == "plot":
        args = ["plot", bad, "-o", tmp_path / "x.png"]
    else:
        args = [*command, bad]
    start = time.monotonic()
    result = run_gflow(*args, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "bad.h5" in result.stderr or "fv.h5" in result.stderr
    assert time.monotonic() - start < 40


def test_a_read_over_its_allowance_is_killed_and_named(tmp_path, monkeypatch, capfd):
    path = tmp_path / "f.h5"
    import h5py
    with h5py.File(path, "w") as f:
        f["x"] = [1.0]
    monkeypatch.setattr(h5io, "READ_SECONDS", 0.5)

    def stuck() -> int:
        with h5io.reading(path):
            time.sleep(600)          # as HDF5 looping would, only interruptible
        return 0

    start = time.monotonic()
    assert watchdog.supervised(stuck) == 2
    assert time.monotonic() - start < 20
    err = capfd.readouterr().err
    assert "f.h5: reading it did not finish in the 0 s allowed" in err or "f.h5: reading it did not" in err


def test_statuses_and_output_pass_through(capfd):
    def say() -> int:
        print("from the child")
        return 3
    assert watchdog.supervised(say) == 3
    assert "from the child" in capfd.readouterr().out

    def killed() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        return 0
    assert watchdog.supervised(killed) == 128 + signal.SIGTERM


def test_long_reads_within_their_allowance_are_left_alone(tmp_path, monkeypatch):
    path = tmp_path / "f.h5"
    import h5py
    with h5py.File(path, "w") as f:
        f["x"] = [1.0]
    monkeypatch.setattr(h5io, "READ_SECONDS", 2.0)

    def slow() -> int:
        for _ in range(3):           # three reads of 1 s each: 3 s in all, each within 2 s
            with h5io.reading(path):
                time.sleep(1.0)
        return 0
    assert watchdog.supervised(slow) == 0
