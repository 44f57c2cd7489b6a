"""HDF5 snapshot files, one per run, in the layout the gflow contract (SPEC.md) fixes.

The file and all its metadata are written when the run starts; each snapshot is then
appended by opening, growing every time-indexed dataset by one, writing, and closing
(Dedalus' habit), so a run killed at any moment leaves a readable file with every
snapshot written before. Every dimension of every dataset has an HDF5 dimension scale,
which is what lets `xarray.open_dataset(path, engine="h5netcdf")` label it.

An append is all or nothing. `time` grows last (readers trust it for the count), the solver
state of the new snapshot is written beside the previous one (group `restart.new`) and takes
its name only once `time` has grown, SIGINT and SIGTERM wait until the append is complete,
and an exception inside it (a KeyboardInterrupt raised off the main thread, a full disk) rolls
it back. A run killed outright (SIGKILL) may leave rows beyond `time` and the two restart
groups: `Run.restart` picks the group of the last snapshot, and `SnapshotWriter.reopen`
(resume) trims the rows and settles the groups before it appends.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import signal
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from gflow.version import __version__
from gflow.errors import InputError, reason

FORMAT = "gflow"
FORMAT_VERSION = 1
_SCALARS = ("risk", "energy", "mass")
#: the solver state behind the last snapshot, and the one of a snapshot being appended
RESTART, PENDING = "restart", "restart.new"
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
    #: solver-specific per-snapshot numbers, stored as extra datasets of shape (T,)
    extras: dict[str, float] = field(default_factory=dict)


class SnapshotWriter:
    """Create a run file and append snapshots to it."""

    def __init__(self, path: str | Path, *, case_text: str, solver: str, axes, coordinates,
                 n_particles: int | None = None, weights: np.ndarray | None = None,
                 extras: tuple[str, ...] = (), density_attrs: dict | None = None):
        self.path = Path(path)
        self.extras = tuple(extras)
        shape = tuple(len(c) for c in coordinates)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.path, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, gflow_version=__version__,
                           solver=solver, case=case_text, axes=list(axes))
            time = f.create_dataset("time", (0,), maxshape=(None,), dtype="f8", chunks=(256,))
            time.make_scale("time")
            for name in (*_SCALARS, *self.extras):
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
            if n_particles is not None:
                particle = f.create_dataset("particle", data=np.arange(n_particles, dtype="i8"))
                particle.make_scale("particle")
                component = f.create_dataset("component", data=np.arange(len(axes), dtype="i8"))
                component.make_scale("component")
                component.attrs["axes"] = list(axes)
                pos = f.create_dataset("positions", (0, n_particles, len(axes)),
                                       maxshape=(None, n_particles, len(axes)), dtype="f8",
                                       chunks=(1, n_particles, len(axes)))
                for i, s in enumerate((time, particle, component)):
                    pos.dims[i].attach_scale(s)
                w = f.create_dataset("weights", data=np.asarray(weights, dtype="f8"))
                w.dims[0].attach_scale(particle)

    @classmethod
    def reopen(cls, path: str | Path, extras: tuple[str, ...] = ()) -> SnapshotWriter:
        """Append to an existing run file (gflow run --resume)."""
        writer = cls.__new__(cls)
        writer.path, writer.extras = Path(path), tuple(extras)
        with _signals_deferred(), h5py.File(writer.path, "a") as f:
            _settle(f)       # what a run killed mid-append left: rows beyond `time`, two restart groups
        return writer

    def append(self, t: float, obs: Observation, restart: dict | None = None) -> None:
        """Add one snapshot, all or nothing; `restart` (a stepper's `restart_state`) replaces the
        last one's."""
        with _signals_deferred(), h5py.File(self.path, "a") as f:
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
            f.flush()

    def _write(self, f: h5py.File, n: int, obs: Observation, restart: dict | None) -> None:
        """Snapshot n in every time-indexed dataset but `time`, its solver state in `restart.new`."""
        values = {"risk": obs.risk, "energy": obs.energy, "mass": obs.mass,
                  **{k: obs.extras[k] for k in self.extras}}
        f["density"].resize(n + 1, axis=0)
        f["density"][n] = obs.density
        if obs.positions is not None:
            f["positions"].resize(n + 1, axis=0)
            f["positions"][n] = obs.positions
        if restart is not None:
            _write_restart(f, n, restart)
        for name, value in values.items():
            f[name].resize(n + 1, axis=0)
            f[name][n] = value


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


def _restart_index(group) -> int | None:
    """The snapshot a restart group belongs to, or None for an incomplete group."""
    try:
        return int(group.attrs["snapshot"])
    except READ_ERRORS:
        return None


def _settle(f: h5py.File) -> None:
    """Make the file what `time` says: trim the time-indexed datasets to its length, and keep as
    `restart` the restart group of the last snapshot (dropping a stale or incomplete other)."""
    n = f["time"].shape[0]
    for name, ds in f.items():
        if isinstance(ds, h5py.Dataset) and ds.maxshape and ds.maxshape[0] is None and ds.shape[0] > n:
            ds.resize(n, axis=0)
    if PENDING in f:
        if _restart_index(f[PENDING]) == n - 1:
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


# ----------------------------------------------------------------------------- reading
#
# The one reader of run files: every read goes through `open_run` and `Run`, so a truncated,
# corrupt or foreign file is one `InputError` (one line naming the file, exit 2) wherever it
# is first noticed, at open or at a later read.

#: what h5py and numpy raise on a damaged file (h5py reports some corruption as RuntimeError)
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)


@dataclass
class Snapshot:
    """One snapshot of a run: the density on the run's grid, and particles where it has them."""

    time: float
    density: np.ndarray
    positions: np.ndarray | None = None


@dataclass
class Run:
    """A snapshot file's metadata and small arrays; bulky ones are read on demand."""

    path: Path
    solver: str
    case_text: str
    axes: tuple[str, ...]
    coordinates: tuple[np.ndarray, ...]
    time: np.ndarray
    risk: np.ndarray
    energy: np.ndarray
    mass: np.ndarray
    attrs: dict = field(default_factory=dict)
    has_particles: bool = False
    weights: np.ndarray | None = None

    # --- snapshots

    def _read(self, name: str, index: int) -> np.ndarray:
        if not -len(self.time) <= index < len(self.time):
            raise InputError(f"{self.path}: no snapshot {index} (the run has {len(self.time)})")
        try:
            with h5py.File(self.path, "r") as f:
                return f[name][index % len(self.time)]
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: cannot read snapshot {index}: {reason(exc)}") from None

    def density(self, index: int) -> np.ndarray:
        """The stored density of snapshot `index`, unchecked (see `snapshot`)."""
        return self._read("density", index)

    def positions(self, index: int) -> np.ndarray | None:
        return self._read("positions", index) if self.has_particles else None

    def snapshot(self, index: int) -> Snapshot:
        """Snapshot `index`, its shape and values checked against the run's axes and weights."""
        density, positions = self.density(index), self.positions(index)
        shape = tuple(len(c) for c in self.coordinates)
        if density.shape != shape:
            raise InputError(f"{self.path}: density snapshot {index} has shape {density.shape}, "
                             f"the axes say {shape}")
        if not np.all(np.isfinite(density)) or (positions is not None and not np.all(np.isfinite(positions))):
            raise InputError(f"{self.path}: snapshot {index} has non-finite values (a corrupt file?)")
        if positions is not None and (positions.ndim != 2 or positions.shape[1] != len(shape)
                                      or self.weights is None or len(self.weights) != len(positions)):
            raise InputError(f"{self.path}: positions of snapshot {index} do not match the axes and weights")
        return Snapshot(float(self.time[index]), density, positions)

    def require_snapshots(self) -> Run:
        """This run, if it holds at least one snapshot (what postprocessing needs)."""
        if len(self.time) == 0:
            raise InputError(f"{self.path}: the run has no snapshots yet")
        return self

    # --- the rest of the file

    def restart(self) -> dict | None:
        """The solver state saved with the last snapshot, or None when the file has none; a
        damaged state (a group without its `snapshot` attribute) is an `InputError`."""
        try:
            with h5py.File(self.path, "r") as f:
                # `restart.new`: a run killed after `time` grew, before the group took its name
                groups = [f[name] for name in (RESTART, PENDING) if name in f]
                for group in groups:
                    if _restart_index(group) == len(self.time) - 1:
                        state = {k: v for k, v in group.attrs.items() if k != "snapshot"}
                        state.update({k: group[k][()] for k in group})
                        return state
                if groups and _restart_index(groups[0]) is None:
                    raise InputError(f"{self.path}: the saved solver state is damaged (group "
                                     f"{groups[0].name.lstrip('/')!r} has no 'snapshot' attribute)")
                return None
        except InputError:
            raise
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: cannot read the saved solver state: {reason(exc)}") from None

    def dataset(self, name: str) -> np.ndarray | None:
        """A whole dataset (an extra such as `negative_mass`), or None when the file has none."""
        try:
            with h5py.File(self.path, "r") as f:
                return f[name][()] if name in f else None
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: cannot read dataset {name!r}: {reason(exc)}") from None

    @property
    def cell_volume(self) -> float:
        return float(np.prod([c[1] - c[0] if len(c) > 1 else 1.0 for c in self.coordinates]))

    # --- the case that made it

    @functools.cached_property
    def case(self):
        """The stored case, parsed (`gflow.case.Case`); a bad one is an `InputError` naming this file."""
        from gflow.case import case_from_text

        return case_from_text(self.case_text, str(self.path))

    def matches(self, case, spec) -> str | None:
        """The first dotted key where the stored case differs from `case` run with `spec`, or None."""
        try:
            stored = tomllib.loads(self.case_text)
        except tomllib.TOMLDecodeError:
            return "case"          # not even TOML: the whole stored case differs
        return _first_difference(stored, tomllib.loads(case.text_for(spec)))

    def to_xarray(self):
        """The run as a labelled `xarray.Dataset` (lazy; needs xarray and h5netcdf)."""
        missing = [m for m in ("xarray", "h5netcdf") if importlib.util.find_spec(m) is None]
        if missing:
            raise InputError(f"{self.path}: reading a run as an xarray Dataset needs {' and '.join(missing)} "
                             f"(pip install {' '.join(missing)})")
        import xarray

        try:
            return xarray.open_dataset(self.path, engine="h5netcdf")
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: xarray cannot open it: {reason(exc)}") from None


def _first_difference(a, b, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".") or "case"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def open_run(path: str | Path, *, require_snapshots: bool = False) -> Run:
    """Open a snapshot file and check its metadata; anything that is not a readable gflow run is an
    `InputError`. With `require_snapshots` it must also hold at least one snapshot."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if _text(f.attrs.get("format", "")) != FORMAT:
                raise InputError(f"{path}: not a gflow snapshot file (no format = 'gflow' attribute)")
            names = f.attrs["axes"]
            if np.ndim(names) != 1 or len(names) == 0:
                raise InputError(f"{path}: the axes attribute is not a list of names")
            axes = tuple(_text(a) for a in names)
            coordinates = tuple(f[a][()] if a in f else None for a in axes)
            if any(c is None or np.ndim(c) != 1 or len(c) == 0 for c in coordinates):
                raise InputError(f"{path}: the axis coordinate datasets do not match the axes {list(axes)}")
            n = f["time"].shape[0]
            # a snapshot counts once `time` has it: a killed run may have grown the rest further
            small = {k: f[k][:n] for k in ("time", *_SCALARS)}
            if any(len(v) != n for v in small.values()):
                raise InputError(f"{path}: the time, risk, energy and mass datasets differ in length")
            has_particles = "positions" in f
            weights = f["weights"][()] if "weights" in f else None
            if has_particles and (weights is None or np.ndim(weights) != 1):
                raise InputError(f"{path}: a particle run without a 1D `weights` dataset")
            run = Run(path, _text(f.attrs["solver"]), _text(f.attrs["case"]), axes, coordinates,
                      small["time"], small["risk"], small["energy"], small["mass"],
                      {k: f.attrs[k] for k in f.attrs}, has_particles, weights)
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(f"{path}: unreadable or incomplete gflow file: {reason(exc)}") from None
    return run.require_snapshots() if require_snapshots else run
