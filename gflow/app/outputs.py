"""Every file the app writes beside the snapshot files (reports, tables, figures, movies,
sweep.csv) is checked and written here, so that the output directory is never a way out.

Checked before any work (`check_dir`, `check_output`, `check_outputs`):

- the directory exists or is created, is a directory, and a file can be created in it;
  otherwise one line (`-o somefile/sub`, `-o /proc/x`, a read-only folder, an existing file);
- the file's own name (its final component) is not a symbolic link, dangling or not, with or
  without `--force`: writing through a link writes wherever it points (`out/compare.txt ->
  ~/.bashrc`), which is never what a run means, and replacing the link would silently undo
  an arrangement someone made on purpose; the link is left for a person to remove;
- it is not a directory or anything but a regular file;
- an existing file is overwritten only with `force`;
- no output is one of the command's inputs, and no two outputs are one file.

The directory itself, or any folder above it, may be a symbolic link: users keep runs on
another disk that way. Only the final component of each output file is refused as a link.

Written atomically (`replacing`, `write_text`, `save_figure`): into a new temporary file
(created exclusively, so never through a link) in the same directory, flushed to disk, then
moved over the name with `os.replace`, which replaces a name and never follows it. A reader
sees the old file or the new one, never half of one; a full disk, an error or Ctrl-C midway
leaves the old file as it was and removes the temporary (a SIGKILL can leave a hidden
`.NAME.*.tmp*` beside it, never a damaged NAME).
"""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from gflow.errors import InputError, RunError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_dir(directory) -> Path:
    """`directory`, created if missing, once a file can be created in it; else InputError.

    The directory may be a symbolic link to a directory (only output files' own names are
    refused as links). The check creates and removes a hidden probe file: permissions,
    read-only mounts and pseudo-filesystems (/proc, /sys) all answer the same way, root too.
    """
    directory = Path(directory)
    try:
        dangling = directory.is_symlink() and not directory.exists()
    except OSError as exc:       # a name too long, a loop of links
        raise InputError(f"{directory}: cannot write there: {_why(exc)}") from None
    if dangling:
        raise InputError(f"{directory}: is a symbolic link to nothing; cannot write there")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{directory}: is not a directory") from None
    except OSError as exc:
        raise InputError(f"{directory}: cannot create the directory: {_why(exc)}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".gflow-probe-", dir=directory)
    except OSError as exc:
        raise InputError(f"{directory}: cannot write there: {_why(exc)}") from None
    os.close(fd)
    os.unlink(probe)
    return directory


def _existing(path: Path) -> bool:
    """Whether `path` names a regular file; InputError when it names anything else (a link)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {_why(exc)}") from None
    if stat.S_ISLNK(mode):
        raise InputError(f"{path}: is a symbolic link; gflow never writes through one (remove it, "
                         "or write elsewhere)")
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is not a regular file")
    return True


def check_output(path, force: bool = False, exists: str | None = None) -> Path:
    """`path` once it may be written: its directory usable, itself no link, no directory, and
    absent unless `force`. `exists` replaces the advice of the refusal of an existing file."""
    path = Path(path)
    check_dir(path.parent)
    if _existing(path) and not force:
        raise InputError(f"{path}: {exists or 'already exists; use --force to overwrite it'}")
    return path


def check_outputs(paths, force: bool = False, inputs=()) -> list[Path]:
    """`check_output` for each of `paths` (None entries skipped), refusing, with or without
    `force`, an output that is one of `inputs` or that two outputs are the same file."""
    checked: list[Path] = []
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        for other in inputs:
            if os.path.lexists(path) and os.path.exists(other) and os.path.samefile(path, other):
                raise InputError(f"{path}: is one of the inputs ({other}); write the output elsewhere")
        if any(os.path.abspath(path) == os.path.abspath(p) for p in checked):
            raise InputError(f"{path}: given as two outputs; each needs its own file")
        checked.append(check_output(path, force))
    return checked


def _file_mode() -> int:
    """0o666 less the umask: the mode `open` gives a new file (mkstemp's own is 0o600)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)      # no /proc: read the umask by setting it (and back)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def replacing(path):
    """Yield a new temporary file beside `path` (same suffix) to write; on success it is flushed
    to disk and moved over `path`, on any failure removed, leaving `path` as it was.

    An OSError of the writing (a full disk) becomes one line, a `RunError` (exit status 1,
    as for a run's own file: the input was fine, the machine failed). `path` is refused again if it has
    become a link or a directory since it was checked; existence is the caller's check.
    """
    path = Path(path)
    _existing(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise RunError(f"{path}: cannot write: {_why(exc)}") from None
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, _file_mode())
        finally:
            os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        try:
            os.fsync(fd)      # the bytes are on disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise RunError(f"{path}: cannot write: {_why(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path, data: bytes) -> Path:
    """`data` as the whole of `path`, atomically (`replacing`)."""
    path = Path(path)
    with replacing(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | _NOFOLLOW | _CLOEXEC)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return path


def write_text(path, text: str) -> Path:
    """`text` (UTF-8) as the whole of `path`, atomically (`replacing`)."""
    return write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path) -> Path:
    """A matplotlib figure saved to `path` atomically, in the format its suffix names."""
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower())
    return path
