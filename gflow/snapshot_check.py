"""`gflow check RUN.h5`: does a file follow the snapshot layout of SPEC.md ("Snapshot files")?

`problems(path)` lists what is wrong, most basic first (an empty list: the file is a valid
run). It reads the file with h5py only, never through `gflow.snapshots.open_run`, so that
a reader's leniency cannot hide a writer's mistake. What it checks:

- root attributes: `format` = "gflow", `format_version` (an integer >= 1), `gflow_version`
  and `solver` (text), `case` (text that parses as TOML), `axes` (a list of distinct names);
- `time`, `risk`, `energy`, `mass`: shape (T,); `time` finite and strictly increasing;
- one 1-D coordinate dataset per axis, finite and strictly increasing;
- `density`: (T, n_1, ..., n_D) (with a `layer` scale: (T, L, n_1, ..., n_D)), finite, and
  where every axis has uniform cells, sum * cell volume = mass;
- particle runs (a `positions` or `weights` dataset, or solver particle/blob): `positions`
  (T, m, D) (with layers (T, L, m, D)), finite, and `weights` (m,), non-negative, summing to 1;
- where the weights change (birth-death, Fisher-Rao: the optional `snapshot_weights`, never in a
  layered run): (T, m), finite and non-negative in every snapshot, each row summing to 1 where its
  attribute `sums_to_one` is 1 (birth-death; Fisher-Rao's masses do not);
- every dimension of every root dataset is an HDF5 dimension scale of its length (the fixed
  datasets: the scale SPEC.md names, `time`, the axes, `particle`, `component`).

The file is untrusted: every dataset's dtype, size and chunks are checked from its metadata
before it is read, against the reader's bounds (`gflow.run_file`: MAX_SNAPSHOTS snapshots,
MAX_CELLS cells, MAX_PARTICLES particles, MAX_CASE_BYTES of case text); soft and external
links, virtual datasets and external storage are problems, never followed; and each problem
goes through `gflow.run_file.printable` (no terminal control characters, bounded length).

A run killed while appending a snapshot may hold one more row than `time` in the other
time-indexed datasets (`time` is written last, and readers trust it for the count): that
unfinished row is allowed, and not checked.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import h5py
import numpy as np

from gflow.errors import InputError, reason
from gflow.h5io import reading
from gflow.run_file import (MAX_ATTRIBUTE_BYTES, MAX_AXES, MAX_CASE_BYTES, MAX_CASE_DEPTH, MAX_CELLS, MAX_NAME,
                            MAX_PARTICLES, MAX_ROW_VALUES, MAX_SNAPSHOTS, READ_ERRORS, SNAPSHOT_WEIGHTS, _array,
                            _attribute, _depth, _is_text, _text, printable)
from gflow.solver_options import PARTICLE_KINDS

WEIGHT_TOLERANCE = 1e-9
MASS_TOLERANCE = 1e-6
#: the file as the reader's checks name it, stripped from their messages
_FILE = "<file>"
#: the longest problem line
MAX_PROBLEM = 500


class _Stop(Exception):
    """A problem after which the later checks would only repeat it."""


def problems(path) -> list[str]:
    """What is wrong with the snapshot file at `path` (empty: nothing)."""
    path = Path(path)
    if not path.is_file():
        return ["no such file"]
    try:
        if not h5py.is_hdf5(path):
            return ["not an HDF5 file"]
        with reading(path) as f:
            found: list[str] = []
            try:
                _check(f, found)
            except _Stop:
                pass
            return [printable(p, MAX_PROBLEM) for p in found]
    except READ_ERRORS as exc:
        return [printable(f"unreadable HDF5 content: {reason(exc)}", MAX_PROBLEM)]


def first_problem(path) -> str | None:
    found = problems(path)
    return found[0] if found else None


# ----------------------------------------------------------------------------- the checks

def _refused(exc: InputError) -> str:
    return str(exc).removeprefix(f"{_FILE}: ")


def _root(f: h5py.File, found: list[str]) -> tuple[tuple[str, ...], str]:
    attrs = {}
    for key in ("format", "format_version", "gflow_version", "solver", "case", "axes"):
        if key not in f.attrs:
            found.append(f"root attribute {key!r} is missing")
            continue
        try:   # type and size from the metadata before the value is read
            attrs[key] = _attribute(f.attrs, key, _FILE, f"root attribute {key!r}",
                                    MAX_CASE_BYTES if key == "case" else MAX_ATTRIBUTE_BYTES)
        except InputError as exc:
            found.append(_refused(exc))
    if "format" in attrs and not (_is_text(attrs["format"]) and _text(attrs["format"]) == "gflow"):
        found.append(f"root attribute format = {printable(repr(attrs['format']), 80)}, not 'gflow'")
    if "format_version" in attrs:
        version = attrs["format_version"]
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) or version < 1:
            found.append(f"root attribute format_version = {printable(repr(version), 80)} is not an integer >= 1")
    for key in ("gflow_version", "solver"):
        if key in attrs and not (_is_text(attrs[key]) and _text(attrs[key]).strip()):
            found.append(f"root attribute {key} = {printable(repr(attrs[key]), 80)} is not a non-empty text")
        elif key in attrs and len(_text(attrs[key])) > MAX_NAME:
            found.append(f"root attribute {key} is {len(_text(attrs[key]))} characters long, more than {MAX_NAME}")
    if "case" in attrs:
        if not _is_text(attrs["case"]):
            found.append("root attribute 'case' is not text (a TOML case)")
        else:
            try:
                if _depth(tomllib.loads(_text(attrs["case"]))) > MAX_CASE_DEPTH:
                    found.append(f"root attribute 'case' nests tables or lists more than {MAX_CASE_DEPTH} deep")
            except RecursionError:
                found.append("root attribute 'case' is not valid TOML: nested too deeply")
            except tomllib.TOMLDecodeError as exc:
                found.append(f"root attribute 'case' is not valid TOML: {' '.join(str(exc).split())}")
    axes: tuple[str, ...] = ()
    if "axes" in attrs:
        names = attrs["axes"]
        if np.ndim(names) != 1 or len(names) == 0 or not all(_is_text(a) and _text(a) for a in names):
            found.append(f"root attribute axes = {printable(repr(names), 80)} is not a non-empty list of names")
        elif len(names) > MAX_AXES:
            found.append(f"root attribute axes holds {len(names)} names, more than {MAX_AXES}")
        elif not all(_text(a).isidentifier() and len(_text(a)) <= MAX_NAME for a in names):
            found.append(f"root attribute axes = {printable(repr([_text(a) for a in names]), 80)} holds a name "
                         f"that is not an identifier of at most {MAX_NAME} characters")
        elif len({_text(a) for a in names}) != len(names):
            found.append(f"root attribute axes = {printable(repr([_text(a) for a in names]), 80)} repeats a name")
        else:
            axes = tuple(_text(a) for a in names)
    solver = _text(attrs["solver"]) if "solver" in attrs and _is_text(attrs["solver"]) else ""
    if found:
        raise _Stop
    return axes, solver


def _dataset(f: h5py.File, name: str, found: list[str], limit: int, row: int | None = None) -> h5py.Dataset:
    """Dataset `name` of at most `limit` values, checked from its metadata (`gflow.run_file._array`:
    a hard link, not virtual, numbers, chunks no larger than a `row`) before anything reads it."""
    link = f.get(name, getlink=True)
    if link is None:
        found.append(f"dataset {name!r} is missing")
        raise _Stop
    if isinstance(link, h5py.HardLink) and not isinstance(f[name], h5py.Dataset):
        found.append(f"{name!r} is not a dataset")
        raise _Stop
    try:
        return _array(f, name, _FILE, ndim=None, limit=limit, row=row)
    except InputError as exc:
        found.append(_refused(exc))
        raise _Stop from None


def _numeric(ds: h5py.Dataset, found: list[str]) -> bool:
    if ds.dtype.kind not in "fiu":
        found.append(f"dataset {(ds.name or '').lstrip('/')!r} has dtype {ds.dtype}, not numbers")
        return False
    return True


def _shape_problem(name: str, shape: tuple, expected: tuple, meaning: str, T: int) -> str | None:
    """None when `shape` is `expected`, or `expected` with one unfinished snapshot (T + 1 rows)."""
    if shape == expected or (len(shape) == len(expected) and shape[0] == T + 1 and shape[1:] == expected[1:]):
        return None
    return f"dataset {name!r} has shape {shape}, expected {meaning} = {expected}"


def _increasing(values: np.ndarray, name: str, found: list[str]) -> None:
    if not np.all(np.isfinite(values)):
        found.append(f"dataset {name!r} has non-finite values")
        return
    steps = np.diff(values)
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        found.append(f"dataset {name!r} is not increasing: {name}[{k + 1}] = {values[k + 1]:.6g} "
                     f"after {name}[{k}] = {values[k]:.6g}")


def _rows_finite(ds: h5py.Dataset, T: int) -> int | None:
    """The first of the T snapshots of `ds` with a non-finite value, or None."""
    for i in range(T):
        if not np.all(np.isfinite(ds[i])):
            return i
    return None


def _check(f: h5py.File, found: list[str]) -> None:
    axes, solver = _root(f, found)
    D = len(axes)

    time = _dataset(f, "time", found, MAX_SNAPSHOTS)
    if time.ndim != 1:
        found.append(f"dataset 'time' has shape {time.shape}, expected (T,)")
        raise _Stop
    T = time.shape[0]
    if _numeric(time, found):
        _increasing(time[()], "time", found)
    for name in ("risk", "energy", "mass"):
        ds = _dataset(f, name, found, MAX_SNAPSHOTS + 1)
        problem = _shape_problem(name, ds.shape, (T,), "(T,)", T)
        if problem:
            found.append(problem)
        else:
            _numeric(ds, found)

    sizes = []
    for axis in axes:
        ds = _dataset(f, axis, found, MAX_CELLS)
        if ds.ndim != 1 or ds.shape[0] == 0:
            found.append(f"coordinate dataset {axis!r} has shape {ds.shape}, expected (n,) with n >= 1")
            raise _Stop
        if not _is_scale(ds):
            found.append(f"coordinate dataset {axis!r} is not a dimension scale")
        if _numeric(ds, found):
            _increasing(ds[()], axis, found)
        sizes.append(ds.shape[0])
    if np.prod(sizes, dtype=object) > MAX_CELLS:
        found.append(f"the axes make a grid of {np.prod(sizes, dtype=object)} cells, more than the {MAX_CELLS} "
                     "a case may have")
    if found:
        raise _Stop
    cells = int(np.prod(sizes, dtype=object))

    layers = None
    if f.get("layer", getlink=True) is not None:
        layer = _dataset(f, "layer", found, MAX_ROW_VALUES // cells)
        layers = layer.shape[0] if layer.ndim == 1 and layer.shape[0] else None
        if layers is None:
            found.append(f"dataset 'layer' has shape {layer.shape}, expected (L,)")
    lead, lead_meaning = ((T, layers), "(T, L") if layers else ((T,), "(T")

    expected = (*lead, *sizes)
    density = _dataset(f, "density", found, (MAX_SNAPSHOTS + 1) * math.prod(expected[1:]), math.prod(expected[1:]))
    meaning = f"{lead_meaning}, {', '.join(f'n_{a}' for a in axes)})"
    if _snapshot_rows("density", density, expected, meaning, T, found):
        _mass_consistent(f, axes, density, T, found)

    particles = any(f.get(n, getlink=True) is not None for n in ("positions", "weights", SNAPSHOT_WEIGHTS)) \
        or solver in PARTICLE_KINDS
    varying = f.get(SNAPSHOT_WEIGHTS, getlink=True) is not None
    if particles:
        weights = _dataset(f, "weights", found, MAX_PARTICLES)
        if weights.ndim != 1 or weights.shape[0] == 0:
            found.append(f"dataset 'weights' has shape {weights.shape}, expected (m,) with m >= 1")
        elif math.prod((*lead[1:], weights.shape[0], D)) > MAX_ROW_VALUES:
            found.append(f"{weights.shape[0]} particles on {D} axes are more than the {MAX_ROW_VALUES} values "
                         "a snapshot may hold")
        else:
            m = weights.shape[0]
            row = math.prod((*lead[1:], m, D))
            positions = _dataset(f, "positions", found, (MAX_SNAPSHOTS + 1) * row, row)
            _snapshot_rows("positions", positions, (*lead, m, D), f"{lead_meaning}, m, D)", T, found)
            if _numeric(weights, found):
                w = weights[()]
                if not np.all(np.isfinite(w)) or np.any(w < 0):
                    found.append("dataset 'weights' has negative or non-finite values")
                elif abs(float(np.sum(w)) - 1.0) > WEIGHT_TOLERANCE:
                    found.append(f"dataset 'weights' sums to {float(np.sum(w)):.12g}, not 1")
            if varying and layers:
                found.append(f"dataset {SNAPSHOT_WEIGHTS!r} in a layered run, whose weights never change")
            elif varying:
                _weight_rows(f, m, T, found)

    expected_scales = {name: ("time",) for name in ("risk", "energy", "mass")}
    expected_scales["density"] = ("time", *(("layer",) if layers else ()), *axes)
    if particles:
        expected_scales["positions"] = ("time", *(("layer",) if layers else ()), "particle", "component")
        expected_scales["weights"] = ("particle",)
        expected_scales[SNAPSHOT_WEIGHTS] = ("time", "particle")
    _scales(f, T, axes, expected_scales, found)


def _weight_rows(f: h5py.File, m: int, T: int, found: list[str]) -> None:
    """`snapshot_weights`: (T, m), finite and non-negative in every snapshot; each row sums to 1
    where the dataset's `sums_to_one` is 1 (read one snapshot at a time, like the other rows)."""
    ds = _dataset(f, SNAPSHOT_WEIGHTS, found, (MAX_SNAPSHOTS + 1) * m, m)
    if not _snapshot_rows(SNAPSHOT_WEIGHTS, ds, (T, m), "(T, m)", T, found):
        return
    one = None
    if "sums_to_one" in ds.attrs:
        try:
            one = _attribute(ds.attrs, "sums_to_one", _FILE, f"attribute 'sums_to_one' of {SNAPSHOT_WEIGHTS!r}", 64)
        except InputError as exc:
            found.append(_refused(exc))
            return
    flag = np.asarray(one if one is not None else 0)
    if flag.shape != () or flag.dtype.kind not in "biu" or int(flag) not in (0, 1):
        found.append(f"attribute 'sums_to_one' of {SNAPSHOT_WEIGHTS!r} is {printable(repr(one), 80)}, not 0 or 1")
        return
    for i in range(T):
        row = ds[i]
        if np.any(row < 0):
            found.append(f"dataset {SNAPSHOT_WEIGHTS!r} has negative weights in snapshot {i}")
            return
        if flag and abs(float(np.sum(row)) - 1.0) > WEIGHT_TOLERANCE:
            found.append(f"dataset {SNAPSHOT_WEIGHTS!r}: snapshot {i}'s weights sum to {float(np.sum(row)):.12g}, not 1")
            return


def _snapshot_rows(name: str, ds: h5py.Dataset, expected: tuple, meaning: str, T: int, found: list[str]) -> bool:
    """A per-snapshot dataset of the expected shape, numeric and finite in every snapshot; the
    first problem goes to `found`, and True means there was none."""
    problem = _shape_problem(name, ds.shape, expected, meaning, T)
    if problem:
        found.append(problem)
        return False
    if not _numeric(ds, found):
        return False
    if ds.chunks and T:
        # rows declared but never written read as fill values: count the chunks stored, not read them
        needed = math.prod(-(-n // c) for n, c in zip((T, *ds.shape[1:]), ds.chunks))
        if ds.id.get_num_chunks() < needed:
            found.append(f"dataset {name!r} stores {ds.id.get_num_chunks()} of the {needed} chunks its {T} "
                         "snapshots need (rows never written)")
            return False
    bad = _rows_finite(ds, T)
    if bad is not None:
        found.append(f"dataset {name!r} has non-finite values in snapshot {bad}")
        return False
    return True


def _mass_consistent(f: h5py.File, axes, density: h5py.Dataset, T: int, found: list[str]) -> None:
    """sum(density) * cell volume = mass, where every axis has two or more uniform cells (the
    datasets read here were checked by `_dataset` already)."""
    if density.ndim != 1 + len(axes) or f["mass"].dtype.kind not in "fiu":
        return
    volume = 1.0
    for axis in axes:
        c = f[axis][()]
        if len(c) < 2 or not np.allclose(np.diff(c), c[1] - c[0], rtol=1e-9, atol=0):
            return
        volume *= c[1] - c[0]
    mass = f["mass"][()]
    for i in range(T):
        total = float(np.sum(density[i])) * volume
        if abs(total - mass[i]) > MASS_TOLERANCE * max(abs(mass[i]), 1e-300):
            found.append(f"snapshot {i}: sum(density) * cell volume = {total:.12g}, but mass = {mass[i]:.12g}")
            return


def _is_scale(ds: h5py.Dataset) -> bool:
    """Whether `ds` is a dimension scale: its CLASS attribute, checked like any attribute before
    it is read (HDF5's own H5DSis_scale aborted the process on a damaged attribute)."""
    if "CLASS" not in ds.attrs:
        return False
    try:
        value = _attribute(ds.attrs, "CLASS", _FILE, "attribute 'CLASS'", 64)
    except InputError:
        return False
    return _is_text(value) and _text(value) == "DIMENSION_SCALE"


def _scales(f: h5py.File, T: int, axes, expected: dict, found: list[str]) -> None:
    """Every dimension of every root dataset carries a dimension scale of its length."""
    required = ["time", *(("particle", "component") if "positions" in expected else ())]
    for name in required:
        if not isinstance(f.get(name, getlink=True), h5py.HardLink) or not isinstance(f[name], h5py.Dataset):
            found.append(f"dimension scale dataset {name!r} is missing")
        elif not _is_scale(f[name]):
            found.append(f"dataset {name!r} is not a dimension scale")
        elif f[name].ndim != 1:
            found.append(f"dimension scale {name!r} has shape {f[name].shape}, expected 1-D")
    for name in f:
        link = f.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            found.append(f"{name!r} is a {'soft' if isinstance(link, h5py.SoftLink) else 'external'} link, "
                         "which gflow does not follow")
            continue
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            continue           # groups (the solver's `restart` state) are not part of the layout
        if ds.is_virtual:
            found.append(f"dataset {name!r} is a virtual dataset (it reads other files)")
            continue
        if _is_scale(ds):
            if ds.ndim != 1:
                found.append(f"dimension scale {name!r} has shape {ds.shape}, expected 1-D")
            continue
        wanted = expected.get(name)
        for i in range(ds.ndim):
            if len(ds.dims[i]) == 0:
                found.append(f"dimension {i} of dataset {name!r} has no dimension scale attached")
                continue
            scale = ds.dims[i][0]
            scale_name = (scale.name or "").lstrip("/")
            if wanted is not None and i < len(wanted) and scale_name != wanted[i]:
                found.append(f"dimension {i} of dataset {name!r} has scale {scale_name!r}, expected {wanted[i]!r}")
            elif scale.shape[:1] != ds.shape[i:i + 1] and not (scale_name == "time" and ds.shape[i] == T + 1):
                found.append(f"dimension {i} of dataset {name!r} has length {ds.shape[i]}, its scale "
                             f"{scale_name!r} {scale.shape[0] if scale.ndim else 0}")
