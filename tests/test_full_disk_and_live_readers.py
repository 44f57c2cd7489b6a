"""A full disk stops a run in one line and keeps its file valid; readers never stop a run.

The full disk is real: the run's process gets a file-size limit (RLIMIT_FSIZE, which Python's
ignored SIGXFSZ turns into EFBIG on the write that crosses it), the same failure path as ENOSPC.
"""
import os
import resource
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT, check_snapshot, run_gflow
from gflow.errors import InputError
from gflow.h5io import appending, reading
from gflow.snapshots import open_run

QUICK = ["--set", "grid.cells=[48,32]", "--set", "time.end=10", "--set", "time.snapshots=41"]
CASE = ROOT / "cases" / "quickstart.toml"


def run_limited(limit: int, *args) -> subprocess.CompletedProcess:
    """`gflow ARGS` with a file-size limit of `limit` bytes."""
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-m", "gflow.app.cli", *map(str, args)], capture_output=True,
                          text=True, preexec_fn=set_limit, timeout=300)


def snapshots_in(path) -> int:
    with h5py.File(path, "r") as f:
        return f["time"].shape[0]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert run_gflow("run", CASE, "-o", out, *QUICK).returncode == 0
    return out / "fv.h5"


@pytest.mark.parametrize("limit", [150_000, 330_000, 520_000])
def test_a_full_disk_stops_the_run_in_one_line_and_resume_completes_it_bitwise(tmp_path, whole, limit):
    result = run_limited(limit, "run", CASE, "-o", tmp_path, *QUICK)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "no room" in result.stderr and "--resume" in result.stderr
    path = tmp_path / "fv.h5"
    check_snapshot(path)                         # valid up to the last complete snapshot
    held = snapshots_in(path)
    assert 1 <= held < 41 and f"keeps its {held} snapshots" in result.stderr
    assert os.path.getsize(path) <= limit
    with h5py.File(path, "r") as f, h5py.File(whole, "r") as g:
        np.testing.assert_array_equal(f["density"][()], g["density"][:held])   # nothing half-written
    resumed = run_gflow("run", CASE, "-o", tmp_path, "--resume", *QUICK)
    assert resumed.returncode == 0, resumed.stderr
    check_snapshot(path)
    with h5py.File(path, "r") as f, h5py.File(whole, "r") as g:
        for name in ("time", "density", "risk", "energy", "mass"):
            np.testing.assert_array_equal(f[name][()], g[name][()])


def test_a_full_disk_keeps_a_particle_run_resumable_exactly(tmp_path):
    """Particles carry random-generator state in `restart`: it must survive the failed append."""
    args = ("run", CASE, "-o", tmp_path, "--solver", "particle", "--set", "solver.particles=4000",
            "--set", "time.end=2", "--set", "time.snapshots=21", "--set", "grid.cells=[16,16]")
    whole = tmp_path / "whole"
    assert run_gflow(*args[:3], whole, *args[4:]).returncode == 0
    result = run_limited(700_000, *args)
    assert result.returncode == 1 and "no room" in result.stderr and "Traceback" not in result.stderr, result.stderr
    path = tmp_path / "particle.h5"
    check_snapshot(path)
    assert 1 <= snapshots_in(path) < 21
    assert run_gflow(*args, "--resume").returncode == 0
    with h5py.File(path, "r") as f, h5py.File(whole / "particle.h5", "r") as g:
        for name in ("positions", "density", "risk"):
            np.testing.assert_array_equal(f[name][()], g[name][()])


def test_no_room_for_the_new_file_leaves_nothing_behind(tmp_path):
    result = run_limited(2_000, "run", CASE, "-o", tmp_path, *QUICK)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot create the run file" in result.stderr and "File too large" in result.stderr
    assert not (tmp_path / "fv.h5").exists()


def test_a_real_full_disk_where_a_small_file_system_can_be_mounted(tmp_path):
    """ENOSPC itself, on a 400 kB tmpfs (needs the right to mount: skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here")
    try:
        result = run_gflow("run", CASE, "-o", disk / "out", *QUICK)
        assert result.returncode == 1 and "No space left on device" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
        check_snapshot(disk / "out" / "fv.h5")
        held = snapshots_in(disk / "out" / "fv.h5")
        assert held >= 1 and f"keeps its {held} snapshots" in result.stderr
        second = run_gflow("run", CASE, "-o", disk / "out2", *QUICK)    # the disk is full now
        assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
        assert "--force" in second.stderr or not (disk / "out2" / "fv.h5").exists()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_reserve_raises_disk_full_under_a_file_size_limit(tmp_path):
    code = ("import resource, os, sys; from gflow.h5io import reserve, DiskFull\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))\n"
            f"fd = os.open({str(tmp_path / 'x')!r}, os.O_RDWR | os.O_CREAT)\n"
            "reserve(fd, 5_000)\n"
            "try:\n    reserve(fd, 20_000)\nexcept DiskFull as e:\n    sys.exit(7)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 7
    assert os.path.getsize(tmp_path / "x") == 0      # room proven, then given back: HDF5 writes it


HOLDERS = """
import sys, time, h5py
path, stop = sys.argv[1], time.monotonic() + 120
held, opened = [], 0
while time.monotonic() < stop:
    try:
        held.append(h5py.File(path, "r"))     # never closed while the run writes
        opened += 1
        held[-1]["density"].shape
    except OSError:
        pass                                   # opened mid-append: this reader's problem only
    if sys.stdin.readline() == "":
        break
print(opened, flush=True)
"""


def test_readers_holding_the_file_open_never_stop_the_run(tmp_path):
    """Another program's h5py readers (HDF5's lock) held open across appends, and gflow's own
    reader in a loop, beside a live run: the run finishes, every gflow read is a complete snapshot."""
    out = tmp_path / "live"
    process = subprocess.Popen([sys.executable, "-m", "gflow.app.cli", "run", str(CASE), "-o", str(out),
                                "--set", "grid.cells=[48,32]", "--set", "time.end=10", "--set", "time.snapshots=161"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = out / "fv.h5"
    holders = subprocess.Popen([sys.executable, "-c", HOLDERS, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    reads, held_here, seen = 0, [], []
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            run = open_run(path)
        except InputError:
            time.sleep(0.005)     # before the file exists
            continue
        if len(run.time):
            snap = run.snapshot(len(run.time) - 1)
            assert abs(snap.density.sum() * run.cell_volume - 1) < 1e-9
            reads += 1
            seen.append(len(run.time))
        holders.stdin.write("\n")
        holders.stdin.flush()
        if not held_here and seen:
            # a reader of this very process, as in a notebook: gflow's reader must still open
            # the file, and see it grow (HDF5 would share the held, stale, view)
            held_here.append(h5py.File(path, "r"))
            held_at = seen[-1]
    out_text, err_text = process.communicate(timeout=60)
    opened = int(holders.communicate(timeout=60)[0])
    held_here[0].close()
    assert process.returncode == 0, err_text
    assert reads >= 10 and opened >= 10, (reads, opened)
    assert seen[-1] > held_at + 50
    check_snapshot(path)
    assert snapshots_in(path) == 161


def _hold_lock(path, kind: str, seconds: float) -> subprocess.Popen:
    """Another process holding gflow's record lock on `path` for `seconds`."""
    mode, lock = ("os.O_RDWR", "fcntl.LOCK_EX") if kind == "writer" else ("os.O_RDONLY", "fcntl.LOCK_SH")
    code = (f"import fcntl, os, sys, time; fd = os.open({str(path)!r}, {mode}); fcntl.lockf(fd, {lock}); "
            f"print('locked', flush=True); time.sleep({seconds})")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_reader_waits_for_an_append_and_never_hangs(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3.0)
    holder = _hold_lock(path, "writer", 0.6)
    start = time.monotonic()
    with reading(path) as f:                      # waits for the "append" to end
        assert f["x"][2] == 2.0
    assert 0.3 < time.monotonic() - start < 10
    holder.wait()
    holder = _hold_lock(path, "writer", 30)
    start = time.monotonic()
    with reading(path, wait=0.3) as f:            # a stuck writer: read anyway after the wait
        assert f["x"][1] == 1.0
    assert time.monotonic() - start < 5
    holder.kill()


def test_the_writer_waits_for_readers_a_bounded_time(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3.0)
    holder = _hold_lock(path, "reader", 30)
    start = time.monotonic()
    with appending(path, 0, wait=0.3) as f:
        f["y"] = np.ones(2)
    assert time.monotonic() - start < 5
    holder.kill()
    with reading(path) as f:
        assert f["y"][1] == 1.0


def test_a_fifo_or_a_directory_is_not_a_run_file(tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        result = run_gflow("info", path, timeout=30)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    with pytest.raises(OSError):
        with reading(fifo):
            pass


def test_appending_never_follows_a_symlink(tmp_path):
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as f:
        f["x"] = np.arange(3.0)
    before = target.read_bytes()
    link = tmp_path / "link.h5"
    link.symlink_to(target)
    with pytest.raises(OSError):
        with appending(link, 0):
            pass
    assert target.read_bytes() == before


def test_resume_of_a_complete_but_damaged_file_is_refused(tmp_path, whole):
    path = tmp_path / "fv.h5"
    path.write_bytes(whole.read_bytes())
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = ""
    result = run_gflow("run", CASE, "-o", tmp_path, "--resume", *QUICK)
    assert result.returncode == 2 and "complete but damaged" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_sigkill_at_random_points_never_leaves_an_unreadable_file(tmp_path):
    """Kills during appends: every file passes gflow check (with the reserve kept through the
    append, 4 to 7 of 40 did not: HDF5's end-of-allocation behind the file's end)."""
    import random
    from gflow.snapshot_check import problems
    rng = random.Random(5)
    for i in range(8):
        out = tmp_path / f"k{i}"
        process = subprocess.Popen([sys.executable, "-m", "gflow.app.cli", "run", str(CASE), "-o", str(out), "-v",
                                    "--set", "grid.cells=[32,24]", "--set", "time.end=10", "--set", "time.snapshots=41"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        at, seen = rng.randint(1, 39), 0
        for line in process.stdout:
            seen += line.startswith("snapshot ")
            if seen >= at:
                break
        time.sleep(rng.uniform(0, 0.05))
        process.kill()
        process.wait()
        assert not problems(out / "fv.h5"), (i, problems(out / "fv.h5"))
