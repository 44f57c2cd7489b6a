"""Opening run files with h5py: safe beside a live writer, and safe on a full disk.

Live readers. HDF5's own file locks are non-blocking `flock`s held while a file is open: a
reader holding a run file open (`h5py.File(path)`, `xarray.open_dataset`) made the writer's
next append fail, and an append in progress made readers fail. gflow therefore opens its files
without HDF5's lock (`locking=False`; the run lock `gflow.app.execute.output_lock` already keeps
a second writer out) and uses a lock of its own, a POSIX record lock (`fcntl.lockf`) on the run
file itself, which Linux keeps apart from `flock`:

- the writer holds it exclusively for each append (`appending`), a few milliseconds;
- gflow's readers hold it shared while they read (`reading`), so they see the file as it was
  after the last complete append, never half of one.

Either side waits a bounded time (`WAIT`) and then goes on without it, so nothing hangs on a
reader that never lets go. Other programs' readers (h5py, xarray) take HDF5's `flock`, which
the writer ignores: they never stop a run, and a file opened between appends is complete up to
`time`'s length; one opened during an append (milliseconds in every snapshot interval) may
fail to open or read an old view, and a view held open across appends goes stale (reopen it).

Kills. An append is written through a rollback journal (`gflow.journal`), HDF5 writing to the
descriptor `appending` opened and locked (h5py's file-object driver): a writer killed mid-append
leaves the bytes it overwrote beside the file, and `reading` (when this process may write the
file and no writer holds it) or the next append puts them back; a reader that may not reads
through the journal. Either way gflow sees the file its last complete append left.

Full disks. An append first proves its bytes can be written beyond the end of the file
(`os.posix_fallocate`, then given back: see `reserve`), before HDF5 writes anything, so a full
disk (ENOSPC) or a file-size limit (EFBIG) is met while the file is still exactly as the last
append left it. `DiskFull` carries the cause.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from pathlib import Path

import h5py

from gflow.journal import RolledBack, journal_path, pending, recover, transaction

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no reader/writer lock
    fcntl = None

#: seconds a reader waits for an append to finish, or the writer for readers to finish
WAIT = 30.0
#: what every append reserves beyond its data: HDF5's metadata (B-tree nodes, headers) grow too
METADATA_RESERVE = 1 << 16
#: a read of a run file may take this long, plus its size at `SLOW_DISK` bytes per second, before
#: the command line's watchdog (`gflow.app.watchdog`) calls the file damaged (GFLOW_READ_SECONDS
#: in the environment sets the seconds: a very slow network disk)
try:
    READ_SECONDS = max(0.1, float(os.environ.get("GFLOW_READ_SECONDS", "10")))
except ValueError:
    READ_SECONDS = 10.0
SLOW_DISK = 20e6
#: errors that mean "no room": a full disk, a quota, a file-size limit
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(OSError):
    """No room for the next write: nothing of it was written."""


def _lock(fd: int, kind: int, wait: float) -> bool:
    """Take the POSIX record lock `kind` on `fd`, waiting up to `wait` seconds; go on without it
    when it cannot be had (held too long, or locks unsupported on this file system): False."""
    if fcntl is None:
        return False
    deadline = time.monotonic() + wait
    pause = 0.001
    while True:
        try:
            fcntl.lockf(fd, kind | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN) or time.monotonic() > deadline:
                return False
        time.sleep(pause)
        pause = min(2 * pause, 0.05)


@contextlib.contextmanager
def reading(path: str | Path, wait: float = WAIT):
    """The run file at `path`, open read-only for the block, with no append in progress."""
    # O_NONBLOCK: a FIFO named as a run file must not hang the open
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        _roll_back_if_dead(path)
        _lock(fd, fcntl.LOCK_SH if fcntl else 0, wait)
        _announce(f"+{json.dumps([read_allowance(info.st_size), str(path)])}\n")
        try:
            with _open_read_only(path, fd) as f:
                yield f
        finally:
            _announce("-\n")
    finally:
        os.close(fd)      # releases the lock (h5py closing its own descriptor already has)


def read_allowance(size: int) -> float:
    """Seconds a read of a run file of `size` bytes may take before it counts as a hang."""
    return READ_SECONDS + size / SLOW_DISK


#: the pipe the watchdog's child announces its reads on (None: not watched)
_beacon: int | None = None


def announce_reads(fd: int | None) -> None:
    """Announce every `reading` block on `fd` ("+[seconds, path]" on entry, "-" on exit)."""
    global _beacon
    _beacon = fd


def _announce(line: str) -> None:
    if _beacon is not None:
        try:
            os.write(_beacon, line.encode())
        except OSError:
            pass           # the watchdog has gone: nothing to tell


def _roll_back_if_dead(path) -> None:
    """Roll back the append a killed writer left journalled (`gflow.journal`), when this process
    may write the file and no writer holds it; otherwise the reader reads the rolled-back view."""
    if not journal_path(path).exists():
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return              # read-only here: `_open_read_only` reads the rolled-back view
    try:
        # the run file's record lock keeps a new append out; the journal's flock tells a live
        # writer (even of this process: record locks belong to the process) from a dead one
        if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, fcntl.LOCK_EX if fcntl else 0, 0.0):
            recover(path, fd)
    except OSError:
        pass
    finally:
        os.close(fd)        # (and with it this process's record locks on the file)


@contextlib.contextmanager
def _open_read_only(path, fd: int):
    """The file as its last complete append left it: through the rolled-back view while a journal
    is pending (a writer mid-append that outlasted `WAIT`, or a killed one's, read-only here)."""
    found = pending(path, fd)
    if found is not None:
        with h5py.File(RolledBack(fd, *found), "r", locking=False) as f:
            yield f
        return
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        if "locking flag" not in str(exc):
            raise
        # This process holds the file open already, with HDF5's lock (h5py's default, say in a
        # notebook). HDF5 would share that open file, and its view from when it was opened; a
        # Python file object is a file of its own to HDF5, read afresh.
        with open(path, "rb") as raw, h5py.File(raw, "r") as f:
            yield f
        return
    with f:
        yield f


def reserve(fd: int, nbytes: int) -> None:
    """Make sure `nbytes` more can be written at the end of the file open as `fd`, or raise
    `DiskFull`: the bytes are allocated (`posix_fallocate`) and given back at once.

    Given back, so that the file HDF5 finds is exactly the file the last append left (a kept
    reserve once made HDF5's end-of-allocation lag the file's end). The room proven is the room
    HDF5 then uses, this run being the disk's writer."""
    size = os.fstat(fd).st_size
    try:
        os.posix_fallocate(fd, size, nbytes)
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise DiskFull(exc.errno, os.strerror(exc.errno)) from None
        return     # EINVAL / EOPNOTSUPP: the file system cannot reserve; HDF5's own errors remain
    finally:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)


@contextlib.contextmanager
def appending(path: str | Path, nbytes: int, wait: float = WAIT):
    """The run file at `path` open for appending, with `nbytes` (+ `METADATA_RESERVE`) reserved
    first and gflow's readers held off. A symlink at `path` is refused (ELOOP)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _lock(fd, fcntl.LOCK_EX if fcntl else 0, wait)
        reserve(fd, nbytes + METADATA_RESERVE)
        with transaction(path, fd) as undo:
            try:
                # through `fd` itself, so the file reserved is the file written (no name reopened)
                with h5py.File(undo, "r+", locking=False) as f:
                    yield f
                if undo.error is not None:     # a write failed: HDF5 closed, the append is undone
                    raise undo.error
            except OSError as exc:
                if exc.errno in NO_ROOM:
                    raise DiskFull(exc.errno, os.strerror(exc.errno)) from None
                raise
    finally:
        os.close(fd)


def names(path, fd: int) -> bool:
    """Whether `path` (not followed) is still the file open as `fd`: no link or other file swapped in."""
    try:
        named = os.lstat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


#: file-creation properties: HDF5's free-space manager, persistent across opens (HDF5 >= 1.10)
FREE_SPACE = {"fs_strategy": "fsm", "fs_persist": True, "fs_threshold": 1}


def creating(path: str | Path) -> h5py.File:
    """A new run file at `path` (replacing a regular file there), without HDF5's lock; a journal
    left beside an old file there goes with it."""
    journal_path(path).unlink(missing_ok=True)
    # free space tracked in the file and reused by later appends: each append replaces the
    # restart group, and without this the space of the old one is lost when the file closes
    # (a full model's particles in R^d, 3 MB a snapshot at m = 1000, d = 400, grew the file by as much)
    return h5py.File(path, "w", locking=False, **FREE_SPACE)
