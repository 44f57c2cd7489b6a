"""Run a checked case with each of its solvers: the work behind `gflow run` (and sweeps).

Before any work: the output directory is checked (created, a directory, writable), every
output file is checked (never a symbolic link or a directory; an existing run is never
overwritten without `force`, and is continued with `resume`) and locked, so a second run
writing the same file at the same time is refused instead of corrupting it. The output
directory itself may be a symbolic link (`gflow.app.outputs`): only each file's own name is.
"""
from __future__ import annotations

import errno
import os
import stat
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gflow.app.outputs import check_dir, check_output
from gflow.case import Case, SolverSpec
from gflow.errors import InputError, RunError, reason
from gflow.h5io import names
from gflow.initial_snapshot import load_initial
from gflow.problem import Problem, build_problem
from gflow.solvers import make_stepper
from gflow.solvers.loop import RunSummary, run
from gflow.solvers.trackers import standard_trackers
from gflow.snapshot_check import first_problem
from gflow.snapshots import SnapshotWriter, open_run

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no locking
    fcntl = None


@dataclass
class SolverRun:
    kind: str
    path: Path
    summary: RunSummary | None      # None when a resumed run was already complete
    resumed_from: float | None = None


#: attempts at a lock whose file another run removes as we take it (each lost race costs one)
LOCK_TRIES = 10
_LOCK_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


@contextmanager
def output_lock(path: Path):
    """Hold an exclusive lock beside `path` for the whole run, or refuse at once.

    The lock file `.KIND.h5.lock` is opened without following a symbolic link, never truncated
    and never written: a link planted there (`.fv.h5.lock -> ~/.bashrc`) is refused in one line
    and its target left as it was; so is anything but a regular file (a FIFO would block the
    open). A run unlinks its lock file when it ends, so a lock taken on a file that has just been
    unlinked would exclude nobody: once locked, the name must still be that file, or we try again.
    """
    if fcntl is None:
        yield
        return
    lock_path = path.with_name(f".{path.name}.lock")
    for _ in range(LOCK_TRIES):
        fd = _open_lock(lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{path}: another gflow run is writing this file right now") from None
        except OSError as exc:
            os.close(fd)
            raise InputError(f"{lock_path}: cannot lock: {exc.strerror or exc}") from None
        if names(lock_path, fd):
            break
        os.close(fd)
    else:
        raise InputError(f"{path}: its lock file keeps being replaced; another gflow run is starting or ending there")
    try:
        yield
        if names(lock_path, fd):      # never another run's lock
            lock_path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _open_lock(lock_path: Path) -> int:
    """The lock file's descriptor, created if missing (mode 0o644), never through a link."""
    try:
        fd = os.open(lock_path, _LOCK_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):      # EMLINK: O_NOFOLLOW's answer on FreeBSD
            raise InputError(f"{lock_path}: is a symbolic link; gflow never opens a lock file through one "
                             "(remove it)") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):      # ENXIO: a FIFO nobody reads
            raise InputError(f"{lock_path}: is not a regular file (remove it)") from None
        raise InputError(f"{lock_path}: cannot create the lock file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{lock_path}: is not a regular file (remove it)")
    return fd


def _resume_point(path: Path, case: Case, spec: SolverSpec, stepper, times: np.ndarray) -> int:
    """Restore `stepper` from the last snapshot of `path`; return that snapshot's index."""
    done = open_run(path)
    differs = done.matches(case, spec)
    if differs:
        raise InputError(f"{path}: made by a different case ({differs} differs); "
                         "run with --force to start again")
    n = len(done.time)
    if n == 0:
        raise InputError(f"{path}: holds no snapshot to resume from; run with --force to start again")
    if n > len(times) or not np.allclose(done.time, times[:n], rtol=1e-12, atol=0):
        raise InputError(f"{path}: its snapshot times do not match the case")
    snapshot = done.snapshot(n - 1)        # shapes and values checked against the file's axes
    weights = stepper.weights
    if (snapshot.positions is None) != (weights is None) or (
            weights is not None and len(snapshot.positions) != len(weights)):
        raise InputError(f"{path}: its particles do not match the {spec.kind} solver of the case; "
                         "run with --force to start again")
    if done.varying_weights != stepper.varying_weights:
        raise InputError(f"{path}: its particles' weights {'change' if done.varying_weights else 'stay fixed'}, "
                         f"those of the {spec.kind} solver of the case do not; run with --force to start again")
    template = stepper.restart_state()
    state = done.restart()
    if state is None and template:
        raise InputError(f"{path}: the solver state of the last snapshot is missing; cannot resume exactly")
    problem = stepper.state_problem(state or {}) or _state_mismatch(template, state or {})
    try:
        if problem is None:
            stepper.restore(snapshot.density, snapshot.positions, state or {})
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        problem = reason(exc)
    if problem is not None:
        raise InputError(f"{path}: the saved solver state does not fit the {spec.kind} solver ({problem}); "
                         "run with --force to start again")
    if done.varying_weights and not np.array_equal(snapshot.weights, stepper.weights):
        # the snapshot's row and the state saved beside it are one append: unequal, the file was altered
        raise InputError(f"{path}: the weights of snapshot {n - 1} (snapshot_weights) differ from the saved "
                         "solver state's; run with --force to start again")
    return n - 1


def _state_mismatch(template: dict, state: dict) -> str | None:
    """What keeps a saved `restart` state from being the kind `template` (a fresh stepper's
    `restart_state`) is: a missing or extra entry, an array of another shape or kind, a number
    or text where the other is wanted; None when it fits."""
    for key in sorted(set(template) - set(state)):
        return f"no {key!r}"
    for key in sorted(set(state) - set(template)):
        return f"{key!r} is not part of it"
    for key, want in template.items():
        have = state[key]
        if isinstance(want, np.ndarray):
            if not isinstance(have, np.ndarray) or have.shape != want.shape or not np.can_cast(have.dtype, want.dtype):
                shape = getattr(have, "shape", "a scalar")
                return f"{key!r} is {shape} of {getattr(have, 'dtype', type(have).__name__)}, " \
                       f"expected {want.shape} of {want.dtype}"
        elif isinstance(want, str) != isinstance(have, (str, bytes)) or (
                not isinstance(want, str) and not isinstance(have, (int, float, np.integer, np.floating))):
            return f"{key!r} is {have!r}, expected a {type(want).__name__}"
    return None


def run_case(case: Case, out_dir: Path, *, force: bool = False, resume: bool = False,
             progress: bool | None = None, on_snapshot=None, echo=print, warn=None,
             also=()) -> list[SolverRun]:
    """Run every solver of `case`, writing `out_dir/<kind>.h5` for each.

    Before any work, `out_dir` must be a usable directory (`gflow.app.outputs.check_dir`; it
    may itself be a symbolic link) and each `<kind>.h5` a regular file or absent: a symbolic
    link there, dangling or not, is refused with or without `force` (the run would write
    wherever it points), and an existing run needs `force` or `resume`. `also` are the other
    files the caller will write from these runs (the report of `gflow run`), checked alike.

    `echo` receives the one-line summaries, `warn` the run loop's warnings (default: stderr).
    A solver that fails (InputError, RunError) does not stop the others; once all have run, the
    first failure's kind is raised, naming every failed solver when the case has several, with
    the list of runs that finished as its attribute `finished`.
    """
    out_dir = check_dir(out_dir)
    paths = {spec.kind: out_dir / f"{spec.kind}.h5" for spec in case.solvers}
    for path in paths.values():
        check_output(path, force or resume,
                     exists="a run is already there; use --force to overwrite it or --resume to continue it")
    for path in also:
        check_output(path, force or resume, exists="already exists; use --force to overwrite it "
                                                   "(or --resume to continue the runs it is about)")
    # an initial law from another run's snapshot is read here, before any work (`gflow.initial_snapshot`)
    problem: Problem = build_problem(load_initial(case))
    times = np.array(case.times, dtype=float)      # listed, linear or log-spaced (`gflow.case_times`)
    results: list[SolverRun] = []
    failures: list[tuple[str, Exception]] = []
    with ExitStack() as stack:
        for path in paths.values():
            stack.enter_context(output_lock(path))
        for spec in case.solvers:
            path = paths[spec.kind]
            try:
                try:
                    stepper = make_stepper(spec.kind, problem, spec.options)
                except (KeyError, ValueError) as exc:
                    raise InputError(f"{case.source}: solver {spec.kind}: {exc.args[0]}") from None
                start, resumed = 0, resume and path.exists()
                if resumed:
                    start = _resume_point(path, case, spec, stepper, times)
                    if start == len(times) - 1:
                        # nothing to write: say so only of a file that passes the whole check
                        damaged = first_problem(path)
                        if damaged:
                            raise InputError(f"{path}: complete but damaged ({damaged}); run with --force "
                                             "to start again")
                        echo(f"{spec.kind}: already complete ({path})")
                        results.append(SolverRun(spec.kind, path, None, float(times[start])))
                        continue
                    writer = SnapshotWriter.reopen(path, stepper.extra_names())
                else:
                    weights = stepper.weights
                    writer = SnapshotWriter(path, case_text=case.text_for(spec), solver=spec.kind, axes=case.axes,
                                            coordinates=problem.grid.centres,
                                            n_particles=None if weights is None else len(weights),
                                            weights=weights, extras=stepper.extra_names(),
                                            density_attrs=stepper.density_attrs, layered=bool(case.layers),
                                            options=spec.options, varying_weights=stepper.varying_weights,
                                            conserves_mass=stepper.conserves_mass)
                trackers = standard_trackers(writer, stepper, end=case.end, label=f"{case.name} [{spec.kind}]",
                                             axes=case.axes, progress=progress, warn=warn, on_snapshot=on_snapshot)
                summary = run(stepper, times, trackers, case.dt, start=start, resumed=resumed)
            except (InputError, RunError) as exc:
                # the other solvers still run: their files are reported and compared
                failures.append((spec.kind, exc))
                continue
            resumed_from = float(times[start]) if resumed else None
            echo(summary.line(spec.kind, stepper.summary())
                 + (f" (resumed at t = {resumed_from:g})" if resumed else ""))
            results.append(SolverRun(spec.kind, path, summary, resumed_from))
    if failures:
        raise _failure(failures, results, len(case.solvers))
    return results


def _failure(failures: list[tuple[str, Exception]], finished: list[SolverRun], n_solvers: int) -> Exception:
    """The error to raise for the failed solvers: the first one's kind (InputError or RunError),
    naming each failed solver when the case has several, with `finished` (the runs that did
    finish, whose files `gflow run` still reports and compares) as an attribute."""
    error = failures[0][1]
    if n_solvers > 1:
        error = type(error)("; ".join(f"{kind}: {' '.join(str(exc).split())}" for kind, exc in failures))
    error.finished = finished
    return error
