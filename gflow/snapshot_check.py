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
- every dimension of every root dataset is an HDF5 dimension scale of its length (the fixed
  datasets: the scale SPEC.md names, `time`, the axes, `particle`, `component`).

A run killed while appending a snapshot may hold one more row than `time` in the other
time-indexed datasets (`time` is written last, and readers trust it for the count): that
unfinished row is allowed, and not checked.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import numpy as np

from gflow.errors import reason
from gflow.h5io import reading
from gflow.run_file import READ_ERRORS
from gflow.solver_options import PARTICLE_KINDS

WEIGHT_TOLERANCE = 1e-9
MASS_TOLERANCE = 1e-6


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
            return found
    except READ_ERRORS as exc:
        return [f"unreadable HDF5 content: {reason(exc)}"]


def first_problem(path) -> str | None:
    found = problems(path)
    return found[0] if found else None


# ----------------------------------------------------------------------------- the checks

def _is_text(value) -> bool:
    return isinstance(value, (str, bytes, np.str_, np.bytes_))


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _root(f: h5py.File, found: list[str]) -> tuple[tuple[str, ...], str]:
    attrs = f.attrs
    for key in ("format", "format_version", "gflow_version", "solver", "case", "axes"):
        if key not in attrs:
            found.append(f"root attribute {key!r} is missing")
    if "format" in attrs and not (_is_text(attrs["format"]) and _text(attrs["format"]) == "gflow"):
        found.append(f"root attribute format = {attrs['format']!r}, not 'gflow'")
    if "format_version" in attrs:
        version = attrs["format_version"]
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) or version < 1:
            found.append(f"root attribute format_version = {version!r} is not an integer >= 1")
    for key in ("gflow_version", "solver"):
        if key in attrs and not (_is_text(attrs[key]) and _text(attrs[key]).strip()):
            found.append(f"root attribute {key} = {attrs[key]!r} is not a non-empty text")
    if "case" in attrs:
        if not _is_text(attrs["case"]):
            found.append("root attribute 'case' is not text (a TOML case)")
        else:
            try:
                tomllib.loads(_text(attrs["case"]))
            except tomllib.TOMLDecodeError as exc:
                found.append(f"root attribute 'case' is not valid TOML: {' '.join(str(exc).split())}")
    axes: tuple[str, ...] = ()
    if "axes" in attrs:
        names = attrs["axes"]
        if np.ndim(names) != 1 or len(names) == 0 or not all(_is_text(a) and _text(a) for a in names):
            found.append(f"root attribute axes = {names!r} is not a non-empty list of names")
        elif len({_text(a) for a in names}) != len(names):
            found.append(f"root attribute axes = {[_text(a) for a in names]} repeats a name")
        else:
            axes = tuple(_text(a) for a in names)
    solver = _text(attrs["solver"]) if "solver" in attrs and _is_text(attrs["solver"]) else ""
    if found:
        raise _Stop
    return axes, solver


def _dataset(f: h5py.File, name: str, found: list[str]) -> h5py.Dataset:
    if name not in f:
        found.append(f"dataset {name!r} is missing")
        raise _Stop
    if not isinstance(f[name], h5py.Dataset):
        found.append(f"{name!r} is not a dataset")
        raise _Stop
    return f[name]


def _numeric(ds: h5py.Dataset, found: list[str]) -> bool:
    if ds.dtype.kind not in "fiu":
        found.append(f"dataset {ds.name.lstrip('/')!r} has dtype {ds.dtype}, not numbers")
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

    time = _dataset(f, "time", found)
    if time.ndim != 1:
        found.append(f"dataset 'time' has shape {time.shape}, expected (T,)")
        raise _Stop
    T = time.shape[0]
    if _numeric(time, found):
        _increasing(time[()], "time", found)
    for name in ("risk", "energy", "mass"):
        ds = _dataset(f, name, found)
        problem = _shape_problem(name, ds.shape, (T,), "(T,)", T)
        if problem:
            found.append(problem)
        else:
            _numeric(ds, found)

    sizes = []
    for axis in axes:
        ds = _dataset(f, axis, found)
        if ds.ndim != 1 or ds.shape[0] == 0:
            found.append(f"coordinate dataset {axis!r} has shape {ds.shape}, expected (n,) with n >= 1")
            raise _Stop
        if not ds.is_scale:
            found.append(f"coordinate dataset {axis!r} is not a dimension scale")
        if _numeric(ds, found):
            _increasing(ds[()], axis, found)
        sizes.append(ds.shape[0])
    if found:
        raise _Stop

    layers = None
    if "layer" in f:
        layer = _dataset(f, "layer", found)
        layers = layer.shape[0] if layer.ndim == 1 else None
        if layers is None:
            found.append(f"dataset 'layer' has shape {layer.shape}, expected (L,)")
    lead, lead_meaning = ((T, layers), "(T, L") if layers else ((T,), "(T")

    density = _dataset(f, "density", found)
    expected = (*lead, *sizes)
    meaning = f"{lead_meaning}, {', '.join(f'n_{a}' for a in axes)})"
    if _snapshot_rows("density", density, expected, meaning, T, found):
        _mass_consistent(f, density, T, found)

    particles = "positions" in f or "weights" in f or solver in PARTICLE_KINDS
    if particles:
        positions, weights = _dataset(f, "positions", found), _dataset(f, "weights", found)
        if weights.ndim != 1 or weights.shape[0] == 0:
            found.append(f"dataset 'weights' has shape {weights.shape}, expected (m,) with m >= 1")
        else:
            m = weights.shape[0]
            _snapshot_rows("positions", positions, (*lead, m, D), f"{lead_meaning}, m, D)", T, found)
            if _numeric(weights, found):
                w = weights[()]
                if not np.all(np.isfinite(w)) or np.any(w < 0):
                    found.append("dataset 'weights' has negative or non-finite values")
                elif abs(float(np.sum(w)) - 1.0) > WEIGHT_TOLERANCE:
                    found.append(f"dataset 'weights' sums to {float(np.sum(w)):.12g}, not 1")

    expected_scales = {name: ("time",) for name in ("risk", "energy", "mass")}
    expected_scales["density"] = ("time", *(("layer",) if layers else ()), *axes)
    if particles:
        expected_scales["positions"] = ("time", *(("layer",) if layers else ()), "particle", "component")
        expected_scales["weights"] = ("particle",)
    _scales(f, T, axes, expected_scales, found)


def _snapshot_rows(name: str, ds: h5py.Dataset, expected: tuple, meaning: str, T: int, found: list[str]) -> bool:
    """A per-snapshot dataset of the expected shape, numeric and finite in every snapshot; the
    first problem goes to `found`, and True means there was none."""
    problem = _shape_problem(name, ds.shape, expected, meaning, T)
    if problem:
        found.append(problem)
        return False
    if not _numeric(ds, found):
        return False
    bad = _rows_finite(ds, T)
    if bad is not None:
        found.append(f"dataset {name!r} has non-finite values in snapshot {bad}")
        return False
    return True


def _mass_consistent(f: h5py.File, density: h5py.Dataset, T: int, found: list[str]) -> None:
    """sum(density) * cell volume = mass, where every axis has two or more uniform cells."""
    if density.ndim != 1 + len(f.attrs["axes"]) or f["mass"].dtype.kind not in "fiu":
        return
    volume = 1.0
    for axis in f.attrs["axes"]:
        c = f[_text(axis)][()]
        if len(c) < 2 or not np.allclose(np.diff(c), c[1] - c[0], rtol=1e-9, atol=0):
            return
        volume *= c[1] - c[0]
    mass = f["mass"][()]
    for i in range(T):
        total = float(np.sum(density[i])) * volume
        if abs(total - mass[i]) > MASS_TOLERANCE * max(abs(mass[i]), 1e-300):
            found.append(f"snapshot {i}: sum(density) * cell volume = {total:.12g}, but mass = {mass[i]:.12g}")
            return


def _scales(f: h5py.File, T: int, axes, expected: dict, found: list[str]) -> None:
    """Every dimension of every root dataset carries a dimension scale of its length."""
    required = ["time", *(("particle", "component") if "positions" in expected else ())]
    for name in required:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            found.append(f"dimension scale dataset {name!r} is missing")
        elif not f[name].is_scale:
            found.append(f"dataset {name!r} is not a dimension scale")
        elif f[name].ndim != 1:
            found.append(f"dimension scale {name!r} has shape {f[name].shape}, expected 1-D")
    for name, ds in f.items():
        if not isinstance(ds, h5py.Dataset):
            continue           # groups (the solver's `restart` state) are not part of the layout
        if ds.is_scale:
            if ds.ndim != 1:
                found.append(f"dimension scale {name!r} has shape {ds.shape}, expected 1-D")
            continue
        wanted = expected.get(name)
        for i in range(ds.ndim):
            if len(ds.dims[i]) == 0:
                found.append(f"dimension {i} of dataset {name!r} has no dimension scale attached")
                continue
            scale = ds.dims[i][0]
            scale_name = scale.name.lstrip("/")
            if wanted is not None and i < len(wanted) and scale_name != wanted[i]:
                found.append(f"dimension {i} of dataset {name!r} has scale {scale_name!r}, expected {wanted[i]!r}")
            elif scale.shape[:1] != ds.shape[i:i + 1] and not (scale_name == "time" and ds.shape[i] == T + 1):
                found.append(f"dimension {i} of dataset {name!r} has length {ds.shape[i]}, its scale "
                             f"{scale_name!r} {scale.shape[0] if scale.ndim else 0}")
