"""The one reader of gflow run files (SPEC.md's snapshot layout).

Every read goes through `open_run` and `Run`, so a truncated, corrupt or foreign file is one
`InputError` (one line naming the file, exit 2) wherever it is first noticed, at open or at a
later read. Files are opened through `gflow.h5io.reading`, which is safe beside a live writer.
"""
from __future__ import annotations

import functools
import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gflow.errors import InputError, reason
from gflow.h5io import reading

FORMAT = "gflow"
FORMAT_VERSION = 1
SCALARS = ("risk", "energy", "mass")
#: the solver state behind the last snapshot, and the one of a snapshot being appended
RESTART, PENDING = "restart", "restart.new"
#: what h5py and numpy raise on a damaged file (h5py reports some corruption as RuntimeError)
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)


def restart_index(group) -> int | None:
    """The snapshot a restart group belongs to, or None for an incomplete group."""
    try:
        return int(group.attrs["snapshot"])
    except READ_ERRORS:
        return None


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
            with reading(self.path) as f:
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
            with reading(self.path) as f:
                # `restart.new`: a run killed after `time` grew, before the group took its name
                groups = [f[name] for name in (RESTART, PENDING) if name in f]
                for group in groups:
                    if restart_index(group) == len(self.time) - 1:
                        state = {k: v for k, v in group.attrs.items() if k != "snapshot"}
                        state.update({k: group[k][()] for k in group})
                        return state
                if groups and restart_index(groups[0]) is None:
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
            with reading(self.path) as f:
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
        with reading(path) as f:
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
            small = {k: f[k][:n] for k in ("time", *SCALARS)}
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
