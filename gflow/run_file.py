"""The one reader of gflow run files (SPEC.md's snapshot layout).

Every read goes through `open_run` and `Run`, so a truncated, corrupt, foreign or hostile file
is one `InputError` (one line naming the file, exit 2) wherever it is first noticed, at open or
at a later read. Files are opened through `gflow.h5io.reading`, which is safe beside a live writer.

A run file is untrusted input. Before anything is read, its declared shape, dtype, size and
chunking are checked against the bounds below (h5py's `shape`, `dtype` and `chunks` are
metadata; reading allocates), so a small file declaring 2e9 snapshots is refused in one line
instead of allocating them. The bounds are those of a case file (`gflow.case.MAX_CELLS`,
`MAX_SNAPSHOTS`, the particle solver's `particles` maximum): nothing gflow writes exceeds
them. Soft and external links, virtual datasets and datasets with external storage are
refused, never followed (they read other files); text from the file that a terminal would
see goes through `printable`.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from gflow.errors import InputError, reason
from gflow.grids import LAYER
from gflow.h5io import reading
from gflow.solver_options import SOLVER_OPTIONS

FORMAT = "gflow"
FORMAT_VERSION = 1
SCALARS = ("risk", "energy", "mass")
#: wall-clock seconds from the run's start to each snapshot (T,), summed over resumed runs
WALL_TIME = "wall_time"
#: the particles' weights at each snapshot (T, m), in runs whose weights change (birth-death's
#: "weights" scheme, Fisher-Rao masses); `weights` (m,) then holds the initial ones, summing to 1
SNAPSHOT_WEIGHTS = "snapshot_weights"
#: the solver state behind the last snapshot, and the one of a snapshot being appended
RESTART, PENDING = "restart", "restart.new"
#: what h5py and numpy raise on a damaged file (h5py reports some corruption as RuntimeError)
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)

# ----------------------------------------------------------------------------- bounds
#: cells and snapshots of a run: a case file's `gflow.case.MAX_CELLS` and `MAX_SNAPSHOTS`, stated
#: again because solvers import this module and must not load the case parser
#: (tests/test_hostile_run_files.py holds them equal)
MAX_CELLS = 2**27
MAX_SNAPSHOTS = 100_000
#: particles (and blobs) of a run: the particle solver's `particles` maximum (10**8)
MAX_PARTICLES = SOLVER_OPTIONS["particle"]["particles"].maximum
#: axes of a run (a two-layer model has input_dim + 2 <= 66; a potential's axes are few)
MAX_AXES = 128
#: characters of an axis, solver or other short name
MAX_NAME = 64
#: bytes of the stored case text (a case file is a few kB)
MAX_CASE_BYTES = 1 << 20
#: tables and lists inside each other in the stored case (a case file nests three deep)
MAX_CASE_DEPTH = 32
#: root attributes, and bytes of any one of them but `case`
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_BYTES = 1 << 16
#: values of one snapshot row that a read allocates: a density (<= MAX_CELLS) or positions (m * D)
MAX_ROW_VALUES = 1 << 28
#: a chunk holds at most one declared row or this many values, whichever is more: a larger
#: chunk, compressed, would make a small read decompress gigabytes
CHUNK_FLOOR = 1 << 16
#: entries (attributes and datasets) of a saved solver state
MAX_RESTART_ENTRIES = 64


def printable(text, limit: int = 200) -> str:
    """`text` safe to print on a terminal: control and format characters (ANSI escapes, carriage
    returns, bidirectional overrides) written as escapes, at most `limit` characters."""
    text = str(text)
    out = "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch
                  for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


def restart_index(group) -> int | None:
    """The snapshot a restart group belongs to, or None for an incomplete group."""
    try:
        found = group.attrs.get_id("snapshot")      # its metadata, before reading it
        if found.shape not in ((), (1,)) or found.dtype.kind not in "iuf":
            return None
        return int(group.attrs["snapshot"])
    except READ_ERRORS:
        return None


# ----------------------------------------------------------------------------- checked access

def _member(group, name: str, path, what: str):
    """`group[name]` where it is a plain (hard) link, None where there is none; a soft or
    external link is refused without being followed."""
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise InputError(f"{path}: {what} is an external link to another file, which gflow does not follow")
    if isinstance(link, h5py.SoftLink):
        raise InputError(f"{path}: {what} is a soft link, which gflow does not follow")
    if not isinstance(link, h5py.HardLink):
        raise InputError(f"{path}: {what} is a link of an unknown kind")
    return group[name]


def _numeric(dtype: np.dtype, complex_ok: bool = False) -> bool:
    """Plain integers or floats, and complex numbers where `complex_ok` (a spectral solver's saved
    coefficients); not strings, compounds, variable-length or array types."""
    kinds = "fiuc" if complex_ok else "fiu"
    return dtype.kind in kinds and dtype.subdtype is None and h5py.check_vlen_dtype(dtype) is None \
        and dtype.itemsize <= 32


def _array(group, name: str, path, *, ndim: int | None, limit: int, row: int | None = None,
           label: str | None = None, required: bool = True, complex_ok: bool = False) -> h5py.Dataset | None:
    """The dataset `name`, checked from its metadata alone: a hard link to a dataset stored in
    this file, of numbers, `ndim` dimensions (any: None), at most `limit` values, and chunks of at
    most max(CHUNK_FLOOR, `row`) values (`row`: the values one read takes; default its size)."""
    what = label or f"dataset {name!r}"
    ds = _member(group, name, path, what)
    if ds is None:
        if required:
            raise InputError(f"{path}: {what} is missing")
        return None
    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"{path}: {what} is not a dataset")
    if ds.is_virtual:
        raise InputError(f"{path}: {what} is a virtual dataset (it reads other files), which gflow does not read")
    if ds.id.get_create_plist().get_external_count():
        raise InputError(f"{path}: {what} keeps its values in external files, which gflow does not read")
    if not _numeric(ds.dtype, complex_ok):
        raise InputError(f"{path}: {what} has dtype {printable(ds.dtype)}, not numbers")
    shape = ds.shape
    if shape is None or (ndim is not None and len(shape) != ndim):
        raise InputError(f"{path}: {what} has shape {shape}, expected {ndim} dimension(s)")
    size = math.prod(shape)
    if size > limit:
        raise InputError(f"{path}: {what} declares shape {shape} ({size} values), more than the {limit} "
                         "a gflow run holds")
    chunk = math.prod(ds.chunks) if ds.chunks else 0
    if chunk > max(CHUNK_FLOOR, size if row is None else row):
        raise InputError(f"{path}: {what} has chunks of {ds.chunks}, larger than what one read needs")
    return ds


def _attribute(attrs, name: str, path, what: str, max_bytes: int = MAX_ATTRIBUTE_BYTES):
    """Attribute `name`, its type and size checked from its metadata before it is read: numbers,
    booleans or text (a scalar or an array), at most `max_bytes` bytes (text: characters)."""
    found = attrs.get_id(name)
    shape, dtype = found.shape, found.dtype
    if shape is None:
        raise InputError(f"{path}: {what} has no value")
    string = h5py.check_string_dtype(dtype)
    if string is None and not (_numeric(dtype) or dtype.kind == "b"):
        raise InputError(f"{path}: {what} has type {printable(dtype)}, not numbers or text")
    if math.prod(shape) * dtype.itemsize > max_bytes:
        raise InputError(f"{path}: {what} declares {math.prod(shape)} values, more than the {max_bytes} bytes allowed")
    value = attrs[name]
    if string is not None:
        texts = np.ravel(np.asarray(value, dtype=object))
        if sum(len(t) for t in texts) > max_bytes:
            raise InputError(f"{path}: {what} holds more than {max_bytes} characters")
    return value


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _is_text(value) -> bool:
    return isinstance(value, (str, bytes, np.str_, np.bytes_))


def _depth(node) -> int:
    """How many tables and lists sit inside each other in a parsed TOML document."""
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    return 1 + max((_depth(c) for c in children), default=0) if isinstance(node, (dict, list)) else 0


def _case_document(text: str, path) -> dict | None:
    """The stored case as a TOML document, None when it is not TOML; a case nested deeper than
    MAX_CASE_DEPTH (which would exhaust the parser's stack) is refused."""
    try:
        document = tomllib.loads(text)
    except RecursionError:
        raise InputError(f"{path}: the stored case is nested too deeply") from None
    except tomllib.TOMLDecodeError:
        return None
    if _depth(document) > MAX_CASE_DEPTH:
        raise InputError(f"{path}: the stored case nests tables or lists more than {MAX_CASE_DEPTH} deep")
    return document


def _names(value, path) -> tuple[str, ...]:
    """The `axes` attribute: 1 to MAX_AXES distinct identifiers of at most MAX_NAME characters."""
    if np.ndim(value) != 1 or not 1 <= len(value) <= MAX_AXES or not all(_is_text(a) for a in value):
        raise InputError(f"{path}: the axes attribute is not a list of 1 to {MAX_AXES} names")
    axes = tuple(_text(a) for a in value)
    bad = next((a for a in axes if not (a.isidentifier() and len(a) <= MAX_NAME)), None)
    if bad is not None:
        raise InputError(f"{path}: axis name {printable(repr(bad), MAX_NAME + 10)} is not a short identifier")
    if len(set(axes)) != len(axes):
        raise InputError(f"{path}: the axes attribute repeats a name")
    return axes


def _coordinates(f, axes, path) -> tuple[np.ndarray, ...]:
    """Each axis's cell centres: finite, strictly increasing, with finite faces, and at most
    MAX_CELLS cells in all."""
    found = [_array(f, a, path, ndim=1, limit=MAX_CELLS, label=f"the coordinate dataset of axis {a!r}",
                    required=False) for a in axes]
    if any(ds is None or ds.shape[0] == 0 for ds in found):
        raise InputError(f"{path}: the axis coordinate datasets do not match the axes {list(axes)}")
    cells = math.prod(ds.shape[0] for ds in found)
    if cells > MAX_CELLS:
        raise InputError(f"{path}: the axes make a grid of {cells} cells, more than the {MAX_CELLS} a case may have")
    coordinates = []
    for a, ds in zip(axes, found):
        c = np.asarray(ds[()], dtype=float)
        with np.errstate(over="ignore", invalid="ignore"):
            h = (c[-1] - c[0]) / (len(c) - 1) if len(c) > 1 else 0.0
            ends = (c[0] - h, c[-1] + h)
        if not (np.all(np.isfinite(c)) and np.all(np.diff(c) > 0) and np.all(np.isfinite(ends))):
            raise InputError(f"{path}: the coordinates of axis {a!r} are not finite and increasing")
        coordinates.append(c)
    return tuple(coordinates)


def _single_cells(document: dict | None, coordinates, path) -> None:
    """An axis of one cell takes its faces from the stored case's `grid.bounds` (its centre does
    not give its width; `gflow.postprocess.runs.faces`): where that entry reads as numbers it
    must be a finite pair low < high."""
    for axis, c in enumerate(coordinates):
        if len(c) != 1:
            continue
        try:
            pair = np.array(document["grid"]["bounds"][axis], dtype=float)
        except (KeyError, TypeError, IndexError, ValueError):
            continue        # no usable bounds: the reader takes a unit cell around the centre
        if pair.shape != (2,) or not np.all(np.isfinite(pair)) or not pair[0] < pair[1] \
                or not np.isfinite(pair[1] - pair[0]):
            raise InputError(f"{path}: the stored case's grid.bounds[{axis}] is not a finite [low, high] pair")


def _root_attributes(f, path) -> dict:
    """Every root attribute, each checked before it is read (`case` up to MAX_CASE_BYTES)."""
    names = list(f.attrs)
    if len(names) > MAX_ATTRIBUTES:
        raise InputError(f"{path}: {len(names)} root attributes, more than the {MAX_ATTRIBUTES} a gflow run has")
    return {k: _attribute(f.attrs, k, path, f"root attribute {printable(repr(k), MAX_NAME)}",
                          MAX_CASE_BYTES if k == "case" else MAX_ATTRIBUTE_BYTES) for k in names}


def _short_text(attrs, key: str, path) -> str:
    value = attrs.get(key)
    if not _is_text(value) or not 0 < len(_text(value)) <= MAX_NAME:
        raise InputError(f"{path}: root attribute {key!r} is not a name of 1 to {MAX_NAME} characters")
    return _text(value)


@dataclass
class Snapshot:
    """One snapshot of a run: the density on the run's grid, and particles where it has them.

    `weights`: the particles' weights at this snapshot, the row of `snapshot_weights` in a run
    whose weights change (birth-death, Fisher-Rao), else the run's fixed `weights`; what every
    reader pairs with `positions` (None without particles)."""

    time: float
    density: np.ndarray
    positions: np.ndarray | None = None
    weights: np.ndarray | None = None


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
    #: the stored case as a TOML document (nesting bounded), None when it is not TOML
    document: dict | None = None
    #: L for a layered run (resnet): the file's `layer` scale is read as a first, frozen axis
    #: `layer` (density (L, n_1..n_D)), its positions (L, M, D) as (L M, 1 + D) behind their
    #: depth and its weights (M,) as the joint (L M,) / L: the view solvers have
    layers: int | None = None
    #: whether the weights change from snapshot to snapshot (dataset `snapshot_weights`, (T, m)):
    #: `weights` are then the initial ones (normalised), `weights_at(i)` those of snapshot i
    varying_weights: bool = False

    # --- snapshots

    def _row_shape(self, name: str) -> tuple[int, ...]:
        if name == "density":
            return tuple(len(c) for c in self.coordinates)
        m = 0 if self.weights is None else len(self.weights)
        if name == SNAPSHOT_WEIGHTS:
            return (m,)
        if self.layers:
            return (self.layers, m // self.layers, len(self.axes) - 1)
        return (m, len(self.axes))

    def _read(self, name: str, index: int) -> np.ndarray:
        if not -len(self.time) <= index < len(self.time):
            raise InputError(f"{self.path}: no snapshot {index} (the run has {len(self.time)})")
        row = self._row_shape(name)
        try:
            with reading(self.path) as f:
                # shape and chunks from the metadata first: only a row of the declared size is read
                ds = _array(f, name, self.path, ndim=1 + len(row), limit=(MAX_SNAPSHOTS + 1) * math.prod(row),
                            row=math.prod(row))
                if ds.shape[0] < len(self.time):
                    raise InputError(f"{self.path}: dataset {name!r} holds {ds.shape[0]} snapshots, "
                                     f"'time' {len(self.time)}")
                if ds.shape[1:] != row:
                    what, expected = {"density": ("density snapshot", "the axes say"),
                                      SNAPSHOT_WEIGHTS: ("weights of snapshot", "the weights say")}.get(
                        name, ("positions of snapshot", "the axes and weights say"))
                    raise InputError(f"{self.path}: {what} {index} has shape {ds.shape[1:]}, {expected} {row}")
                row_index = index % len(self.time)
                if ds.chunks and ds.id.get_chunk_info_by_coord((row_index, *[0] * len(row))).byte_offset is None:
                    # declared but never written: a hostile file's 1e5 empty rows would each read as fill
                    raise InputError(f"{self.path}: snapshot {index} of dataset {name!r} was never written")
                return ds[row_index]
        except InputError:
            raise
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: cannot read snapshot {index}: {reason(exc)}") from None

    def density(self, index: int) -> np.ndarray:
        """The stored density of snapshot `index`, unchecked (see `snapshot`)."""
        return self._read("density", index)

    def positions(self, index: int) -> np.ndarray | None:
        if not self.has_particles:
            return None
        row = self._read("positions", index)
        if self.layers:
            # (L, M, D) -> (L M, 1 + D), each particle behind its layer's depth
            L, M, D = row.shape
            row = np.column_stack([np.repeat(self.coordinates[0], M), row.reshape(L * M, D)])
        return row

    def weights_at(self, index: int) -> np.ndarray | None:
        """The particles' weights at snapshot `index`: its row of `snapshot_weights` (checked
        finite and non-negative) in a run whose weights change, else the fixed `weights`."""
        if not self.varying_weights:
            return self.weights
        row = self._read(SNAPSHOT_WEIGHTS, index)
        if not (np.all(np.isfinite(row)) and np.all(row >= 0)):
            raise InputError(f"{self.path}: dataset {SNAPSHOT_WEIGHTS!r}: snapshot {index} has negative or "
                             "non-finite weights (a corrupt file?)")
        return row

    def snapshot(self, index: int) -> Snapshot:
        """Snapshot `index`, its shape and values checked against the run's axes and weights."""
        density, positions = self.density(index), self.positions(index)
        if not np.all(np.isfinite(density)) or (positions is not None and not np.all(np.isfinite(positions))):
            raise InputError(f"{self.path}: snapshot {index} has non-finite values (a corrupt file?)")
        weights = self.weights_at(index) if positions is not None else None
        return Snapshot(float(self.time[index]), density, positions, weights)

    def require_snapshots(self) -> Run:
        """This run, if it holds at least one snapshot (what postprocessing needs)."""
        if len(self.time) == 0:
            raise InputError(f"{self.path}: the run has no snapshots yet")
        return self

    # --- the rest of the file

    def restart(self) -> dict | None:
        """The solver state saved with the last snapshot, or None when the file has none; a
        damaged state (a group without its `snapshot` attribute, entries of absurd size or
        type) is an `InputError`."""
        try:
            with reading(self.path) as f:
                # `restart.new`: a run killed after `time` grew, before the group took its name
                groups = [g for g in (_member(f, name, self.path, f"group {name!r}") for name in (RESTART, PENDING))
                          if g is not None]
                for group in groups:
                    if not isinstance(group, h5py.Group):
                        raise InputError(f"{self.path}: {group.name.lstrip('/')!r} is not a group")
                for group in groups:
                    if restart_index(group) == len(self.time) - 1:
                        return self._state(group)
                if groups and restart_index(groups[0]) is None:
                    raise InputError(f"{self.path}: the saved solver state is damaged (group "
                                     f"{groups[0].name.lstrip('/')!r} has no 'snapshot' attribute)")
                return None
        except InputError:
            raise
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: cannot read the saved solver state: {reason(exc)}") from None

    def _state(self, group) -> dict:
        where = group.name.lstrip("/")
        keys, members = [k for k in group.attrs if k != "snapshot"], list(group)
        if len(keys) + len(members) > MAX_RESTART_ENTRIES:
            raise InputError(f"{self.path}: the saved solver state has more than {MAX_RESTART_ENTRIES} entries")
        state = {k: _attribute(group.attrs, k, self.path, f"attribute {printable(repr(k), MAX_NAME)} of {where!r}")
                 for k in keys}
        for k in members:
            ds = _array(group, k, self.path, ndim=None, limit=MAX_ROW_VALUES, complex_ok=True,
                        label=f"dataset {printable(repr(k), MAX_NAME)} of {where!r}")
            state[k] = ds[()]
        return state

    def dataset(self, name: str) -> np.ndarray | None:
        """A whole dataset (an extra such as `negative_mass`), or None when the file has none;
        one of numbers, of at most MAX_ROW_VALUES values."""
        if "/" in name:
            raise InputError(f"{self.path}: {name!r} is not a dataset name of the run's root")
        try:
            with reading(self.path) as f:
                ds = _array(f, name, self.path, ndim=None, limit=MAX_ROW_VALUES, required=False)
                return None if ds is None else ds[()]
        except InputError:
            raise
        except READ_ERRORS as exc:
            raise InputError(f"{self.path}: cannot read dataset {name!r}: {reason(exc)}") from None

    def faces(self) -> tuple[np.ndarray, ...]:
        """Cell faces per axis, from the stored (uniform) centres; an axis of one cell takes its
        faces from the stored case's grid.bounds (its centre does not give its width;
        `_single_cells` checked them at open), or a unit cell about the centre without them."""
        out = []
        for i, c in enumerate(self.coordinates):
            if len(c) > 1:
                h = (c[-1] - c[0]) / (len(c) - 1)
                out.append(c[0] - 0.5 * h + h * np.arange(len(c) + 1))
            else:
                out.append(self._single_cell(i, c[0]))
        return tuple(out)

    def _single_cell(self, axis: int, centre: float) -> np.ndarray:
        if self.layers:
            if axis == 0:        # the layer axis of one layer: depth 0, width 1
                return np.array([centre - 0.5, centre + 0.5])
            axis -= 1            # the case's bounds name the parameter axes only
        try:
            return np.array(tomllib.loads(self.case_text)["grid"]["bounds"][axis], dtype=float)
        except (tomllib.TOMLDecodeError, KeyError, TypeError, IndexError, ValueError):
            return np.array([centre - 0.5, centre + 0.5])

    @property
    def cell_volume(self) -> float:
        return float(np.prod([c[1] - c[0] if len(c) > 1 else 1.0 for c in self.coordinates]))

    @functools.cached_property
    def solver_options(self) -> dict | None:
        """The solver's options as the run resolved them (root attribute `solver_options`, JSON
        text), None for a file written before gflow stored them; anything but a JSON table of
        names to numbers, booleans or text is an `InputError`."""
        if "solver_options" not in self.attrs:
            return None
        value = self.attrs["solver_options"]
        try:
            options = json.loads(_text(value)) if _is_text(value) else None
        except (ValueError, RecursionError):
            options = None
        scalar = (bool, int, float, str, type(None))
        if not isinstance(options, dict) or not all(isinstance(v, scalar) for v in options.values()):
            raise InputError(f"{self.path}: root attribute 'solver_options' is not a JSON table of options")
        return options

    @functools.cached_property
    def wall_time(self) -> np.ndarray | None:
        """Wall-clock seconds from the run's start to each snapshot (summed over resumed runs),
        None for a file without them."""
        values = self.dataset(WALL_TIME)
        if values is None:
            return None
        if values.ndim != 1 or len(values) < len(self.time) or not np.issubdtype(values.dtype, np.number):
            raise InputError(f"{self.path}: dataset {WALL_TIME!r} is not one number per snapshot")
        return np.asarray(values[:len(self.time)], dtype=float)

    # --- the case that made it

    @functools.cached_property
    def case(self):
        """The stored case, parsed (`gflow.case.Case`) with a case file's limits; a bad one is an
        `InputError` naming this file. Like a case file, it checks the data files it names
        (`named_files`): code that must not read what a run file names asks that first."""
        from gflow.case import case_from_text

        try:
            # memory=False: made here or on a bigger machine, it is read, not run
            return case_from_text(self.case_text, str(self.path), memory=False)
        except InputError as exc:
            raise InputError(printable(" ".join(str(exc).split()), 2000)) from None

    def named_files(self) -> list[str]:
        """The dotted keys of the stored case that name a file (`data.file`, `initial.snapshot`): a
        key `file`, `path` or `snapshot`, or one ending in `_file` or `_path`, holding text."""
        found = []

        def walk(node, prefix):
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(value, f"{prefix}{key}.")
                elif isinstance(value, str) and (key in ("file", "path", "snapshot") or key.endswith(("_file", "_path"))):
                    found.append(f"{prefix}{key}")

        walk(self.document or {}, "")
        return found

    def matches(self, case, spec) -> str | None:
        """The first dotted key where the stored case differs from `case` run with `spec`, or None."""
        if self.document is None:
            return "case"          # not even TOML: the whole stored case differs
        return _first_difference(self.document, tomllib.loads(case.text_for(spec)))

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
    return None if a == b else printable(prefix.rstrip("."), 200) or "case"


def _varying_weights(f, path, n: int, has_particles: bool, layered: bool, weights) -> bool:
    """Whether the file holds per-snapshot weights, their shape (T, m) checked from the metadata
    (its rows are read, and their values checked, one snapshot at a time: `Run.weights_at`)."""
    if _member(f, SNAPSHOT_WEIGHTS, path, f"dataset {SNAPSHOT_WEIGHTS!r}") is None:
        return False
    if not has_particles or layered:
        raise InputError(f"{path}: dataset {SNAPSHOT_WEIGHTS!r} in a run "
                         f"{'of layers' if layered else 'without particle positions'}, which never has it")
    m = len(weights)
    ds = _array(f, SNAPSHOT_WEIGHTS, path, ndim=2, limit=(MAX_SNAPSHOTS + 1) * m, row=m)
    if ds.shape[1] != m or ds.shape[0] < n:
        raise InputError(f"{path}: dataset {SNAPSHOT_WEIGHTS!r} has shape {ds.shape}, expected (T, m) = ({n}, {m})")
    return True


def open_run(path: str | Path, *, require_snapshots: bool = False) -> Run:
    """Open a snapshot file and check its metadata; anything that is not a readable gflow run is an
    `InputError`. With `require_snapshots` it must also hold at least one snapshot."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with reading(path) as f:
            fmt = _attribute(f.attrs, "format", path, "root attribute 'format'") if "format" in f.attrs else None
            if not _is_text(fmt) or _text(fmt) != FORMAT:
                raise InputError(f"{path}: not a gflow snapshot file (no format = 'gflow' attribute)")
            attrs = _root_attributes(f, path)
            if "axes" not in attrs:
                raise InputError(f"{path}: the axes attribute is missing")
            axes = _names(attrs["axes"], path)
            solver = _short_text(attrs, "solver", path)
            if not _is_text(attrs.get("case")):
                raise InputError(f"{path}: root attribute 'case' is not text (a TOML case)")
            case_text = _text(attrs["case"])
            layered = _member(f, LAYER, path, f"dataset {LAYER!r}") is not None
            if layered:
                if LAYER in axes:
                    raise InputError(f"{path}: {LAYER!r} is both an axis and the layer scale")
                axes = (LAYER, *axes)
            coordinates = _coordinates(f, axes, path)
            layers = len(coordinates[0]) if layered else None
            n = _array(f, "time", path, ndim=1, limit=MAX_SNAPSHOTS).shape[0]
            small = {"time": f["time"][()]}
            for k in SCALARS:
                ds = _array(f, k, path, ndim=1, limit=MAX_SNAPSHOTS + 1)
                if ds.shape[0] < n:
                    raise InputError(f"{path}: the time, risk, energy and mass datasets differ in length")
                # a snapshot counts once `time` has it: a killed run may have grown the rest further
                small[k] = ds[:n]
            if not np.all(np.isfinite(small["time"])):
                raise InputError(f"{path}: dataset 'time' has non-finite values")
            has_particles = _member(f, "positions", path, "dataset 'positions'") is not None
            ds = _array(f, "weights", path, ndim=1, limit=MAX_PARTICLES, required=False)
            if ds is not None and ds.shape[0] * len(axes) > MAX_ROW_VALUES:
                raise InputError(f"{path}: {ds.shape[0]} particles on {len(axes)} axes are more than the "
                                 f"{MAX_ROW_VALUES} values a snapshot may hold")
            weights = None if ds is None else ds[()]
            if has_particles and (weights is None or len(weights) == 0):
                raise InputError(f"{path}: a particle run without a 1D `weights` dataset")
            if weights is not None and not (np.all(np.isfinite(weights)) and np.all(weights >= 0)
                                            and np.sum(weights) > 0):
                raise InputError(f"{path}: dataset 'weights' is not finite, non-negative weights of positive sum")
            if weights is not None and layered:
                if len(weights) * layers * len(axes) > MAX_ROW_VALUES:
                    raise InputError(f"{path}: {len(weights)} particles in each of {layers} layers are more "
                                     f"than the {MAX_ROW_VALUES} values a snapshot may hold")
                weights = np.tile(weights, layers) / layers      # the joint weights of every layer's particles
            varying = _varying_weights(f, path, n, has_particles, layered, weights)
            document = _case_document(case_text, path)
            _single_cells(document, coordinates[1:] if layered else coordinates, path)
            run = Run(path, solver, case_text, axes, coordinates, small["time"], small["risk"], small["energy"],
                      small["mass"], attrs, has_particles, weights, document, layers, varying)
    except InputError:
        raise
    except (*READ_ERRORS, MemoryError) as exc:
        raise InputError(f"{path}: unreadable or incomplete gflow file: {reason(exc)}") from None
    return run.require_snapshots() if require_snapshots else run
