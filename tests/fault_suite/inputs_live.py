"""Classes c (signals), d (full disk) and e (live readers): faults while a run writes its file."""
from __future__ import annotations

import re
import signal
import time

from .context import CASES, LONG, LONG_PARTICLE, LONG_SNAPSHOTS, Trial
from .harness import Child, check_file, gflow, judge

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def _run_args(out, kind, *extra):
    return ["run", CASES / "quickstart.toml", "-o", out, "-v", *(LONG_PARTICLE if kind == "particle" else LONG), *extra]


def _after_stop(v, work, out, kind, reported: int, command: str):
    """The file of a stopped run holds every snapshot it reported and passes the check; --resume
    (no limit, no signal) completes it."""
    path = out / f"{kind}.h5"
    count = 0
    if path.exists():
        problem, count = check_file(path)
        if problem:
            v.fail("lost", command, f"after the stop the file fails gflow check: {problem}")
        elif count < reported:
            v.fail("lost", command, f"reported {reported} snapshots, the file holds {count}")
    elif reported:
        v.fail("lost", command, f"reported {reported} snapshots, no file left")
    resumed = gflow(_run_args(out, kind, "--resume"), work)
    # a file without a snapshot has nothing to continue: gflow may ask for --force instead
    outcome = judge(v, resumed, must_succeed=path.exists() and count > 0)
    if outcome == "ok":
        problem, count = check_file(path)
        if problem or count != LONG_SNAPSHOTS:
            v.fail("other", resumed.command(), f"--resume exit 0 but the file: {problem or f'{count} snapshots'}")


def signals(suite, rng, n, cls):
    for i in range(n):
        name = rng.choice(sorted(SIGNALS))
        at = rng.randint(1, LONG_SNAPSHOTS - 2)
        delay = rng.uniform(0.0, 0.05)
        # --full also signals during start-up (imports, case reading, numba compilation)
        startup = suite.full and rng.random() < 0.2
        kind = rng.choice(["fv", "fv", "particle"])
        label = f"{kind} {name} " + (f"at {delay * 20:.2f} s of start-up" if startup else f"after snapshot {at}+{delay:.3f} s")
        yield Trial(cls, label, _signal_trial, suite, cls, kind, SIGNALS[name], None if startup else at,
                    delay * 20 if startup else delay)


def _signal_trial(v, suite, cls, kind, sig, at, delay):
    work, _ = suite.folder(cls)
    out = work / "out"
    child = Child(_run_args(out, kind), work, stdout_pipe=True)
    if at is not None:
        child.wait_snapshots(at)
    time.sleep(delay)
    child.signal(sig)
    result = child.wait()
    reported = sum(line.startswith("snapshot ") for line in result.stdout.splitlines())
    judge(v, result, allow_signal=True)
    _after_stop(v, work, out, kind, reported, result.command())


def full_disk(suite, rng, n, cls):
    for i in range(n):
        fraction = rng.choice([None, *[rng.uniform(0.1, 0.95) for _ in range(5)]])
        kind = rng.choice(["fv", "fv", "particle"])
        yield Trial(cls, f"{kind} fsize " + (f"{fraction:.2f} of the whole file" if fraction else "16 KiB"),
                    _disk_trial, suite, cls, kind, fraction)


def _disk_trial(v, suite, cls, kind, fraction):
    size = suite.base("long" if kind == "fv" else "long_particle").stat().st_size
    limit = int(size * fraction) if fraction else 16 * 1024
    work, _ = suite.folder(cls)
    out = work / "out"
    result = Child(_run_args(out, kind), work, fsize=limit, stdout_pipe=True).wait()
    reported = sum(line.startswith("snapshot ") for line in result.stdout.splitlines())
    v.label += f" ({limit} bytes, {reported} snapshots reported)"
    judge(v, result)
    stated = re.search(r"keeps its (\d+) snapshots", result.last_line)
    if stated and (out / f"{kind}.h5").exists():
        problem, count = check_file(out / f"{kind}.h5")
        if not problem and count != int(stated.group(1)):
            v.fail("lost" if count < int(stated.group(1)) else "other", result.command(),
                   f"the message says {stated.group(1)} snapshots kept, the file holds {count}")
    _after_stop(v, work, out, kind, reported, result.command())


def live_readers(suite, rng, n, cls):
    for i in range(n):
        yield Trial(cls, f"readers {i}", _live_trial, suite, cls, rng.randrange(2**32))


#: the harness's own readers, in a child (HDF5 may spin on a file it reads mid-write): h5py with
#: HDF5's default file locking, as a user would open it, and xarray if installed, until told to stop
_READERS = """
import json, os, sys, time
import h5py
path, stop = sys.argv[1], sys.argv[2]
try:
    import xarray
    import h5netcdf
except ImportError:
    xarray = None
counts, errors = {"h5py": 0, "xarray": 0}, []
while not os.path.exists(stop):
    for name in ("h5py", "xarray"):
        try:
            if name == "h5py":
                with h5py.File(path, "r") as f:
                    f["time"][()]
            elif xarray is not None:
                with xarray.open_dataset(path, engine="h5netcdf") as ds:
                    ds["time"].values
            else:
                continue
            counts[name] += 1
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
    time.sleep(0.01)
print(json.dumps([counts, errors[:5], len(errors)]))
"""


def _live_trial(v, suite, cls, seed):
    import json
    import random
    import sys

    r = random.Random(seed)
    work, _ = suite.folder(cls)
    out = work / "out"
    path = out / "fv.h5"
    extra = ["--set", "time.end=20", "--set", "time.snapshots=81"]
    writer = Child(_run_args(out, "fv", *extra), work, stdout_pipe=True)
    writer.wait_snapshots(1)
    stop = work / "stop-readers"
    readers = Child(["-c", _READERS, path, stop], work, program=[sys.executable])
    opened = {"info": 0, "check": 0, "compare": 0}
    while writer.running():
        reader = r.choices(["info", "check", "compare"], weights=[2, 2, 1])[0]   # compare is the slowest
        argv = {"info": ["info", path], "check": ["check", path], "compare": ["compare", path, path]}[reader]
        judge(v, gflow(argv, work, timeout=60))
        opened[reader] += 1
        time.sleep(r.uniform(0.0, 0.05))
    result = writer.wait()
    stop.touch()
    done = readers.wait(60)
    try:
        counts, errors, n_errors = json.loads(done.stdout.strip().splitlines()[-1])
        opened.update(counts)
        v.notes += [f"{e} (reading beside the writer; {n_errors} such errors)" for e in errors]
    except (ValueError, IndexError):
        v.notes.append(f"the h5py/xarray reader child: exit {done.status}: {done.last_line}")
    v.label += " (reads: " + ", ".join(f"{k} {n}" for k, n in opened.items()) + ")"
    if judge(v, result, must_succeed=True) == "ok" or path.exists():
        problem, count = check_file(path)
        if problem:
            v.fail("lost", result.command(), f"beside readers the file fails gflow check: {problem}")
        elif result.status == 0 and count != 81:
            v.fail("other", result.command(), f"exit 0 but {count} of 81 snapshots")
