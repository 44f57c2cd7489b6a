"""Runs survive kills, resume exactly, and never overwrite or share an output file."""
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT, check_snapshot, run_gflow

QUICK = ["--set", "grid.cells=[48,32]", "--set", "time.end=10", "--set", "time.snapshots=41"]


def start_run(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "gflow.app.cli", "run", str(ROOT / "cases" / "quickstart.toml"),
                             "-o", str(out), "-v", *QUICK, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)


def kill_after(process, snapshots: int, extra_delay: float) -> int:
    """SIGKILL `process` some time after it reported `snapshots` snapshots; return how many it reported."""
    seen = 0
    for line in process.stdout:
        if line.startswith("snapshot "):
            seen += 1
            if seen >= snapshots:
                break
    time.sleep(extra_delay)
    os.kill(process.pid, signal.SIGKILL)
    # everything printed before the kill counts as written
    seen += sum(line.startswith("snapshot ") for line in process.stdout.read().splitlines())
    process.wait()
    return seen


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_leaves_a_valid_file_with_every_snapshot_written(tmp_path, seed):
    rng = random.Random(seed)
    out = tmp_path / "run"
    process = start_run(out)
    seen = kill_after(process, rng.randint(1, 20), rng.uniform(0.0, 0.05))
    path = out / "fv.h5"
    check_snapshot(path)
    with h5py.File(path) as f:
        assert f["time"].shape[0] >= seen
        np.testing.assert_allclose(f["time"][()], np.linspace(0, 10, 41)[:f["time"].shape[0]])


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    assert run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", whole, *QUICK).returncode == 0
    part = tmp_path / "part"
    kill_after(start_run(part), 12, 0.0)
    result = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", part, "--resume", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "resumed at t =" in result.stdout
    check_snapshot(part / "fv.h5")
    with h5py.File(whole / "fv.h5") as a, h5py.File(part / "fv.h5") as b:
        assert a["time"].shape == b["time"].shape
        for name in ("density", "risk", "energy", "mass"):
            np.testing.assert_array_equal(a[name][()], b[name][()])   # deterministic: bitwise
    again = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", part, "--resume", *QUICK)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_existing_run_is_never_overwritten_without_force(tmp_path):
    args = ("run", ROOT / "cases" / "quickstart.toml", "-o", tmp_path, "--set", "grid.cells=[16,16]",
            "--set", "time.end=0.5")
    assert run_gflow(*args).returncode == 0
    before = (tmp_path / "fv.h5").read_bytes()
    result = run_gflow(*args)
    assert result.returncode == 2 and "--force" in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "fv.h5").read_bytes() == before
    assert run_gflow(*args, "--force").returncode == 0
    different = run_gflow(*args[:-1], "time.end=0.7", "--resume")
    assert different.returncode == 2 and "time.end differs" in different.stderr


def test_second_writer_is_refused_while_the_first_runs(tmp_path):
    first = start_run(tmp_path, "--set", "time.end=200", "--set", "time.snapshots=401")
    try:
        for line in first.stdout:
            if line.startswith("snapshot "):
                break
        result = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", tmp_path, "--force", *QUICK)
        assert result.returncode == 2 and "another gflow run is writing" in result.stderr
    finally:
        first.kill()
        first.wait()
    check_snapshot(tmp_path / "fv.h5")


def test_resumed_sgd_langevin_particles_are_bitwise_identical(tmp_path):
    """Minibatches and noise continue from the saved generator state, bit for bit."""
    particle = ["--solver", "particle", "--set", "solver.particles=3000", "--set", "solver.batch=8",
                "--set", "regularization.temperature=0.001", "--set", "regularization.weight_decay=0.1"]
    whole = tmp_path / "whole"
    result = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", whole, *QUICK, *particle)
    assert result.returncode == 0, result.stderr
    part = tmp_path / "part"
    kill_after(start_run(part, *particle), 15, 0.0)
    result = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", part, "--resume", *QUICK, *particle)
    assert result.returncode == 0 and "resumed at t =" in result.stdout, result.stdout + result.stderr
    with h5py.File(whole / "particle.h5") as a, h5py.File(part / "particle.h5") as b:
        for name in ("positions", "density", "risk", "energy"):
            np.testing.assert_array_equal(a[name][()], b[name][()])
