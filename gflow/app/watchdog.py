"""Commands that read run files, under a watchdog: a damaged file never hangs the command line.

HDF5 itself can loop for ever on a damaged file (2.0.0 does, reading a text attribute from a
global heap whose bytes were zeroed), holding Python's GIL, so no thread, timer or signal
handler of the reading process can stop it. `supervised` therefore runs the command in a forked
child and watches it from the parent: `gflow.h5io.reading` announces each read on a pipe with
the time it may take (`gflow.h5io.read_allowance`: ten seconds plus the file's size at a slow
disk's speed); a read that overruns its allowance is a damaged file, so the parent kills the
child, prints one line naming the file, and exits with status 2. Everything else passes
through: the child's output, its exit status, Ctrl-C (the terminal sends it to both; the parent
waits for the child's own handling), SIGTERM (forwarded).

Where `os.fork` is missing, or with GFLOW_WATCHDOG=0 in the environment, commands run directly.
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from gflow import h5io
from gflow.run_file import printable


def available() -> bool:
    return hasattr(os, "fork") and os.environ.get("GFLOW_WATCHDOG", "1") != "0"


def supervised(command: Callable[[], int]) -> int:
    """`command()`'s exit status, run in a child whose every read of a run file is timed."""
    if not available():
        return command()
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # the child: the command itself
        os.close(read_end)
        h5io.announce_reads(write_end)
        status = 1
        try:
            status = command()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(status)
    os.close(write_end)
    return _watch(pid, read_end)


def _watch(pid: int, pipe: int) -> int:
    """Follow the child's announcements until it exits; kill it if a read overruns."""
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, lambda number, frame: os.kill(pid, number))}
    reads: list[tuple[float, float, str]] = []   # (deadline, allowance, path) of the reads in progress
    pending = b""
    try:
        while True:
            wait = None if not reads else max(0.0, min(reads)[0] - time.monotonic())
            try:
                ready, _, _ = select.select([pipe], [], [], wait)
            except InterruptedError:
                continue
            if not ready:
                deadline, seconds, path = min(reads)
                if time.monotonic() < deadline:
                    continue
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                print(f"gflow: {printable(path)}: reading it did not finish in the {seconds:.0f} s "
                      "allowed (HDF5 is looping on damaged bytes?)", file=sys.stderr)
                return 2
            data = os.read(pipe, 65536)
            if not data:
                break                              # the child has exited (or closed its end)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"+"):
                    seconds, path = json.loads(line[1:])
                    reads.append((time.monotonic() + seconds, seconds, path))
                elif line == b"-" and reads:
                    reads.pop()
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pipe)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code
