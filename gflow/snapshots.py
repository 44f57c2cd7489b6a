"""HDF5 snapshot files, one per run, in the layout the gflow contract (SPEC.md) fixes.

The file and all its metadata are written when the run starts; each snapshot is then
appended by opening, growing every time-indexed dataset by one, writing, and closing
(Dedalus' habit), so a run killed at any moment leaves a readable file with every
snapshot written before. Every dimension of every dataset has an HDF5 dimension scale,
which is what lets `xarray.open_dataset(path, engine="h5netcdf")` label it.

An append is all or nothing. HDF5 writes it through a rollback journal (`gflow.journal`): a
run killed outright (SIGKILL, a crash) mid-append leaves the bytes it overwrote beside the file,
and the next gflow reader or `SnapshotWriter.reopen` (resume) puts them back, so the file is
byte for byte what the last complete append left. Inside the append `time` grows last (readers
trust it for the count), the solver state of the new snapshot is written beside the previous
one (group `restart.new`) and takes its name only once `time` has grown, SIGINT and SIGTERM
wait until the append is complete, and an exception inside it (a KeyboardInterrupt raised off
the main thread, a full disk) rolls it back. Files of writers without the journal may hold rows
beyond `time` and the two restart groups: `Run.restart` picks the group of the last snapshot,
and `reopen` trims the rows and settles the groups before it appends.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time as clock
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from gflow.errors import InputError, RunError, reason
from gflow.h5io import METADATA_RESERVE, DiskFull, appending, creating, reading, reserve
from gflow.run_labels import attributes
from gflow.version import __version__

#: per-layer mass of a layered run (T, L): each layer's density summed over its cells
LAYER_MASS = "layer_mass"

# the reader's names, re-exported: `from gflow.snapshots import open_run` keeps working
from gflow.run_file import (FORMAT, FORMAT_VERSION, PENDING, READ_ERRORS, RESTART, SCALARS, SNAPSHOT_WEIGHTS,  # noqa: F401
                            WALL_TIME, Run, Snapshot, open_run, restart_index)

#: the note on `weights` of a run whose masses change (Fisher-Rao): what the (m,) dataset holds
NORMALISED_NOTE = ("the initial masses divided by their sum (attribute initial_mass), so that they sum to 1; "
                   "the masses at each snapshot are in snapshot_weights")

#: the signals an append holds back until it is complete
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Observation:
    """What one snapshot stores (SPEC.md): the density on the case grid and its functionals."""

    density: np.ndarray
    risk: float
    energy: float
    mass: float
    positions: np.ndarray | None = None
    #: the particles' weights now, for a stepper whose weights change (`Stepper.varying_weights`:
    #: birth-death's weights, Fisher-Rao's masses), stored as a row of `snapshot_weights`; else None
    weights: np.ndarray | None = None
    #: solver-specific per-snapshot numbers, stored as extra datasets of shape (T,)
    extras: dict[str, float] = field(default_factory=dict)


class SnapshotWriter:
    """Create a run file and append snapshots to it."""

    def __init__(self, path: str | Path, *, case_text: str, solver: str, axes, coordinates,
                 n_particles: int | None = None, weights: np.ndarray | None = None,
                 extras: tuple[str, ...] = (), density_attrs: dict | None = None, layered: bool = False,
                 options: dict | None = None, varying_weights: bool = False, conserves_mass: bool = True):
        """`options`: the solver's options, every one resolved (stored as JSON text, root attribute
        `solver_options`). Every dataset gets `long_name` and `units` (`gflow.run_labels`), the
        `component` scale the axis names, and each snapshot its `wall_time`.

        `varying_weights` (`Stepper.varying_weights`): the particles' weights change, and each
        snapshot's (`Observation.weights`) is a row of `snapshot_weights` (T, m), scales `time` and
        `particle`; `weights` (m,) holds the initial ones. Where the mass is not conserved
        (`conserves_mass` False: Fisher-Rao) the rows are masses and `weights` the initial ones
        divided by their sum, so that it still sums to 1 (SPEC.md), with attributes saying so;
        `snapshot_weights` carries `sums_to_one`, which `gflow check` holds each row to.

        `layered`: axes[0] is the frozen layer axis of a layered model (resnet), stored as SPEC.md
        fixes: a `layer` scale, density (T, L, n_1..n_D), positions (T, L, M, D) of particles given
        layer by layer, weights (M,) those of one layer (all alike), and `layer_mass` (T, L)."""
        self.path = Path(path)
        self.extras = tuple(extras)
        self.layers = len(coordinates[0]) if layered else None
        #: whether each snapshot stores its weights (`snapshot_weights`)
        self.weight_rows = bool(varying_weights) and n_particles is not None
        if self.weight_rows and layered:
            raise RunError("a layered run keeps its particles' weights: per-snapshot weights are not part of its layout")
        if self.weight_rows and not conserves_mass and not float(np.sum(weights)) > 0:
            raise RunError("the particles' initial masses do not sum to a positive number: there is no measure to store")
        self._clock = (clock.perf_counter(), 0.0)     # (start, seconds spent before it)
        shape = tuple(len(c) for c in coordinates)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_symlink():
            raise InputError(f"{self.path}: is a symbolic link; a run file is written only as a file of its own")
        setup = sum(np.asarray(c).nbytes for c in coordinates) + (0 if weights is None else 3 * np.asarray(weights).nbytes)
        try:
            _probe_room(self.path, setup + METADATA_RESERVE)
            self._create(shape, axes, coordinates, case_text, solver, n_particles, weights, density_attrs, options,
                         conserves_mass)
        except OSError as exc:
            self.path.unlink(missing_ok=True)     # a half-made file holds no snapshot yet
            raise RunError(f"{self.path}: cannot create the run file: {_cause(exc)}") from None

    def _create(self, shape, axes, coordinates, case_text, solver, n_particles, weights, density_attrs,
                options, conserves_mass: bool = True) -> None:
        layered = self.layers is not None
        # the layer axis is stored as the `layer` scale, not among the `axes` (SPEC.md)
        stored_axes = list(axes[1:] if layered else axes)
        with creating(self.path) as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, gflow_version=__version__,
                           solver=solver, case=case_text, axes=stored_axes)
            if options is not None:
                f.attrs["solver_options"] = json.dumps(options, sort_keys=True)
            time = f.create_dataset("time", (0,), maxshape=(None,), dtype="f8", chunks=(256,))
            time.make_scale("time")
            for name in (*SCALARS, *self.extras, WALL_TIME):
                f.create_dataset(name, (0,), maxshape=(None,), dtype="f8", chunks=(256,))
                f[name].dims[0].attach_scale(time)
            scales = []
            for name, c in zip(axes, coordinates):
                ds = f.create_dataset(name, data=np.asarray(c, dtype="f8"))
                ds.make_scale(name)
                scales.append(ds)
            density = f.create_dataset("density", (0, *shape), maxshape=(None, *shape), dtype="f8",
                                       chunks=(1, *shape))
            # what a Lagrangian solver's density holds (`binned`: the particles inside the box)
            density.attrs.update(density_attrs or {})
            density.dims[0].attach_scale(time)
            for i, s in enumerate(scales):
                density.dims[1 + i].attach_scale(s)
            lead = ()
            if layered:
                lead = (self.layers,)
                layer_mass = f.create_dataset(LAYER_MASS, (0, self.layers), maxshape=(None, self.layers),
                                              dtype="f8", chunks=(256, self.layers))
                layer_mass.dims[0].attach_scale(time)
                layer_mass.dims[1].attach_scale(scales[0])
            if n_particles is not None:
                weights = np.asarray(weights, dtype="f8")
                if layered:
                    n_particles, weights = _one_layer(weights, self.layers)
                particle = f.create_dataset("particle", data=np.arange(n_particles, dtype="i8"))
                particle.make_scale("particle")
                # labelled by the axis names, so xarray selects `positions.sel(component="w")`
                component = f.create_dataset("component", data=np.array(stored_axes, dtype=object),
                                             dtype=h5py.string_dtype())
                component.make_scale("component")
                row = (*lead, n_particles, len(stored_axes))
                pos = f.create_dataset("positions", (0, *row), maxshape=(None, *row), dtype="f8", chunks=(1, *row))
                for i, s in enumerate((time, *scales[:len(lead)], particle, component)):
                    pos.dims[i].attach_scale(s)
                initial_mass = float(weights.sum())
                if self.weight_rows and not conserves_mass:
                    weights = weights / initial_mass        # `weights` sums to 1 (SPEC.md)
                w = f.create_dataset("weights", data=weights)
                w.dims[0].attach_scale(particle)
                if self.weight_rows:
                    if not conserves_mass:
                        w.attrs.update(note=NORMALISED_NOTE, initial_mass=initial_mass)
                    rows = f.create_dataset(SNAPSHOT_WEIGHTS, (0, n_particles), maxshape=(None, n_particles),
                                            dtype="f8", chunks=(1, n_particles))
                    rows.dims[0].attach_scale(time)
                    rows.dims[1].attach_scale(particle)
                    rows.attrs["sums_to_one"] = np.int8(conserves_mass)     # 1: each row sums to 1
            for name, ds in f.items():
                ds.attrs.update(attributes(name, axes))

    @classmethod
    def reopen(cls, path: str | Path, extras: tuple[str, ...] = ()) -> SnapshotWriter:
        """Append to an existing run file (gflow run --resume)."""
        writer = cls.__new__(cls)
        writer.path, writer.extras = Path(path), tuple(extras)
        try:
            with _signals_deferred(), appending(writer.path, 0) as f:
                writer.layers = f[LAYER_MASS].shape[1] if LAYER_MASS in f else None
                writer.weight_rows = SNAPSHOT_WEIGHTS in f
                # the clock goes on from the last snapshot's; a file written before it had none
                writer._clock = None
                if WALL_TIME in f:
                    n = f["time"].shape[0]
                    writer._clock = (clock.perf_counter(), float(f[WALL_TIME][n - 1]) if n else 0.0)
                _settle(f)       # what a run killed mid-append left: rows beyond `time`, two restart groups
        except OSError as exc:
            raise RunError(f"{writer.path}: cannot reopen the run file to continue it: {_cause(exc)}") from None
        return writer

    def append(self, t: float, obs: Observation, restart: dict | None = None) -> None:
        """Add one snapshot, all or nothing; `restart` (a stepper's `restart_state`) replaces the
        last one's.

        The room for the snapshot's bytes is proven on disk before anything is written
        (`gflow.h5io.reserve`), and `time` grows last; no room (a full disk, a file-size limit) or a failed write
        is a `RunError` naming what the file still holds, and the file stays valid."""
        try:
            with _signals_deferred(), appending(self.path, _payload_bytes(obs, restart)) as f:
                self._append(f, t, obs, restart)
        except OSError as exc:
            cause = f"no room to write the snapshot at t = {t:g} ({exc.strerror})" if isinstance(exc, DiskFull) \
                else f"cannot write the snapshot at t = {t:g} ({_cause(exc)})"
            held = _held(self.path)
            then = "make room and run again with --force" if held == 0 else \
                f"the file keeps its {held} snapshots: make room and continue with --resume"
            raise RunError(f"{self.path}: {cause}; {then}") from None

    def _append(self, f: h5py.File, t: float, obs: Observation, restart: dict | None) -> None:
        n = f["time"].shape[0]
        committed = False
        try:
            self._write(f, n, obs, restart)
            # `time` last: a reader trusts it for the count, so this is the append's commit
            f["time"].resize(n + 1, axis=0)
            f["time"][n] = t
            committed = True
            _settle(f)
        except BaseException:
            # finish the append once `time` holds it, else roll it back; report the first error
            with contextlib.suppress(Exception):
                if not committed:
                    f["time"].resize(n, axis=0)
                _settle(f)
            raise

    def _write(self, f: h5py.File, n: int, obs: Observation, restart: dict | None) -> None:
        """Snapshot n in every time-indexed dataset but `time`, its solver state in `restart.new`."""
        if self.weight_rows != (obs.weights is not None):
            # a writer and a stepper of different set-ups: no snapshot without its weights, none lost
            raise RunError(f"{self.path}: the snapshot at index {n} "
                           + ("has no particle weights, which this run file stores per snapshot" if self.weight_rows
                              else "has particle weights that change, which this run file does not store"))
        values = {"risk": obs.risk, "energy": obs.energy, "mass": obs.mass,
                  **{k: obs.extras[k] for k in self.extras}}
        if self._clock is not None:
            start, before = self._clock
            values[WALL_TIME] = before + clock.perf_counter() - start
        f["density"].resize(n + 1, axis=0)
        f["density"][n] = obs.density
        if self.layers is not None:
            # layer l's mass int rho_l du = L x (its share of the total mass): each cell's
            # volume holds the layer width 1/L
            sums = obs.density.reshape(self.layers, -1).sum(axis=1)
            total = float(sums.sum())
            f[LAYER_MASS].resize(n + 1, axis=0)
            f[LAYER_MASS][n] = self.layers * obs.mass * sums / total if total else np.zeros(self.layers)
        if obs.positions is not None:
            f["positions"].resize(n + 1, axis=0)
            positions = obs.positions
            if self.layers is not None:    # (L M, 1 + D), layer by layer -> (L, M, D)
                positions = positions[:, 1:].reshape(self.layers, -1, positions.shape[1] - 1)
            f["positions"][n] = positions
        if self.weight_rows:
            f[SNAPSHOT_WEIGHTS].resize(n + 1, axis=0)
            f[SNAPSHOT_WEIGHTS][n] = obs.weights
        if restart is not None:
            _write_restart(f, n, restart)
        for name, value in values.items():
            f[name].resize(n + 1, axis=0)
            f[name][n] = value


def _one_layer(weights: np.ndarray, layers: int) -> tuple[int, np.ndarray]:
    """The joint weights (L M,) of particles given layer by layer as one layer's (M,), summing
    to 1: every layer of a layered run holds the same weights (SPEC.md stores them once)."""
    per_layer = weights.reshape(layers, -1) * layers
    if not np.allclose(per_layer, per_layer[0], rtol=1e-12, atol=0):
        raise RunError("the layers' particle weights differ: a layered run file stores one layer's weights")
    return per_layer.shape[1], per_layer[0]


def _payload_bytes(obs: Observation, restart: dict | None) -> int:
    """What one append writes, at most: its arrays, scalars and solver state."""
    arrays = [obs.density, obs.positions, obs.weights, *(restart or {}).values()]
    return sum(np.asarray(a).nbytes for a in arrays if a is not None and not isinstance(a, str)) + sum(
        len(v) for v in (restart or {}).values() if isinstance(v, str)) + 64 * (8 + len(obs.extras))


def _probe_room(path: Path, nbytes: int) -> None:
    """Raise `DiskFull` unless `nbytes` could be written at `path` now: a new run file is written by
    HDF5 in one go (it cannot be reserved inside), so its room is tried on an empty file first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        reserve(fd, nbytes)
    finally:
        os.close(fd)


def _held(path: Path) -> int | str:
    """How many snapshots the run file at `path` holds, for a message ("?" when unreadable)."""
    try:
        with reading(path, wait=1.0) as f:
            return int(f["time"].shape[0])
    except (OSError, KeyError, ValueError, RuntimeError):
        return "?"


def _cause(exc: OSError) -> str:
    """An OSError in a few words: its errno's text when it has one ("No space left on device")."""
    return os.strerror(exc.errno) if exc.errno else reason(exc)


def _write_restart(f: h5py.File, index: int, state: dict) -> None:
    """The solver state behind snapshot `index`, in group `restart.new` until `time` holds the
    snapshot (`_settle` renames it); neither group is part of SPEC.md's layout."""
    if PENDING in f:
        del f[PENDING]
    group = f.create_group(PENDING)
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = value
    group.attrs["snapshot"] = index     # last: a group without it is incomplete


def _settle(f: h5py.File) -> None:
    """Make the file what `time` says: trim the time-indexed datasets to its length, and keep as
    `restart` the restart group of the last snapshot (dropping a stale or incomplete other)."""
    n = f["time"].shape[0]
    for name, ds in f.items():
        if isinstance(ds, h5py.Dataset) and ds.maxshape and ds.maxshape[0] is None and ds.shape[0] > n:
            ds.resize(n, axis=0)
    if PENDING in f:
        if restart_index(f[PENDING]) == n - 1:
            if RESTART in f:
                del f[RESTART]
            f.move(PENDING, RESTART)
        else:
            del f[PENDING]


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back for the block, then hand them to the handlers that were in place
    (so Ctrl-C still stops the run, just after the append). Only the main thread can set handlers;
    elsewhere, and for signals whose handler Python did not set, nothing is deferred."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    try:
        for signum in DEFERRED_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None or handler is signal.SIG_IGN:
                continue
            previous[signum] = signal.signal(signum, lambda number, frame: caught.append(number))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)
