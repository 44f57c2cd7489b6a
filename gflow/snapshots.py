"""HDF5 snapshot files, one per run, in the layout ../shared/SPEC.md fixes.

The file and all its metadata are written when the run starts; each snapshot is then
appended by opening, growing every time-indexed dataset by one, writing, and closing
(Dedalus' habit), so a run killed at any moment leaves a readable file with every
snapshot written before. Every dimension of every dataset has an HDF5 dimension scale,
which is what lets `xarray.open_dataset(path, engine="h5netcdf")` label it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from gflow.version import __version__
from gflow.errors import InputError

FORMAT = "gflow"
FORMAT_VERSION = 1
_SCALARS = ("risk", "energy", "mass")


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
                 extras: tuple[str, ...] = ()):
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
        return writer

    def append(self, t: float, obs: Observation, restart: dict | None = None) -> None:
        """Add one snapshot; `restart` (a stepper's `restart_state`) replaces the last one's."""
        with h5py.File(self.path, "a") as f:
            n = f["time"].shape[0]
            values = {"time": t, "risk": obs.risk, "energy": obs.energy, "mass": obs.mass,
                      **{k: obs.extras[k] for k in self.extras}}
            # the bulky arrays first, time last: a reader trusts `time` for the count
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
            f.flush()


def _write_restart(f: h5py.File, index: int, state: dict) -> None:
    """The solver state behind snapshot `index`, in group `restart` (not part of SPEC.md's layout)."""
    if "restart" in f:
        del f["restart"]
    group = f.create_group("restart")
    group.attrs["snapshot"] = index
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = value


# ----------------------------------------------------------------------------- reading

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

    def density(self, index: int) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return f["density"][index]

    def positions(self, index: int) -> np.ndarray | None:
        if not self.has_particles:
            return None
        with h5py.File(self.path, "r") as f:
            return f["positions"][index]

    def restart(self) -> dict | None:
        """The solver state saved with the last snapshot, or None."""
        with h5py.File(self.path, "r") as f:
            if "restart" not in f or int(f["restart"].attrs["snapshot"]) != len(self.time) - 1:
                return None
            group = f["restart"]
            state = {k: v for k, v in group.attrs.items() if k != "snapshot"}
            state.update({k: group[k][()] for k in group})
            return state

    def dataset(self, name: str) -> np.ndarray | None:
        with h5py.File(self.path, "r") as f:
            return f[name][()] if name in f else None

    @property
    def cell_volume(self) -> float:
        return float(np.prod([c[1] - c[0] if len(c) > 1 else 1.0 for c in self.coordinates]))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_run(path: str | Path) -> Run:
    """Open a snapshot file; anything that is not a readable gflow run is an `InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if _text(f.attrs.get("format", "")) != FORMAT:
                raise InputError(f"{path}: not a gflow snapshot file (no format = 'gflow' attribute)")
            axes = tuple(_text(a) for a in f.attrs["axes"])
            n = f["time"].shape[0]
            # a snapshot counts once `time` has it: a killed run may have grown the rest further
            small = {k: f[k][:n] for k in ("time", *_SCALARS)}
            return Run(path, _text(f.attrs["solver"]), _text(f.attrs["case"]), axes,
                       tuple(f[a][()] for a in axes), small["time"], small["risk"], small["energy"],
                       small["mass"], {k: f.attrs[k] for k in f.attrs}, "positions" in f,
                       f["weights"][()] if "weights" in f else None)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable or incomplete gflow file: {exc}") from None
