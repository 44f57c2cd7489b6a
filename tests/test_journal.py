"""The rollback journal (gflow.journal): an append cut at any write leaves, for every gflow reader,
the file exactly as the last complete append left it.

The crash is real and exhaustive: a forked child appends one snapshot and `os._exit`s at the
k-th write of the append (the journal's or the run file's), after writing half of that write's
bytes (a torn write); k runs over every write the append makes. The parent then reads the file
through `gflow check` and compares bytes.
"""
from __future__ import annotations

import os
import time

import h5py
import numpy as np
import pytest

from gflow import journal
from gflow.app.api import load_case, run
from gflow.h5io import appending, reading
from gflow.run_file import open_run
from gflow.snapshot_check import problems
from gflow.snapshots import Observation, SnapshotWriter


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    """A small fv run of the quickstart case: 3 snapshots, with its restart state."""
    out = tmp_path_factory.mktemp("journal")
    case = load_case("cases/quickstart.toml", ["grid.cells=[12,10]", "time.end=0.2", "time.snapshots=3"], "fv")
    run(case, output=out)
    # HDF5's persistent free-space manager (gflow.h5io.FREE_SPACE) records the run's free space
    # at the first open after it; from then on an open and close changes no byte (a reopen is
    # idempotent), so every cut below must give back exactly these bytes
    SnapshotWriter.reopen(out / "fv.h5")
    return out / "fv.h5"


def _append_once(path, cut_at: int | None) -> None:
    """Append a copy of the last snapshot (with its restart state); with `cut_at`, die at that write."""
    source = open_run(path)
    n = len(source.time) - 1
    obs = Observation(density=source.density(n), risk=float(source.risk[n]), energy=float(source.energy[n]),
                      mass=float(source.mass[n]))
    restart = source.restart()
    if cut_at is not None:
        count = {"n": 0}

        def dying(real):
            def write(fd, data, *offset):
                count["n"] += 1
                if count["n"] == cut_at:
                    view = memoryview(data)
                    real(fd, view[:len(view) // 2], *offset)     # a torn write, then death
                    os._exit(17)
                return real(fd, data, *offset)
            return write

        journal._pwrite_all = dying(journal._pwrite_all)
        journal._write_all = dying(journal._write_all)
    SnapshotWriter.reopen(path).append(float(source.time[-1]) + 1.0, obs, restart)


def _writes_of_one_append(path, tmp_path) -> int:
    """How many journal and file writes one append makes (counted in a child, file untouched)."""
    copy = tmp_path / "count.h5"
    copy.write_bytes(path.read_bytes())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        count = {"n": 0}
        for name in ("_pwrite_all", "_write_all"):
            real = getattr(journal, name)

            def counted(*args, real=real):
                count["n"] += 1
                return real(*args)
            setattr(journal, name, counted)
        try:
            _append_once(copy, None)
            os.write(write, str(count["n"]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    return int(os.read(read, 64))


def test_an_append_cut_at_every_write_leaves_the_last_complete_file(run_file, tmp_path):
    before = run_file.read_bytes()
    writes = _writes_of_one_append(run_file, tmp_path)
    assert writes >= 5      # journal header, saved metadata, new rows: a real append
    target = tmp_path / "fv.h5"
    for k in range(1, writes + 1):
        target.write_bytes(before)
        _cut(target, k)
        assert problems(target) == [], k
        # the reader rolled the append back in place: the bytes, the raw file and the journal
        assert target.read_bytes() == before, k
        assert not journal.journal_path(target).exists(), k
        with h5py.File(target, "r") as f:
            assert f["time"].shape == (3,)
    # and the writer then appends as if nothing had happened
    _append_once(target, None)
    assert problems(target) == [] and len(open_run(target).time) == 4


def _cut(path, k: int) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            _append_once(path, k)
        finally:
            os._exit(0)   # pragma: no cover - the cut always comes first
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 17, k


def test_a_reader_that_cannot_roll_back_reads_through_the_journal(run_file, tmp_path):
    """While another process holds the file (here: a reader's shared lock), a reader may not roll
    the dead writer's append back: it reads the old file through the journal and writes nothing."""
    import fcntl
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    _cut(target, _writes_of_one_append(run_file, tmp_path) - 2)
    cut = target.read_bytes()
    assert journal.journal_path(target).exists() and cut != run_file.read_bytes()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:           # another reader, holding its lock until told to go
        fd = os.open(target, os.O_RDONLY)
        fcntl.lockf(fd, fcntl.LOCK_SH)
        os.write(write, b"held")
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(read, 4) == b"held"
        with reading(target) as f:
            assert f["time"].shape == (3,)
            assert np.array_equal(f["density"][2], h5py.File(run_file, "r")["density"][2])
        assert target.read_bytes() == cut and journal.journal_path(target).exists()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert problems(target) == [] and target.read_bytes() == run_file.read_bytes()


def test_the_rolled_back_view_equals_the_rolled_back_file(run_file, tmp_path):
    """`RolledBack` (what a read-only reader sees) is byte for byte what `recover` writes."""
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    before = target.read_bytes()
    fd = os.open(target, os.O_RDWR)
    try:
        jfd = os.open(journal.journal_path(target), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        info = os.fstat(fd)
        os.write(jfd, journal._HEADER.pack(journal.MAGIC, info.st_size, info.st_dev, info.st_ino))
        undo = journal.UndoFile(fd, jfd, info.st_size)
        with h5py.File(undo, "r+", locking=False) as f:    # an append, never committed
            f["time"].resize(4, axis=0)
            f["time"][3] = 99.0
            f.create_dataset("extra", data=np.arange(1000.0))
            del f["risk"]
        os.close(jfd)
        view = journal.RolledBack(fd, *journal.pending(target, fd))
        seen = view.read()
        assert len(seen) == len(before) and seen == before
        assert journal.recover(target, fd)
    finally:
        os.close(fd)
    assert target.read_bytes() == before


def test_a_stale_or_foreign_journal_is_ignored(run_file, tmp_path):
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    before = target.read_bytes()
    # another file's journal (other inode), and garbage: neither touches the file
    for forged in (journal._HEADER.pack(journal.MAGIC, 10, 1, 2) + journal._ENTRY.pack(0, 4) + b"XXXX",
                   b"not a journal at all"):
        journal.journal_path(target).write_bytes(forged)
        assert problems(target) == []
        assert target.read_bytes() == before
    # the next append deletes it before it writes its own
    with appending(target, 0):
        pass
    assert not journal.journal_path(target).exists() and target.read_bytes() == before


def test_a_failed_append_rolls_back_byte_for_byte(run_file, tmp_path):
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with appending(target, 0) as f:
            f["time"].resize(10, axis=0)
            f.create_dataset("junk", data=np.ones(5000))
            raise RuntimeError("a failure mid-append")
    assert target.read_bytes() == before
    assert not journal.journal_path(target).exists()


def test_a_reader_in_the_writers_own_process_never_rolls_its_live_append_back(run_file, tmp_path):
    """Record locks belong to the process: a reader (another thread, say) of the file this process
    is appending to must read through the journal, not take the append for a dead writer's."""
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    with appending(target, 0) as f:
        f["time"].resize(4, axis=0)
        f["time"][3] = 99.0
        f.flush()                               # the append's bytes are in the file, journalled
        assert journal.journal_path(target).exists()
        with reading(target) as g:
            assert g["time"].shape == (3,)      # the file as the last complete append left it
        assert journal.journal_path(target).exists()
    with reading(target) as g:
        assert g["time"].shape == (4,) and g["time"][3] == 99.0


def test_a_live_writer_without_the_record_lock_is_never_rolled_back(run_file, tmp_path):
    """A writer that gave up waiting for readers (WAIT) appends without the run file's record lock:
    the journal's own lock still tells every reader it is alive."""
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    before = target.read_bytes()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(target, os.O_RDWR)
            with journal.transaction(target, fd) as undo, h5py.File(undo, "r+", locking=False) as f:
                f["time"].resize(4, axis=0)
                f["time"][3] = 99.0
                f.flush()
                os.write(write, b"mid")
                time.sleep(30)
        finally:
            os._exit(0)
    try:
        assert os.read(read, 3) == b"mid"
        cut = target.read_bytes()
        with reading(target) as f:
            assert f["time"].shape == (3,)
        assert target.read_bytes() == cut and journal.journal_path(target).exists()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    with reading(target) as f:           # now dead: rolled back
        assert f["time"].shape == (3,)
    assert target.read_bytes() == before and not journal.journal_path(target).exists()


def test_a_write_that_fails_in_the_closing_flush_is_one_run_error(run_file, tmp_path, monkeypatch):
    """ENOSPC from every write of the run file (the metadata HDF5 flushes on close among them):
    HDF5 is told the writes were done, so it closes the file cleanly (no HDF5 object is left
    open: a failing driver once left 36, and a later test crashed), and the append is rolled
    back from the journal and reported as no room, never a traceback."""
    import errno as errno_
    from gflow.errors import RunError
    target = tmp_path / "fv.h5"
    target.write_bytes(run_file.read_bytes())
    before = target.read_bytes()
    writer = SnapshotWriter.reopen(target)
    real = journal._pwrite_all

    def full(fd, view, offset):
        raise OSError(errno_.ENOSPC, "No space left on device")
    source = open_run(run_file)
    obs = Observation(density=source.density(2), risk=0.1, energy=0.1, mass=1.0)
    open_before = h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_ALL)
    monkeypatch.setattr(journal, "_pwrite_all", full)
    with pytest.raises(RunError, match="no room to write the snapshot"):
        writer.append(5.0, obs)
    assert h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_ALL) == open_before
    # the first failed write was the first: nothing to put back, the file is cut to its old size
    assert target.read_bytes() == before and not journal.journal_path(target).exists()
    monkeypatch.setattr(journal, "_pwrite_all", real)
    with reading(target) as f:
        assert f["time"].shape == (3,)
