"""Sweeps: one case run over the product of lists of overrides, on a Dask cluster (`gflow sweep`).

A convergence study or a parameter scan is many ordinary runs of one case, each with a few
`--set` overrides: `--vary KEY=V1,V2,...` (or a `[sweep]` table in the case file) gives the
values of each key, and the sweep runs every combination (the Cartesian product, in the order
the keys are given). Each run is written exactly as `gflow run -o DIR/<name>` writes it,

    DIR/<name>/<kind>.h5,    <name> = "key1=value1__key2=value2" (docs/sweeps.md),

and `DIR/sweep.csv` gets one row per snapshot file: the overrides, status, final risk, wall time
and, against a reference run, the final-time risk error |R - R_ref| and W1, W2, L1 distances.

Execution is `dask.distributed` (https://distributed.dask.org): a `LocalCluster` of one
single-threaded worker process per core, or any running scheduler given by its address. Each
task receives plain data (the case text, its overrides, the output directory) and returns plain
rows, so a worker on another machine needs only gflow installed and the output directory mounted
at the same path. Runs are deterministic given their case (seeds are case keys), so a run gives
the same file on any worker as `gflow run` gives on the command line.

A run that raises (a bad combination, a blow-up, a worker that died) is recorded as
`failed: <reason>` in its row and the others go on. Started again, a sweep skips every run
whose files are complete (all snapshots of the same case), resumes incomplete ones from their
last snapshot, and reruns everything with `force`.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import os
import sys
import uuid
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gflow.app.outputs import check_dir, check_output, replacing, write_text
from gflow.case import Case, case_from_text, parse_override_value, read_case_text
from gflow.errors import InputError, RunError
from gflow.solver_options import PARTICLE_KINDS
from gflow.sweep_table import group_key, write_csv

MAX_NAME = 150
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-=")
#: a wall_time sidecar beside each run's snapshot files (snapshot files do not store it)
SIDECAR = "sweep_run.json"


# ----------------------------------------------------------------------------- the runs

@dataclass(frozen=True)
class SweepRun:
    """One combination: its directory name and its (dotted key, value) assignments."""

    name: str
    assignments: tuple[tuple[str, Any], ...]

    @property
    def overrides(self) -> list[str]:
        """The assignments as `--set KEY=VALUE` items."""
        return [f"{key}={toml_value(value)}" for key, value in self.assignments]


def toml_value(value: Any) -> str:
    """`value` as an inline TOML value (what `--set` parses back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)       # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise InputError(f"cannot vary a key over {value!r}")


def label(value: Any) -> str:
    """The value as a csv cell and in a run name: strings bare, [64, 64] as 64x64 in names."""
    if isinstance(value, str):
        return value
    return toml_value(value)


def _name_part(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(_name_part(v) for v in value)
    if isinstance(value, dict):
        return "_".join(f"{k}-{_name_part(v)}" for k, v in value.items())
    return label(value)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def run_name(assignments) -> str:
    """`key=value__key=value`, with characters outside [A-Za-z0-9._+-=] as `_`; long names hashed."""
    text = "__".join(f"{key}={_name_part(value)}" for key, value in assignments) or "base"
    name = "".join(c if c in _SAFE else "_" for c in text)
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 9]}-{_digest(text)}"
    return name


def split_values(text: str) -> list[str]:
    """Split at the commas outside brackets, braces and quotes: `[32,32],[64,64]` is two values."""
    parts, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote and text[i - 1] != "\\" else quote
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_vary(items) -> dict[str, list]:
    """`--vary KEY=V1,V2,...` options -> {KEY: [values]}; each value parses as a `--set` value."""
    axes: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise InputError(f"--vary {item}: expected KEY=V1,V2,... with a dotted key, "
                             "e.g. solver.particles=100,1000")
        if key in axes:
            raise InputError(f"--vary {item}: {key} is varied twice; give all its values in one --vary")
        tokens = split_values(values)
        if any(not t for t in tokens):
            raise InputError(f"--vary {item}: an empty value (values are separated by commas)")
        axes[key] = [parse_override_value(t) for t in tokens]
    return axes


def expand(axes: dict[str, list]) -> list[SweepRun]:
    """Every combination of the values, the last key varying fastest; names made unique."""
    combos = [tuple(zip(axes, values)) for values in itertools.product(*axes.values())]
    names = [run_name(c) for c in combos]
    seen: dict[str, int] = {}
    for n in names:
        seen[n.lower()] = seen.get(n.lower(), 0) + 1   # case-insensitive filesystems too
    runs = []
    for name, combo in zip(names, combos):
        if seen[name.lower()] > 1:     # two values that differ only in unsafe characters
            name = f"{name[:MAX_NAME - 9]}-{_digest(repr(combo))}"
        runs.append(SweepRun(name, combo))
    return runs


def sweep_axes(case: Case, vary: dict[str, list]) -> dict[str, list]:
    """The case's [sweep] table with `--vary` keys replacing its own or added after them."""
    axes = dict(case.sweep)
    axes.update(vary)
    return axes


# ----------------------------------------------------------------------------- one run (a task)

def _failure(exc: BaseException) -> str:
    """`failed: <one line>`; gflow's own errors say what happened, others also name their type."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, (InputError, RunError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"failed: {text}"[:300]


def _resolution(kind: str, particles, cells) -> Any:
    return particles if kind in PARTICLE_KINDS and particles not in ("", None) else cells


def _row_from_file(path: Path, kind: str) -> dict:
    """Final time, risk and sizes as the snapshot file holds them."""
    from gflow.snapshots import open_run

    run = open_run(path)
    particles = len(run.weights) if run.has_particles and run.weights is not None else ""
    cells = math.prod(len(c) for c in run.coordinates)
    return {"solver": kind, "path": str(path), "particles": particles, "cells": cells,
            "resolution": _resolution(kind, particles, cells),
            "final_time": float(run.time[-1]) if len(run.time) else "",
            "final_risk": float(run.risk[-1]) if len(run.risk) else ""}


def _state(case: Case, paths: dict) -> str:
    """'complete' (every file holds every snapshot of this case), 'partial', 'absent' or 'other'."""
    from gflow.snapshots import open_run

    if not any(p.exists() for p in paths.values()):
        return "absent"
    complete = True
    for spec in case.solvers:
        path = paths[spec.kind]
        if not path.exists():
            complete = False
            continue
        try:
            run = open_run(path)
        except InputError:
            complete = False      # killed while being created: nothing to keep
            continue
        if run.matches(case, spec) is not None:
            return "other"
        complete = complete and len(run.time) == case.snapshots
    return "complete" if complete else "partial"


def _read_sidecar(directory: Path) -> dict:
    try:
        return json.loads((directory / SIDECAR).read_text())
    except (OSError, ValueError):
        return {}


def _add_note(notes: dict, kinds, text: str) -> None:
    for kind in kinds:
        notes[kind] = f"{notes[kind]}; {text}" if notes[kind] else text


@contextmanager
def _warnings_to(notes: dict, kinds):
    """The run loop's `gflow: warning: ...` lines (the box may be too small) into the rows' notes.

    They would otherwise reach a worker's stderr, far from the row they are about; anything
    else written to stderr is passed on.
    """
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            yield
    finally:
        for line in captured.getvalue().splitlines():
            if line.startswith("gflow: warning: "):
                _add_note(notes, kinds, line.removeprefix("gflow: warning: "))
            elif line.strip():
                print(line, file=sys.stderr)


def run_task(job: dict) -> list[dict]:
    """Run (or skip, or resume) one combination; one row per solver. Plain data in and out.

    `job`: case_text, source, base_dir, stem, overrides (list of KEY=VALUE), solver_kinds
    (None: the case's), kinds (for rows of a case that does not build), out_dir, name, force.
    """
    from gflow.app.execute import run_case

    out = Path(job["out_dir"]) / job["name"]

    def failed(exc, kinds=None):
        return [{"solver": k, "status": _failure(exc), "path": str(out / f"{k}.h5")}
                for k in kinds or job["kinds"]]

    try:
        case = case_from_text(job["case_text"], job["source"], job["overrides"], job["solver_kinds"],
                              Path(job["base_dir"]), job["stem"])
    except Exception as exc:       # noqa: BLE001 - a bad combination is one row, never the sweep
        return failed(exc)
    kinds = [s.kind for s in case.solvers]
    paths = {k: out / f"{k}.h5" for k in kinds}
    state = "absent" if job["force"] else _state(case, paths)
    status = dict.fromkeys(kinds, "skipped (complete)")
    note = dict.fromkeys(kinds, "")
    walls = _read_sidecar(out) if state != "absent" else {}
    if state != "complete":
        quiet = dict(progress=False, echo=lambda *args, **kwargs: None)
        try:
            with _warnings_to(note, kinds):
                try:
                    # a run of another case is refused (by run_case, naming the key that differs)
                    results = run_case(case, out, force=state == "absent", resume=state != "absent", **quiet)
                except InputError as exc:
                    if state != "partial":
                        raise
                    # an incomplete run of this same case that cannot continue exactly: start it again
                    _add_note(note, kinds, f"started again: {exc}")
                    results = run_case(case, out, force=True, **quiet)
        except Exception as exc:   # noqa: BLE001 - InputError, RunError, anything: this run's row
            return failed(exc, kinds)
        for r in results:
            if r.summary is None:      # this solver's file was complete already
                continue
            walls[r.kind] = {"wall_time": r.summary.wall, "steps": r.summary.steps}   # resumed: this part
            status[r.kind] = "done (resumed)" if r.resumed_from is not None else "done"
            if r.resumed_from is not None:
                _add_note(note, [r.kind], f"resumed at t = {r.resumed_from:g}")
        write_text(out / SIDECAR, json.dumps(walls, indent=1) + "\n")
    rows = []
    for kind in kinds:
        try:
            row = _row_from_file(paths[kind], kind)
        except InputError as exc:
            rows.extend(failed(exc, [kind]))
            continue
        row.update(status=status[kind], note=note[kind], **walls.get(kind, {}))
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- distances

def distance_task(path: str, reference: str) -> dict:
    """|R - R_ref| and W1, W2, L1 between a run and its reference at their last common time.

    The same representations and methods as `gflow compare` (postprocess/compare.py), for the
    last common snapshot only.
    """
    import numpy as np

    from gflow.postprocess.compare import common_times, plan_transport, transport_measure, wasserstein
    from gflow.postprocess.regrid import cell_volumes, common_grid, regrid
    from gflow.postprocess.runs import faces
    from gflow.snapshots import open_run

    try:
        run, ref = open_run(path, require_snapshots=True), open_run(reference, require_snapshots=True)
        if tuple(run.axes) != tuple(ref.axes):
            return {"note": f"no distance: axes {list(run.axes)} differ from the reference's {list(ref.axes)}"}
        pairs = common_times(run.time, ref.time)
        if not pairs:
            return {"note": "no distance: no snapshot time in common with the reference"}
        i, j = pairs[-1]
        transport = plan_transport(run, ref)
        sa, sb = run.snapshot(i), ref.snapshot(j)
        w1, w2 = wasserstein(*transport_measure(run, sa, transport.grids[0]),
                             *transport_measure(ref, sb, transport.grids[1]), transport.method)
        fa, fb = faces(run), faces(ref)
        grid = common_grid(fa, fb)
        diff = regrid(sa.density, fa, grid) - regrid(sb.density, fb, grid)
        out = {"risk_error": abs(float(run.risk[i] - ref.risk[j])), "W1": w1, "W2": w2,
               "L1": float(np.sum(np.abs(diff) * cell_volumes(grid)))}
        if i != len(run.time) - 1 or j != len(ref.time) - 1:
            out["note"] = f"distances at t = {run.time[i]:g}, the last time in common with the reference"
        return out
    except InputError as exc:
        return {"note": f"no distance: {exc}"}


def _finished(row: dict) -> bool:
    return row.get("status", "").startswith(("done", "skipped")) and row.get("final_risk", "") != ""


def choose_references(rows: list[dict], keys, reference: str | None = None) -> dict[int, str]:
    """Row index -> reference path: `reference` for every row, or each group's finest run.

    The finest run of a group is its unique largest (resolution, cells); a group whose runs
    do not differ in resolution, or with a tie at the top, has none.
    """
    if reference is not None:
        return {i: reference for i, row in enumerate(rows) if _finished(row)}
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        if _finished(row):
            groups.setdefault(group_key(row, keys), []).append(i)
    chosen = {}
    for members in groups.values():
        size = {i: (rows[i]["resolution"], rows[i]["cells"]) for i in members}
        top = max(size.values())
        finest = [i for i in members if size[i] == top]
        if len(members) > 1 and len(finest) == 1:
            chosen.update({i: rows[finest[0]]["path"] for i in members})
    return chosen


# ----------------------------------------------------------------------------- the sweep

@dataclass
class SweepResult:
    rows: list[dict]
    csv_path: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, processes: bool = True):
    """A client of the scheduler at `scheduler`, or of a new LocalCluster of `workers` processes.

    Local workers are single-threaded (each run is one process's work; numpy, numba and FFTW
    threads are left to dask's defaults of one per worker process) and share the machine's
    memory equally, dask's default memory limit.
    """
    from distributed import Client, LocalCluster

    cluster = client = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, set_as_default=False, timeout="30s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster, set_as_default=False)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _count(rows) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        word = row.get("status", "").split(" ", 1)[0].rstrip(":") or "pending"
        counts[word] = counts.get(word, 0) + 1
    return counts


def _summary_line(row: dict) -> str:
    text = f"{row['run']} [{row.get('solver', '?')}]: {row['status']}"
    if row.get("final_risk", "") != "":
        text += f", final risk {row['final_risk']:.6g}"
    if row.get("wall_time", "") != "":
        text += f", {row['wall_time']:.2f} s"
    return text


@dataclass
class Sweep:
    """A checked sweep: its runs, the task of each runnable one, and the rows known so far."""

    runs: list[SweepRun]
    keys: list[str]
    kinds: list[str]                 # the base case's solver kinds, for rows of runs that never built
    out: Path
    jobs: list[dict]
    rows_of: dict[str, list[dict]]   # run name -> its rows (one per solver), once known
    sizes: dict[str, int] = field(default_factory=dict)    # key -> number of values

    def table(self) -> list[dict]:
        """Every row in sweep order; runs not finished yet are `not run`."""
        table = []
        for run in self.runs:
            fixed = {"run": run.name, **{k: label(v) for k, v in run.assignments}}
            for row in self.rows_of.get(run.name) or [{"solver": k, "status": "not run"} for k in self.kinds]:
                table.append({**fixed, **row})
        return table


def plan_sweep(case_path, vary=(), overrides=(), solver_kinds=None, out_dir=None, force=False) -> Sweep:
    """Read the case, expand its sweep and check every combination; InputError for bad arguments."""
    case_path = Path(case_path)
    try:
        text = read_case_text(case_path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{case_path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    base_dir = case_path.parent.resolve()
    base = case_from_text(text, str(case_path), list(overrides), solver_kinds, base_dir, case_path.stem)
    axes = sweep_axes(base, parse_vary(vary))
    if not axes:
        raise InputError(f"{case_path}: nothing to vary: give --vary KEY=V1,V2,... or a [sweep] table")
    out = (Path(out_dir) if out_dir else base.output_dir / "sweep").resolve()
    sweep = Sweep(expand(axes), list(axes), [s.kind for s in base.solvers], out, [], {},
                  {k: len(v) for k, v in axes.items()})
    for run in sweep.runs:
        job = {"case_text": text, "source": str(case_path), "base_dir": str(base_dir), "stem": case_path.stem,
               "overrides": [*overrides, *run.overrides], "solver_kinds": solver_kinds, "kinds": sweep.kinds,
               "out_dir": str(out), "name": run.name, "force": force}
        try:   # checked here: a bad combination is its row, and costs no worker
            case_from_text(text, str(case_path), job["overrides"], solver_kinds, base_dir, case_path.stem)
        except InputError as exc:
            sweep.rows_of[run.name] = [{"solver": k, "status": _failure(exc)} for k in sweep.kinds]
            continue
        sweep.jobs.append(job)
    if not sweep.jobs:       # a key that no combination accepts is a typo, not a study
        first = sweep.rows_of[sweep.runs[0].name][0]["status"].removeprefix("failed: ")
        raise InputError(f"{first} (in every combination of the sweep; nothing was run)")
    return sweep


def _gather(client, futures: dict):
    """(future's value, or the exception it raised; its entry in `futures`) as each finishes."""
    from distributed import as_completed

    for future in as_completed(futures, loop=client.loop):
        try:
            yield future.result(), futures[future]
        except Exception as exc:     # noqa: BLE001 - a worker died, or the task could not run
            yield exc, futures[future]


def _measure(client, table: list[dict], keys, reference: str | None) -> None:
    """Fill each row's reference and distances to it, the distances computed on the cluster."""
    refs = choose_references(table, keys, reference)
    pending = {client.submit(distance_task, table[i]["path"], ref, pure=False): i
               for i, ref in refs.items() if table[i]["path"] != ref}
    for found, i in _gather(client, pending):
        if isinstance(found, Exception):
            found = {"note": f"no distance: {found}"}
        if found.get("note") and table[i].get("note"):
            found["note"] = f"{table[i]['note']}; {found['note']}"
        table[i].update(found)
    for i, ref in refs.items():
        table[i]["reference"] = "self" if table[i]["path"] == ref else ref


def _write_table(rows: list[dict], keys, path: Path) -> None:
    """sweep.csv (`gflow.sweep_table.write_csv`) written to a fresh temporary name and moved over
    `path` (`gflow.app.outputs.replacing`): never through a link, never half a table."""
    with replacing(path) as tmp:
        write_csv(rows, keys, tmp)


def run_sweep(case_path, *, vary=(), overrides=(), solver_kinds=None, out_dir=None, scheduler=None,
              workers=None, reference=None, force=False, processes=True, measure=True, echo=print) -> SweepResult:
    """Run every combination of a case's sweep; write DIR/sweep.csv and return its rows; with
    `measure` false the distances to a reference are left out (`gflow ensemble` needs only risks).

    Bad arguments or a bad case file raise `InputError` before any work; a combination that
    fails (at checking or while running) is a `failed: ...` row and the others go on.
    """
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    sweep = plan_sweep(case_path, vary, overrides, solver_kinds, out_dir, force)
    if reference is not None:
        from gflow.snapshots import open_run
        reference = str(open_run(reference).path.resolve())
    # sweep.csv is this directory's table, rebuilt from its run files on every start (continuing a
    # sweep is its ordinary use): rewritten without --force, but never through a link
    csv_path = check_output(check_dir(sweep.out) / "sweep.csv", force=True)
    total, done = len(sweep.runs), 0
    sizes = ", ".join(f"{k}: {n} values" for k, n in sweep.sizes.items())
    echo(f"sweep: {total} runs of {case_path} ({sizes}), output {sweep.out}")

    def report(name: str, rows: list[dict]) -> None:
        nonlocal done
        done += 1
        for row in rows:
            echo(f"[{done}/{total}] {_summary_line({'run': name, **row})}")

    for run in sweep.runs:
        if run.name in sweep.rows_of:
            report(run.name, sweep.rows_of[run.name])
    try:
        with dask_client(scheduler, workers or min(len(sweep.jobs), os.cpu_count() or 1), processes) as client:
            echo(f"dask: {'scheduler ' + scheduler if scheduler else 'local cluster'}, "
                 f"{len(client.scheduler_info().get('workers', {}))} workers")
            futures = {client.submit(run_task, job, key=f"gflow-{job['name']}-{uuid.uuid4().hex[:8]}",
                                     pure=False): job["name"] for job in sweep.jobs}
            for rows, name in _gather(client, futures):
                if isinstance(rows, Exception):
                    rows = [{"solver": k, "status": _failure(rows)} for k in sweep.kinds]
                sweep.rows_of[name] = rows
                report(name, rows)
                _write_table(sweep.table(), sweep.keys, csv_path)      # an interrupted sweep keeps its table
            table = sweep.table()
            if measure:
                _measure(client, table, sweep.keys, reference)
    except BaseException:
        _write_table(sweep.table(), sweep.keys, csv_path)
        raise
    _write_table(table, sweep.keys, csv_path)
    counts = _count(table)
    echo(f"wrote {csv_path} ({', '.join(f'{n} {w}' for w, n in counts.items())})")
    return SweepResult(table, csv_path, counts)
