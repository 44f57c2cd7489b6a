"""Typed, one-line-error reading of TOML tables.

Every case-file value goes through `Table`: it checks the type, the range and that no
unknown key is left over, and every failure names the file, the dotted key and the
problem in one line (an `InputError`), so a bad case stops before any work.
"""
from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from gflow.errors import InputError

_MISSING = object()
#: while `recording()` runs: every dotted key a Table reads (list items as `[]`), else None
_READ_KEYS: set[str] | None = None


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect the keys every Table reads meanwhile (tests/test_case_reference.py holds the
    case-file reference, `gflow.case_keys`, to them)."""
    global _READ_KEYS
    outer, _READ_KEYS = _READ_KEYS, set()
    try:
        yield _READ_KEYS
    finally:
        _READ_KEYS = outer


def fail(source: str, key: str, problem: str) -> InputError:
    # values echoed back are the user's: keep the line readable whatever they hold
    key, problem = _shorten(_one_line(key), 80), _shorten(_one_line(problem), 240)
    return InputError(f"{source}: {key}: {problem}")


def _one_line(text: str) -> str:
    # a key or value may hold any character TOML allows, line breaks included
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Table:
    """A TOML table being read; `done()` refuses any key nobody asked for."""

    def __init__(self, data: Any, source: str, path: str):
        if not isinstance(data, dict):
            raise fail(source, path, f"must be a table, got {_describe(data)}")
        self.data, self.source, self.path = data, source, path
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> InputError:
        return fail(self.source, self.key(name), problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        self._used.add(name)
        if _READ_KEYS is not None:
            _READ_KEYS.add(re.sub(r"\[\d+\]", "[]", self.key(name)))
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "missing value")
        return default

    def table(self, name: str, required: bool = True) -> Table:
        value = self.raw(name, _MISSING if required else {})
        return Table(value, self.source, self.key(name))

    def string(self, name: str, default: Any = _MISSING, choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {_describe(value)}")
        if choices is not None and value not in choices:
            raise self.error(name, f"unknown value {value!r} (expected one of: {', '.join(choices)})")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {_describe(value)}")
        return value

    def integer(self, name: str, default: Any = _MISSING, minimum: int | None = None,
                maximum: int | None = None) -> int:
        value = self.raw(name, default)
        return check_int(value, self.error, name, minimum, maximum)

    def number(self, name: str, default: Any = _MISSING, minimum: float | None = None,
               positive: bool = False, maximum: float | None = None) -> float:
        value = self.raw(name, default)
        return check_float(value, self.error, name, minimum, positive, maximum)

    def numbers(self, name: str, length: int | None = None, default: Any = _MISSING,
                positive: bool = False) -> list[float]:
        """A list of numbers; a single number is broadcast to `length`."""
        value = self.raw(name, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and length is not None:
            value = [value] * length
        if not isinstance(value, list):
            raise self.error(name, f"must be a list of numbers, got {_describe(value)}")
        if length is not None and len(value) != length:
            raise self.error(name, f"has {len(value)} entries, expected {length} (one per axis)")
        return [check_float(v, self.error, name, None, positive) for v in value]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def check_float(value: Any, error: Callable[[str, str], InputError], name: str,
                minimum: float | None = None, positive: bool = False, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(name, f"must be a number, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise error(name, f"must be finite, got {value}")
    if positive and value <= 0:
        raise error(name, f"must be positive, got {value:g}")
    if minimum is not None and value < minimum:
        raise error(name, f"must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise error(name, f"must be at most {maximum:g}, got {value:g}")
    return value


def check_int(value: Any, error: Callable[[str, str], InputError], name: str,
              minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(name, f"must be an integer, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise error(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise error(name, f"must be at most {maximum}, got {value}")
    return value


# ----------------------------------------------------------------------------- input files

#: what a path that is not a regular file is, for the one-line refusal
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISSOCK, "a socket"))

UTF8_BOM = b"\xef\xbb\xbf"


def open_regular(path, label: str, max_bytes: int | None = None) -> BinaryIO:
    """`path` opened for binary reading, refused in one line unless it is a regular file.

    The file is opened without blocking and then checked (fstat), so that a FIFO never
    waits for a writer and a device (/dev/zero) or a directory is refused before any byte
    is read; `max_bytes` bounds its size as it stands (callers still read at most that
    much, since a file may grow, and /proc files report size 0). `label` starts the message.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a plain file")
            raise InputError(f"{label}: is {kind}, not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise InputError(f"{label}: {info.st_size} bytes is more than the {max_bytes} allowed")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def decode_utf8(data: bytes, label: str, first_line: int = 1, first_offset: int = 0) -> str:
    """UTF-8 text (a leading BOM dropped); otherwise one line naming the line and byte offset."""
    if first_offset == 0 and data.startswith(UTF8_BOM):
        data, first_offset = data[len(UTF8_BOM):], len(UTF8_BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise InputError(f"{label}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} "
                         f"(byte offset {first_offset + exc.start})") from None


def check_expression(table: Table, key: str, text: str, variables) -> None:
    """Refuse an expression that does not parse in `variables`, naming the key."""
    from gflow.expr import ExpressionError, parse_expression

    try:
        parse_expression(text, variables)
    except ExpressionError as exc:
        raise table.error(key, f"cannot parse {text!r}: {exc}") from None
