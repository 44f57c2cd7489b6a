"""The `[data]` table of a network of an input x (two_layer, resnet): what E_x integrates against.

    distribution = "uniform"   Gauss-Legendre nodes on [low, high]^d (`nodes` per axis)
    distribution = "gaussian"  Gauss-Hermite nodes of N(mean, std^2) per axis
    distribution = "samples"   `samples` i.i.d. draws (`seed`) of `sampler` = uniform | gaussian
    distribution = "sphere"    `samples` points uniform on the sphere S^(d-1) of `radius` in R^d
    file = "data.csv"          the points (and optionally y) of a CSV file (`gflow.models.data`)
    x = [...], y = [...]       the points (and optionally their targets) inline

`measure` = "probability" (the default: the weights sum to 1, E_x is an expectation) or
"lebesgue" for uniform data (Gauss-Legendre, or uniform samples): the weights sum to the volume
(high - low)^d, so that R = 1/2 int (f - f*)^2 dx is the L^2(dx) error (Rotskoff and
Vanden-Eijnden's Gaussian example, as their notebook reports it). The other data are probability
measures (a point of n weighs 1/n) and refuse it. Points on the circle are Chizat's ReLU
illustration (2019-sparse-optim-measures: randn points normalised).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from gflow.errors import InputError
from gflow.models.two_layer_case import MAX_DATA_NODES, MAX_RULE_NODES, DataSpec
from gflow.schema import Table

MEASURES = ("probability", "lebesgue")


def parse_data(t: Table, base_dir: Path, input_dim: int) -> tuple[DataSpec, list[str]]:
    """The data spec and the names of the columns that give targets: a data file's column names,
    ["y"] for inline data with y, else none."""
    measure = t.string("measure", "probability", choices=MEASURES)
    if t.has("file"):
        return _file(t, base_dir, input_dim, measure)
    if t.has("x") or t.has("y"):
        return _inline(t, input_dim, measure)
    dist = t.string("distribution", "uniform", choices=("uniform", "gaussian", "samples", "sphere"))
    if dist == "sphere":
        return _sphere(t, input_dim, measure), []
    if t.has("radius"):
        raise t.error("radius", "is the radius of distribution = \"sphere\"")
    spec = DataSpec(distribution=dist)
    low, high = t.number("low", spec.low), t.number("high", spec.high)
    if not low < high:
        raise t.error("high", f"must exceed low ({low:g}), got {high:g}")
    mean, std = t.number("mean", spec.mean), t.number("std", spec.std, positive=True)
    nodes = t.integer("nodes", spec.nodes, minimum=1, maximum=MAX_DATA_NODES)
    samples = t.integer("samples", spec.samples, minimum=1, maximum=MAX_DATA_NODES)
    seed = t.integer("seed", 0, minimum=0, maximum=2**63)
    sampler = t.string("sampler", "uniform", choices=("uniform", "gaussian"))
    if measure == "lebesgue" and (dist == "gaussian" or (dist == "samples" and sampler == "gaussian")):
        _refuse_lebesgue(t, "Gaussian data are a probability law")
    # compared in logs: a float power that overflows raises (or warns, in numpy)
    if measure == "lebesgue" and input_dim * math.log(high - low) >= math.log(sys.float_info.max):
        raise t.error("measure", f"the volume (high - low)^d = ({high - low:g})^{input_dim} is not a finite number")
    if dist != "samples" and nodes > MAX_RULE_NODES:
        raise t.error("nodes", f"{nodes} nodes per axis is more than the {MAX_RULE_NODES} a Gauss rule may have")
    if dist != "samples" and nodes**input_dim > MAX_DATA_NODES:
        raise t.error("nodes", f"{nodes}^{input_dim} quadrature nodes is more than the {MAX_DATA_NODES} allowed")
    t.done()
    return DataSpec(dist, low, high, nodes, mean, std, samples, seed, sampler, measure=measure), []


def _refuse_lebesgue(t: Table, why: str):
    raise t.error("measure", f"\"lebesgue\" is for uniform data on [low, high] (distribution = \"uniform\", or "
                             f"\"samples\" with sampler = \"uniform\"): {why}")


def _file(t: Table, base_dir: Path, input_dim: int, measure: str) -> tuple[DataSpec, list[str]]:
    from gflow.models.data import file_columns, file_inputs

    if measure == "lebesgue":
        _refuse_lebesgue(t, "a data file's points weigh 1/n each")
    t.string("distribution", "file", choices=("file", "samples"))
    file = base_dir / t.string("file")
    if not file.exists():
        raise t.error("file", f"no such file: {file}")
    label = f"{t.source}: {t.key('file')}: {file}"
    names, rows = file_columns(file, label)
    missing = [n for n in file_inputs(names, input_dim) if n not in names]
    if missing:
        raise InputError(f"{label}: has no column {missing[0]!r} (columns: {', '.join(names)})")
    t.done()
    return DataSpec(distribution="file", file=file, rows=rows), names


def _sphere(t: Table, input_dim: int, measure: str) -> DataSpec:
    """`samples` points uniform on the sphere of `radius` in R^d (d = input_dim >= 2), seeded."""
    radius = t.number("radius", 1.0, positive=True)
    samples = t.integer("samples", DataSpec.samples, minimum=1, maximum=MAX_DATA_NODES)
    seed = t.integer("seed", 0, minimum=0, maximum=2**63)
    if input_dim < 2:
        raise t.error("distribution", "\"sphere\" draws points on the sphere S^(d-1) in R^d: it needs "
                                      "model.input_dim = d >= 2")
    if measure == "lebesgue":
        _refuse_lebesgue(t, "points on a sphere weigh 1/n each")
    t.done()
    return DataSpec("sphere", samples=samples, seed=seed, radius=radius)


def _inline(t: Table, input_dim: int, measure: str) -> tuple[DataSpec, list[str]]:
    """`x = [...]` (numbers for d = 1, or lists of d numbers) and optional `y = [...]`."""
    if not t.has("x"):
        raise t.error("y", "inline targets need their points: give data.x beside data.y")
    t.string("distribution", "inline", choices=("inline",))
    if measure == "lebesgue":
        _refuse_lebesgue(t, "inline points weigh 1/n each")
    x = _points(t, input_dim)
    y = None
    if t.has("y"):
        y = _numbers(t, "y", t.raw("y"))
        if len(y) != len(x):
            raise t.error("y", f"has {len(y)} values for the {len(x)} points of data.x")
    t.done()
    return DataSpec("inline", points=tuple(map(tuple, x.tolist())),
                    values=None if y is None else tuple(y.tolist())), ([] if y is None else ["y"])


def _points(t: Table, d: int) -> np.ndarray:
    raw = t.raw("x")
    shape = "numbers" if d == 1 else f"lists of {d} numbers"
    if not isinstance(raw, list) or not raw or len(raw) > MAX_DATA_NODES:
        raise t.error("x", f"must be a non-empty list of at most {MAX_DATA_NODES} points ({shape}), "
                           f"got {raw!r:.60}")
    if d == 1 and not any(isinstance(v, list) for v in raw):
        return _numbers(t, "x", raw)[:, None]
    # each point a list of d numbers (d = 1 may write [x] too)
    bad = next((i for i, v in enumerate(raw) if not isinstance(v, list) or len(v) != d), None)
    if bad is not None:
        raise t.error(f"x[{bad}]", f"must be a list of {d} numbers (x1..x{d}), got {raw[bad]!r:.60}")
    flat = _numbers(t, "x", [v for row in raw for v in row], per=d)
    return flat.reshape(len(raw), d)


def _numbers(t: Table, key: str, raw, per: int = 1) -> np.ndarray:
    """The finite numbers of the list `raw` (TOML integers or floats, not booleans), as floats;
    the first that is not is named as key[i] (the point's index, `per` numbers a point)."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_DATA_NODES * per:
        raise t.error(key, f"must be a non-empty list of at most {MAX_DATA_NODES} numbers, got {raw!r:.60}")
    bad = next((i for i, v in enumerate(raw) if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if bad is None:
        try:
            values = np.array(raw, dtype=float)
        except OverflowError:
            raise t.error(key, "holds an integer too large for a float") from None
        finite = np.isfinite(values)
        if finite.all():
            return values
        bad = int(np.flatnonzero(~finite)[0])
    raise t.error(f"{key}[{bad // per}]", f"must be finite numbers, got {raw[bad]!r:.60}")
