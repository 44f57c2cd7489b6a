"""Running one `gflow` child and judging what it did (definitions: the package docstring)."""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: peak resident memory above which a child counts as exhausting memory
MEMORY_LIMIT = 1536 * 2**20
#: resident memory at which the harness kills a child, before it takes the machine down
KILL_RSS = 3 * 2**30
#: seconds a child may take before it counts as hung (tiny inputs: a few seconds of work at most)
TIMEOUT = 60.0

FAILURES = ("traceback", "hang", "memory", "lost", "security", "other")
COLUMNS = ("tried", "ok", "refused", *FAILURES)


def gflow_command() -> list[str]:
    """The installed entry point, beside this interpreter (a pyenv shim on PATH costs a shell)."""
    here = Path(sys.executable).parent / "gflow"
    if here.exists():
        return [str(here)]
    found = shutil.which("gflow")
    return [found] if found else [sys.executable, "-m", "gflow.app.cli"]


GFLOW = gflow_command()


@dataclass
class Result:
    """One finished child: its exit status (negative: killed by that signal), output, peak RSS."""
    argv: list
    status: int | None          # None: hung (killed by the harness at the timeout)
    stdout: str
    stderr: str
    max_rss: int                # bytes
    wall: float
    killed_for_memory: bool = False

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def command(self) -> str:
        return " ".join(str(a) for a in self.argv)


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Child:
    """A `gflow` child with its output in files (no pipe to fill), reaped with `os.wait4` so that its
    own peak RSS is known; the harness kills it at `timeout` (hang) or at KILL_RSS (memory)."""

    def __init__(self, args, cwd, *, fsize: int | None = None, stdout_pipe: bool = False, env=None, program=None):
        self.argv = [*(program or GFLOW), *map(str, args)]
        self.cwd = Path(cwd)
        self._out = tempfile.TemporaryFile("w+", errors="replace")
        self._err = tempfile.TemporaryFile("w+", errors="replace")

        def limits():
            # a full disk: writes past fsize fail with EFBIG (Python ignores SIGXFSZ)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        self.process = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE if stdout_pipe else self._out, stderr=self._err,
                                        preexec_fn=limits if fsize is not None else None,
                                        start_new_session=True, text=True, bufsize=1, env=env)
        self.start = time.monotonic()
        self.pid = self.process.pid
        self._lines, self._new = [], threading.Condition()
        self._reader = None
        if stdout_pipe:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self._new:
                self._lines.append(line)
                self._new.notify_all()
        with self._new:
            self._lines.append(None)       # end of output
            self._new.notify_all()

    def snapshots_seen(self) -> int:
        with self._new:
            return sum(1 for line in self._lines if line and line.startswith("snapshot "))

    def wait_snapshots(self, count: int, timeout: float = TIMEOUT) -> bool:
        """Block until the child has reported `count` snapshots (-v); False if it ended or timed out first."""
        end = time.monotonic() + timeout
        with self._new:
            while True:
                seen = sum(1 for line in self._lines if line and line.startswith("snapshot "))
                if seen >= count:
                    return True
                if (self._lines and self._lines[-1] is None) or time.monotonic() > end:
                    return False
                self._new.wait(0.05)

    def running(self) -> bool:
        """Whether the child has not exited yet (peeks without reaping it: `wait` reaps it)."""
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def signal(self, sig) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = TIMEOUT) -> Result:
        status, usage, hung, memory = None, None, False, False
        while True:
            pid, raw, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                status = os.waitstatus_to_exitcode(raw)
                break
            if time.monotonic() - self.start > timeout:
                hung = True
            elif _rss(self.pid) > KILL_RSS:
                memory = True
            if hung or memory:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, raw, usage = os.wait4(self.pid, 0)
                break
            time.sleep(0.01)
        self.process.returncode = status if status is not None else -9   # reaped here, not by Popen
        if self._reader is not None:
            self._reader.join(5)
            with self._new:
                self._out.write("".join(line for line in self._lines if line))
        texts = []
        for handle in (self._out, self._err):
            handle.flush()
            handle.seek(0)
            texts.append(handle.read())
            handle.close()
        return Result(self.argv, None if hung else status, texts[0], texts[1], usage.ru_maxrss * 1024,
                      time.monotonic() - self.start, memory)


def gflow(args, cwd, timeout: float = TIMEOUT, **kw) -> Result:
    return Child(args, cwd, **kw).wait(timeout)


# --- judging -----------------------------------------------------------------------------------

@dataclass
class Verdict:
    """What one input did: failure kinds found (empty: ok or refused) and notes on each."""
    cls: str
    label: str
    refused: bool = False
    failures: dict = field(default_factory=dict)      # kind -> list of {command, outcome, last stderr line}
    notes: list = field(default_factory=list)
    log: list = field(default_factory=list)           # (command, judged outcome, last stderr line), in order
    wall: float = 0.0

    def fail(self, kind: str, command: str, outcome: str, last: str = "") -> None:
        self.failures.setdefault(kind, []).append(
            {"class": self.cls, "input": self.label, "command": _short(command), "outcome": outcome,
             "stderr": _short(last)})


def _short(text: str, most: int = 400) -> str:
    return text if len(text) <= most else text[:most // 2] + f" ...({len(text)} chars)... " + text[-most // 2:]


def judge(v: Verdict, r: Result, *, may_succeed: bool = True, must_succeed: bool = False,
          allow_signal: bool = False) -> str:
    """File `r` under v: 'ok', 'refused', or a failure kind (which is recorded in v).

    Clean refusal: exit 2 (bad input) or 1 (run failed), no 'Traceback' anywhere in the output, and
    a non-empty last stderr line that is gflow's message (starts with 'gflow'). Warnings before it
    are allowed.
    """
    outcome = _judge(v, r, may_succeed, must_succeed, allow_signal)
    v.log.append((_short(" ".join(map(str, r.argv[1:])), 160), f"{outcome} (exit {r.status}, {r.max_rss / 2**20:.0f} MiB, {r.wall:.1f} s)", _short(r.last_line, 160)))
    return outcome


def _judge(v, r, may_succeed, must_succeed, allow_signal) -> str:
    cmd = r.command()
    if r.killed_for_memory or r.max_rss > MEMORY_LIMIT:
        v.fail("memory", cmd, f"peak RSS {r.max_rss / 2**20:.0f} MiB", r.last_line)
        return "memory"
    if r.status is None:
        v.fail("hang", cmd, f"no exit after {r.wall:.0f} s", r.last_line)
        return "hang"
    if "Traceback (most recent call last)" in r.stderr + r.stdout:
        frames = [line.strip() for line in r.stderr.splitlines() if line.strip().startswith('File "')]
        # the innermost frame in gflow's own code says where to fix it
        ours = [f for f in frames if "site-packages" not in f and "/lib/python" not in f] or frames
        v.fail("traceback", cmd, f"exit {r.status}" + (f"; in {ours[-1]}" if ours else ""), _exception_line(r.stderr))
        return "traceback"
    if r.status == 0:
        if not may_succeed:
            v.fail("other", cmd, "exit 0 where a refusal is required", r.last_line)
            return "other"
        return "ok"
    if allow_signal and r.status in (-signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL, 130, 143):
        return "refused"
    if r.status not in (1, 2):
        v.fail("traceback", cmd, f"exit {r.status}" + (" (signal)" if r.status < 0 else ""), r.last_line)
        return "traceback"
    if not r.last_line.startswith("gflow"):
        v.fail("other", cmd, f"exit {r.status} without a one-line message", r.last_line)
        return "other"
    if must_succeed:
        v.fail("other", cmd, f"exit {r.status} where success is required", r.last_line)
        return "other"
    v.refused = True
    return "refused"


def _exception_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(" ")]
    return lines[-1] if lines else ""


#: `gflow check`'s own checker plus the snapshot count, in a child: HDF5 can spin for ever on a
#: damaged file, which must cost the input (a hang), never the harness
_CHECK = """
import json, sys
import h5py
from gflow.snapshot_check import first_problem
try:
    problem = first_problem(sys.argv[1])
except Exception as exc:
    problem = f"gflow check raised {type(exc).__name__}: {exc}"
try:
    with h5py.File(sys.argv[1], "r", locking=False) as f:
        n = int(f["time"].shape[0])
except Exception:
    n = 0
print(json.dumps([problem, n]))
"""


def check_file(path, timeout: float = TIMEOUT) -> tuple[str | None, int]:
    """(first problem `gflow check` finds or None, snapshots the file holds by its `time`)."""
    path = Path(path)
    r = Child(["-c", _CHECK, path], path.parent if path.parent.is_dir() else "/", program=[sys.executable]).wait(timeout)
    if r.status is None:
        return f"gflow check did not finish in {timeout:.0f} s (HDF5 spinning on the file?)", 0
    try:
        problem, n = json.loads(r.stdout.strip().splitlines()[-1])
        return problem, int(n)
    except (ValueError, IndexError):
        return f"gflow check crashed: exit {r.status}: {r.last_line}", 0


def digest(path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


# --- canaries: files outside the input's directory, watched with inotify ------------------------

_IN_ACCESS, _IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x1, 0x2, 0x4, 0x8
_IN_OPEN, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x20, 0x80, 0x100, 0x200
_WATCH = _IN_ACCESS | _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_OPEN | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_WRITES = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class Outside:
    """A folder outside the input's own, holding canary files; reports every open (read) and write
    of a file in it between `arm()` and `events()` (inotify), and content changes (hashes)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._fd = None
        self._hashes = {}

    def canary(self, name: str, text: str = "canary: must never be read or changed\n") -> Path:
        p = self.path / name
        p.write_text(text)
        return p

    def arm(self) -> None:
        self._hashes = {p.name: digest(p) for p in self.path.iterdir() if p.is_file()}
        self._names = {p.name for p in self.path.iterdir()}
        try:
            fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and _libc.inotify_add_watch(fd, str(self.path).encode(), _WATCH) >= 0:
                self._fd = fd
            elif fd >= 0:
                os.close(fd)
        except AttributeError:   # no inotify here: hashes and names only
            self._fd = None

    def events(self) -> tuple[set, set]:
        """(names read, names written or created or removed) since arm(); call before touching the folder."""
        read, written = set(), set()
        if self._fd is not None:
            while True:
                try:
                    data = os.read(self._fd, 65536)
                except BlockingIOError:
                    break
                i = 0
                while i + 16 <= len(data):
                    _, mask, _, n = struct.unpack_from("iIII", data, i)
                    name = data[i + 16:i + 16 + n].split(b"\0", 1)[0].decode(errors="replace") or "."
                    if mask & _WRITES:
                        written.add(name)
                    elif mask & (_IN_OPEN | _IN_ACCESS):
                        read.add(name)
                    i += 16 + n
            os.close(self._fd)
            self._fd = None
        names = {p.name for p in self.path.iterdir()}
        written |= names ^ self._names
        written |= {n for n, h in self._hashes.items() if digest(self.path / n) != h}
        return read - {"."}, written


def watch_outside(v: Verdict, outside: Outside, command: str, *, may_read: bool = False) -> None:
    read, written = outside.events()
    if written:
        v.fail("security", command, f"wrote outside its folder: {sorted(written)}")
    elif read and not may_read:
        v.fail("security", command, f"read outside its folder: {sorted(read)}")


# --- running a class of inputs -----------------------------------------------------------------

def run_trials(trials, workers: int = 2, progress=None) -> list[Verdict]:
    """Run trial callables (each returns a Verdict) on `workers` threads, in order of submission."""
    verdicts = [None] * len(trials)
    lock = threading.Lock()
    index = iter(range(len(trials)))

    def worker():
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                return
            start = time.monotonic()
            try:
                verdicts[i] = trials[i]()
            except Exception as exc:   # a harness bug must show, not pass as a gflow failure
                v = Verdict(getattr(trials[i], "cls", "?"), getattr(trials[i], "label", "?"))
                v.notes.append(f"harness error {type(exc).__name__}: {exc}")
                v.fail("other", "(harness)", f"harness error {type(exc).__name__}: {exc}")
                verdicts[i] = v
            verdicts[i].wall = time.monotonic() - start
            if progress:
                progress(verdicts[i])

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return verdicts


def totals(verdicts) -> dict:
    table = {}
    for v in verdicts:
        for key in (v.cls, "all"):
            row = table.setdefault(key, dict.fromkeys(COLUMNS, 0))
            row["tried"] += 1
            if v.failures:
                for kind in v.failures:
                    row[kind] += 1
            elif v.refused:
                row["refused"] += 1
            else:
                row["ok"] += 1
    return table


def format_table(table) -> str:
    names = [k for k in table if k != "all"] + ["all"]
    width = max(len(n) for n in names)
    lines = [f"{'class':<{width}} " + " ".join(f"{c:>9}" for c in COLUMNS)]
    for n in names:
        lines.append(f"{n:<{width}} " + " ".join(f"{table[n][c]:>9}" for c in COLUMNS))
    return "\n".join(lines)
