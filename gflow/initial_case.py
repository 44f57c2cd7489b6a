"""`[initial]` laws beyond the Gaussians: point masses from a file, the sphere, per-axis
products and another run's snapshot; read and checked here for `gflow.case`.

- `file = "particles.csv"` (relative to the case file): point masses, a header naming the
  case's axes (any order) and optionally `weight`, then one point per line. Particle and blob
  solvers start from them as given; grid solvers deposit them (cloud-in-cell,
  `gflow.grids.deposit`). The inline `points` list is the same law.
- `distribution = "sphere"`, `radius`, `center`: uniform on the sphere |u - center| = radius in
  the case's D axes (Chizat's ReLU illustration); grids hold a shell of `width`
  (`gflow.grids.initial.shell_cell_average`).
- `distribution = "product"`, `[initial.factors]`: one law per axis, `{distribution = "gaussian",
  mean, std}` or `{distribution = "uniform", low, high}` (Rotskoff and Vanden-Eijnden's
  c ~ N(0, 1), y ~ U[-2, 2]), every axis named once.
- `snapshot = "runs/x/fv.h5"`, `snapshot_index` (-1: the last): another run's density or
  particles, read when the run starts (`gflow.initial_snapshot.load_initial`; the case reader
  reads no run file).

Each reader returns the `gflow.case.InitialSpec` fields of its law and the files it names
(dotted key -> absolute path), which the stored case text gives instead of the path written.
"""
from __future__ import annotations

import math
from array import array
from pathlib import Path

import numpy as np

from gflow.errors import InputError
from gflow.models.data import csv_lines
from gflow.schema import Table, open_regular

#: points a particles file may hold, and numbers in all (points x columns): 80 MB of floats
MAX_FILE_POINTS = 10**6
MAX_FILE_VALUES = 10**7
#: the file itself, checked before reading: far more than MAX_FILE_VALUES numbers need
MAX_FILE_BYTES = 256 << 20
#: the optional column of a particles file holding each point's mass
WEIGHT = "weight"
#: the per-axis laws of distribution = "product" and their two parameters
FACTOR_LAWS = {"gaussian": ("mean", "std"), "uniform": ("low", "high")}
#: snapshot_index: like a Python index into the run's snapshots (at most gflow.case.MAX_SNAPSHOTS)
MAX_SNAPSHOT_INDEX = 100_000
#: the laws this module reads, and the keys that belong to each (refused with any other law)
LAW_KEYS = {"sphere": ("radius", "center", "width"), "product": ("factors",),
            "snapshot": ("snapshot", "snapshot_index")}


def check_law_keys(t: Table, distribution: str) -> None:
    """A key of another law (`radius` with a Gaussian) is named as such, not just unknown."""
    for law, keys in LAW_KEYS.items():
        for key in keys:
            if law != distribution and t.has(key):
                raise t.error(key, f"belongs to distribution = \"{law}\" (this [initial] is \"{distribution}\")")


def parse_law(t: Table, distribution: str, axes: tuple[str, ...], layers: int | None,
              base_dir: Path) -> tuple[dict, dict[str, Path]]:
    """The InitialSpec fields and the named files of `distribution` (sphere, product, snapshot)."""
    if distribution == "sphere":
        return sphere(t, len(axes)), {}
    if distribution == "product":
        return {"factors": factors(t, axes)}, {}
    if layers:
        raise t.error("snapshot", "a layered model (resnet) cannot start from a snapshot: its layers would "
                                  "need one law each")
    path = resolve(base_dir, t.string("snapshot"))
    index = t.integer("snapshot_index", -1, minimum=-MAX_SNAPSHOT_INDEX - 1, maximum=MAX_SNAPSHOT_INDEX)
    return {"snapshot": path, "snapshot_index": index}, {"initial.snapshot": path}


def resolve(base_dir: Path, name: str) -> Path:
    """A path the case names, relative to the case file, made absolute."""
    return (base_dir / Path(name).expanduser()).resolve()


def sphere(t: Table, ndim: int) -> dict:
    """`radius` (> 0), `center` (D numbers or one, default 0) and, for grids, `width` (> 0)."""
    radius = t.number("radius", positive=True)
    center = tuple(t.numbers("center", ndim, [0.0] * ndim))
    width = t.number("width", positive=True) if t.has("width") else None
    if not all(math.isfinite(c + radius) for c in center):
        raise t.error("center", "center + radius must be finite")
    return {"radius": radius, "center": center, "width": width}


def factors(t: Table, axes: tuple[str, ...]) -> tuple[tuple[str, float, float], ...]:
    """`[initial.factors]`: one inline table per axis, every axis once, in the case's axis order."""
    raw = t.raw("factors")
    key = t.key("factors")
    if not isinstance(raw, dict):
        raise t.error("factors", f"must be a table with one law per axis ({', '.join(axes)}), e.g. "
                                 f"{axes[0]} = {{ distribution = \"uniform\", low = -1.0, high = 1.0 }}")
    unknown = [name for name in raw if name not in axes]
    if unknown:
        raise t.error(f"factors.{unknown[0]}", f"is not an axis of the case (axes: {', '.join(axes)})")
    missing = [a for a in axes if a not in raw]
    if missing:
        raise t.error("factors", f"names no law for the axis {missing[0]!r}: every axis needs one "
                                 f"({', '.join(axes)})")
    out = []
    for axis in axes:
        if not isinstance(raw[axis], dict):
            raise t.error(f"factors.{axis}", "must be a table such as "
                                             "{ distribution = \"gaussian\", mean = 0.0, std = 1.0 }")
        c = Table(raw[axis], t.source, f"{key}.{axis}")
        law = c.string("distribution", choices=tuple(FACTOR_LAWS))
        if law == "gaussian":
            p1, p2 = c.number("mean"), c.number("std", positive=True)
        else:
            p1, p2 = c.number("low"), c.number("high")
            if not p1 < p2:
                raise c.error("high", f"must be above low ({p1:g}), got {p2:g}")
            if not math.isfinite(p2 - p1):
                raise c.error("high", "the interval is too wide to represent")
        c.done()
        out.append((law, p1, p2))
    return tuple(out)


# ----------------------------------------------------------------------------- particles file

def points_file(t: Table, axes: tuple[str, ...], base_dir: Path) -> tuple[np.ndarray, np.ndarray, Path]:
    """`file`: the points (P, D) in the case's axis order, their weights (summing to 1), the path."""
    path = resolve(base_dir, t.string("file"))
    points, weights = read_points(path, axes, f"{t.source}: {t.key('file')}: {path}")
    return points, weights, path


def read_points(path: Path, axes: tuple[str, ...], label: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a particles CSV file: streamed line by line through the data reader's `csv_lines`
    (comments, blank lines, a BOM, MAX_LINE_BYTES a line), a regular file of at most
    MAX_FILE_BYTES, at most MAX_FILE_POINTS points and MAX_FILE_VALUES numbers; anything
    else is one InputError naming the file (and the line)."""
    with open_regular(path, label, MAX_FILE_BYTES) as handle:
        lines = csv_lines(handle, label)
        names = _header(lines, axes, label)
        width = len(names)
        limit = min(MAX_FILE_POINTS, MAX_FILE_VALUES // width)
        values = array("d")
        rows = 0
        for number, text in lines:
            fields = text.split(",")
            if len(fields) != width:
                raise InputError(f"{label}: line {number} has {len(fields)} values, the header {width} columns")
            rows += 1
            if rows > limit:
                raise InputError(f"{label}: more than the {limit} points allowed")
            try:
                values.extend([float(v) for v in fields])
            except ValueError:
                bad = next(i for i, v in enumerate(fields) if not _is_number(v))
                raise InputError(f"{label}: line {number}: {fields[bad].strip()[:40]!r} in column "
                                 f"{names[bad]!r} is not a number") from None
    if rows == 0:
        raise InputError(f"{label}: has a header but no points")
    table = np.frombuffer(values, dtype=float).reshape(rows, width)
    if not np.all(np.isfinite(table)):
        row, col = np.argwhere(~np.isfinite(table))[0]
        raise InputError(f"{label}: point {row + 1} has {table[row, col]} in column {names[col]!r}")
    points = np.ascontiguousarray(table[:, [names.index(a) for a in axes]])
    weights = table[:, names.index(WEIGHT)] if WEIGHT in names else np.ones(rows)
    if np.any(weights < 0) or not weights.sum() > 0:
        raise InputError(f"{label}: the {WEIGHT} column must be non-negative and not all zero")
    points.flags.writeable = False
    weights = weights / weights.sum()
    weights.flags.writeable = False
    return points, weights


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header(lines, axes: tuple[str, ...], label: str) -> list[str]:
    """The header: every axis once, optionally `weight`, nothing else."""
    first = next(lines, None)
    example = ",".join(axes)
    if first is None:
        raise InputError(f"{label}: is empty (expected a header naming the axes, e.g. {example})")
    number, text = first
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if name not in axes and name != WEIGHT:
            raise InputError(f"{label}: line {number}: column {name[:40]!r} is neither an axis of the case "
                             f"({', '.join(axes)}) nor {WEIGHT!r}")
        if names.count(name) > 1:
            raise InputError(f"{label}: line {number}: column {name!r} appears twice in the header")
    missing = [a for a in axes if a not in names]
    if missing:
        raise InputError(f"{label}: line {number}: no column for the axis {missing[0]!r} (the header needs "
                         f"{example}[,{WEIGHT}])")
    return names

