"""A rollback journal for appends to a run file: a process killed at any instant of an append
(SIGKILL, a crash, the OOM killer) leaves the file as the last complete append left it.

Why. HDF5 rewrites its metadata in place (object headers, chunk indexes, the superblock with
the file's end-of-allocation address) in an order it does not promise, so an append can be cut
between two of those writes. Measured before this module: 1 of 8 runs SIGKILLed at random
points in CI (and up to 7 of 40 in an earlier layout) left a file HDF5 refuses to open
("address of object past end of allocation"), and once `time` longer than `density`.

What. SQLite's rollback journal, for HDF5: during an append HDF5 writes through `UndoFile`
(h5py's file-object driver), which, before it overwrites or truncates any byte the file held
when the append began, appends those bytes to the journal `RUN.h5-journal`. Bytes beyond the
old end need no saving (truncating to the old size removes them). The writer holds `flock` on
the journal for the whole append, and deleting it, the lock still held, is the commit. Whoever
next finds a journal whose lock it can take (its writer is dead: the next append, `gflow run
--resume`, any gflow reader that may write the file) rolls the append back: the saved bytes go
back, the file is cut to its old size, and it is byte for byte what it was. A reader that
cannot write, or finds the writer alive, reads the old file through `RolledBack` instead.

Layout: MAGIC | old size | st_dev | st_ino (8 bytes each, little-endian), then entries
offset | length | the length bytes. An entry is written whole before the bytes it saves are
overwritten, so a torn last entry saved bytes never touched and is ignored; entries are put
back last first, so where two overlap the older bytes win. A journal naming another file (its
device and inode) or not fitting the file is stale and ignored. A killed process loses none of
its page-cache writes, so nothing is fsynced while appending; a power cut is another matter
(as for HDF5 itself). A rollback, rare, is fsynced before its journal goes.
"""
from __future__ import annotations

import contextlib
import errno
import os
import struct
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no liveness lock
    fcntl = None

MAGIC = b"gflowJ1\n"
_HEADER = struct.Struct("<8sQQQ")
_ENTRY = struct.Struct("<QQ")
#: a journal longer than this many times its file's old size, plus the extra bytes, is refused
#: (an append saves each overwritten range once: its metadata, and restart data it reuses)
MAX_JOURNAL_FACTOR, MAX_JOURNAL_EXTRA = 4, 1 << 24
#: the suffix of a run file's journal, beside it
SUFFIX = "-journal"


def journal_bound(size: int) -> int:
    """The most bytes a journal of a file of `size` bytes may hold (and the old size it may name)."""
    return MAX_JOURNAL_FACTOR * size + MAX_JOURNAL_EXTRA


def journal_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


class _Positioned:
    """A file position over a descriptor, and `read` by `readinto`: what h5py's file-object driver
    calls besides `readinto`, `write`, `truncate` and `flush`."""

    position = 0

    def _end(self) -> int:
        raise NotImplementedError

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: None}[whence]
        self.position = (self._end() if base is None else base) + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = max(0, self._end() - self.position)
        buffer = bytearray(n)
        return bytes(buffer[:self.readinto(buffer)])


class UndoFile(_Positioned):
    """The run file open as `fd`, as a binary file for h5py's file-object driver, saving in the
    journal `journal_fd` what each write or truncation destroys of its first `size` bytes."""

    def __init__(self, fd: int, journal_fd: int, size: int):
        self.fd, self.journal, self.size = fd, journal_fd, size
        self.position = 0
        #: the journal's length so far (its header included)
        self.written = _HEADER.size
        #: set when the append is over (`transaction`): every call then fails
        self.closed = False
        self.saved: set[tuple[int, int]] = set()
        #: the first failed write (its errno tells a full disk from other failures): the
        #: append fails once HDF5 has closed the file
        self.error: OSError | None = None

    def _end(self) -> int:
        self._check_open()
        return os.fstat(self.fd).st_size

    def _check_open(self) -> None:
        """After its append, HDF5 may still call (a file whose closing flush failed stays open in
        HDF5): the descriptor is closed by then, and its number may be another file's."""
        if self.closed:
            raise OSError(errno.EBADF, "the append this file was opened for is over")

    def readinto(self, buffer) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        n = _pread_into(self.fd, view, self.position)
        self.position += n
        return n

    def write(self, data) -> int:
        """Save what the write destroys, then write. A failed write (a full disk) is recorded
        and reported to HDF5 as done, and nothing more is written: HDF5 then closes the file
        cleanly (a failing driver leaves it half-open in HDF5, whose later calls crashed the
        process), and the append is rolled back from the journal (`transaction`)."""
        self._check_open()
        view = memoryview(data).cast("B")
        start, stop = self.position, self.position + len(view)
        if self.error is None:
            try:
                self._save(start, min(stop, self.size))
                _pwrite_all(self.fd, view, start)
            except OSError as exc:
                self.error = exc
        self.position = stop
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        self._check_open()
        size = self.position if size is None else size
        if self.error is None:
            try:
                self._save(size, min(os.fstat(self.fd).st_size, self.size))
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self.error = exc
        return size

    def flush(self) -> None:
        """Nothing to do: every write went to the file (a kill keeps the page cache)."""

    def _save(self, start: int, stop: int) -> None:
        if start >= stop or (start, stop) in self.saved:
            return
        self.written += _ENTRY.size + stop - start
        if self.written > journal_bound(self.size):
            # a reader would take such a journal for another's: refuse the append instead
            raise OSError(errno.EFBIG, "the append overwrites more than its rollback journal may hold")
        old = bytearray(stop - start)
        _pread_into(self.fd, memoryview(old), start)    # past the file's end (cut earlier): zeros
        _write_all(self.journal, _ENTRY.pack(start, stop - start) + old)
        self.saved.add((start, stop))


class RolledBack(_Positioned):
    """The run file open as `fd` as it was before the journalled append: read-only."""

    def __init__(self, fd: int, size: int, entries: list[tuple[int, bytes]]):
        self.fd, self.size, self.entries = fd, size, entries
        self.position = 0

    def _end(self) -> int:
        return self.size

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        start = self.position
        n = max(0, min(len(view), self.size - start))
        view[:n] = b"\0" * n
        _pread_into(self.fd, view[:n], start)
        for offset, saved in reversed(self.entries):    # the oldest bytes last: they win
            lo, hi = max(start, offset), min(start + n, offset + len(saved))
            if lo < hi:
                view[lo - start:hi - start] = saved[lo - offset:hi - offset]
        self.position += n
        return n

    def write(self, data) -> int:
        raise OSError(errno.EROFS, "a rolled-back view is read-only")

    def truncate(self, size=None) -> int:
        raise OSError(errno.EROFS, "a rolled-back view is read-only")

    def flush(self) -> None:
        pass


class Busy(OSError):
    """The journal is held by a live writer (its `flock`): nothing to roll back."""


@contextlib.contextmanager
def transaction(path: str | Path, fd: int):
    """One journalled append to the run file at `path` open read-write as `fd` (whose writer's lock
    the caller holds): yields the `UndoFile` to hand h5py; commits on success, rolls back on error.

    The journal is a new file held with `flock` for the whole append: the lock belongs to this
    open file, so no other descriptor's close (a reader thread of this process) drops it and no
    other open of the journal gets it while the writer lives. Deleting the journal, with the lock
    still held, is the commit; whoever takes the lock later finds the name gone."""
    recover(path, fd)
    journal = journal_path(path)
    info = os.fstat(fd)
    jfd = os.open(journal, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                  | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        _hold(jfd)
        _write_all(jfd, _HEADER.pack(MAGIC, info.st_size, info.st_dev, info.st_ino))
        undo = UndoFile(fd, jfd, info.st_size)
        try:
            yield undo
            undo.closed = True
        except BaseException:
            undo.closed = True
            rolled_back = False
            with contextlib.suppress(OSError):
                _roll_back(fd, _parse(jfd, os.fstat(fd)))
                rolled_back = True
            if rolled_back:        # else the journal stays, for the next reader or append to finish
                journal.unlink(missing_ok=True)
            raise
        journal.unlink(missing_ok=True)     # the commit, the lock still held
    finally:
        os.close(jfd)


def _hold(jfd: int, wait: bool = True) -> None:
    """`flock` the journal open as `jfd` exclusively; `Busy` when another open file holds it."""
    if fcntl is None:
        return
    try:
        fcntl.flock(jfd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        raise Busy(errno.EWOULDBLOCK, "a live writer holds the journal") from None


def _open_journal(journal: Path) -> int:
    """The journal open read-only (never through a link, never blocking on a FIFO put there)."""
    return os.open(journal, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


def pending(path: str | Path, fd: int) -> tuple[int, list[tuple[int, bytes]]] | None:
    """The old size and saved bytes of a journal of the file `fd` left beside `path` (None: none,
    or one that is stale, torn in its header or does not fit the file)."""
    try:
        jfd = _open_journal(journal_path(path))
    except OSError:
        return None
    try:
        return _parse(jfd, os.fstat(fd))
    except OSError:
        return None
    finally:
        os.close(jfd)


def recover(path: str | Path, fd: int) -> bool:
    """Roll back the append a dead writer's journal beside `path` records, on the file `fd` (open
    read-write, its record lock held); True when there was one. A stale journal is only deleted;
    one a live writer holds (`flock`) is left alone: False."""
    journal = journal_path(path)
    try:
        jfd = _open_journal(journal)
    except FileNotFoundError:
        return False
    try:
        try:
            _hold(jfd, wait=False)
            named = os.lstat(journal)
        except (Busy, FileNotFoundError):
            return False
        # the name may have been taken by a newer journal since this one was opened
        held = os.fstat(jfd)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            return False
        found = _parse(jfd, os.fstat(fd))
        if found is not None:
            _roll_back(fd, found)
        journal.unlink(missing_ok=True)
        return found is not None
    finally:
        os.close(jfd)


def _roll_back(fd: int, found) -> None:
    """Put the saved bytes back (the oldest last) and cut the file to its old size, on disk."""
    if found is None:
        return
    size, entries = found
    for offset, saved in reversed(entries):
        _pwrite_all(fd, memoryview(saved), offset)
    os.ftruncate(fd, size)
    os.fsync(fd)


def _parse(jfd: int, info: os.stat_result) -> tuple[int, list[tuple[int, bytes]]] | None:
    """The journal open as `jfd`, checked against the file `info` describes; bounded by the file."""
    header = os.pread(jfd, _HEADER.size, 0)
    if len(header) < _HEADER.size:
        return None
    magic, size, dev, ino = _HEADER.unpack(header)
    if magic != MAGIC or (dev, ino) != (info.st_dev, info.st_ino):
        return None
    entries, at, end = [], _HEADER.size, os.fstat(jfd).st_size
    # the writer keeps its journal within the bound of the old size, which may exceed the file's
    # now (an append that cut the file); that old size is itself bounded by the file's real one
    if size > journal_bound(info.st_size) or end > journal_bound(max(size, info.st_size)):
        return None         # more than any append of this file saves: not ours, and unbounded memory
    while at + _ENTRY.size <= end:
        offset, length = _ENTRY.unpack(os.pread(jfd, _ENTRY.size, at))
        if offset + length > size or at + _ENTRY.size + length > end:
            break           # torn (or not ours): the bytes it would save were never overwritten
        entries.append((offset, os.pread(jfd, length, at + _ENTRY.size)))
        at += _ENTRY.size + length
    return size, entries


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
