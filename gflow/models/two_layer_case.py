"""The `two_layer` model kind's case tables: `[model]`, `[target]` and `[data]`, and its builder.

    [model]  kind = "two_layer", activation (a registered unit, `gflow.models.units`), bias,
             input_dim = d, train (axis names; "w" stands for w1..wd)
    [target] neurons = [{a, w, b}, ...] (a teacher network) or expression = "..." in x (x1..xd)
    [data]   distribution = uniform | gaussian | samples | sphere, file = "data.csv" (x1..xd[, y]),
             or x = [...] (and y = [...]) inline; measure = "lebesgue" for uniform data
             (`gflow.models.data_case`); or distribution = "gaussian" with dim = d: isotropic
             data in R^d (`isotropic`)

Axes: (a, w[, b]) for d = 1, (a, w1..wd[, b]) for d > 1. Data that carry y (a data file's y
column, inline y) give the targets themselves: `[target]` is then refused (the two would disagree).

Data with `dim` (`gflow.models.two_layer_symmetry`): the case's axes are the invariants of
the rotations that fix e1, (a, w_par, w_perp[, b]), or of all rotations, (a, w_norm[, b]),
and `[model] symmetry` says how the flow is advanced: "rotations" solves the reduced PDE on
those axes, "none" moves particles in the full R^(1 + d [+ 1]) and bins them on the same axes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gflow.errors import InputError
from gflow.expr import parse_expression
from gflow.models.base import ModelKind
from gflow.models.units import UNITS
from gflow.schema import Table, check_expression

# Sizes beyond these would exhaust memory before the first step; refusing them up front
# turns an out-of-memory crash into one clear line.
MAX_DATA_NODES = 2**20       # data nodes in all (nodes ** input_dim, samples, file rows)
MAX_INPUT_DIM = 64
#: nodes per axis of a Gauss rule for uniform or Gaussian data: numpy's rule eigen-decomposes an
#: n x n matrix (O(n^2) memory, O(n^3) time: 8 GB and hours at n = 32768), and a rule of n nodes
#: is exact to degree 2n - 1, so more than this is never needed
MAX_RULE_NODES = 1024


@dataclass(frozen=True)
class TargetSpec:
    neurons: tuple[dict, ...] = ()     # each {"a": float, "w": tuple, "b": float}
    expression: str | None = None


@dataclass(frozen=True)
class DataSpec:
    distribution: str = "uniform"      # uniform | gaussian | samples | sphere | file | inline
    low: float = -1.0
    high: float = 1.0
    nodes: int = 32
    mean: float = 0.0
    std: float = 1.0
    samples: int = 1000
    seed: int = 0
    sampler: str = "uniform"           # samples: draw from uniform(low, high) or gaussian(mean, std)
    file: Path | None = None
    rows: int = 0                      # file: its lines after the header when checked (a bound on its rows)
    #: isotropic data in R^dim (0: not given); `classes` = ((weight, std, y), ...) a labelled mixture
    dim: int = 0
    classes: tuple[tuple[float, float, float], ...] = ()
    #: isotropic data: Gauss nodes per reduced axis, (x1, |x_perp|, cosine) or (|x|, cosine)
    rule_nodes: tuple[int, ...] = ()
    #: "probability" (weights sum to 1) or "lebesgue" (uniform data: they sum to (high - low)^d)
    measure: str = "probability"
    #: inline data: the points (n, d) and their targets (n,), or None (the target gives them)
    points: tuple[tuple[float, ...], ...] = ()
    values: tuple[float, ...] | None = None
    #: distribution = "sphere": the sphere's radius
    radius: float = 1.0


@dataclass(frozen=True)
class TwoLayerSpec:
    kind: str
    axes: tuple[str, ...]
    activation: str = "tanh"
    bias: bool = False
    input_dim: int = 1
    train: tuple[str, ...] = ()        # axes that move
    target: TargetSpec = field(default_factory=TargetSpec)
    data: DataSpec = field(default_factory=DataSpec)
    #: isotropic data (data.dim > 0): "rotations" (the reduced PDE) or "none" (particles in R^d)
    symmetry: str = "none"
    #: a unit given by `[model] unit` (`gflow.models.unit_case`): phi(x; u) as expression text in
    #: the inputs and the axes (a family's written out), or "" for a sigma(w.x + b) with `activation`
    unit: str = ""
    #: the family `unit` names (`gflow.models.units.FAMILIES`), or "" for a unit written out
    family: str = ""

    @property
    def radial_axes(self) -> dict[int, int]:
        """Axis index -> k for the axes that are the norm of an isotropic k-vector (w_perp: d - 1,
        w_norm: d): their initial law is a chi law, and they are >= 0 (`gflow.case`)."""
        if not self.data.dim:
            return {}
        return {2: self.data.dim - 1} if self.axes[2:3] == ("w_perp",) else {1: self.data.dim}


def input_names(d: int) -> list[str]:
    """The names of the input coordinates in expressions and data files."""
    return ["x"] if d == 1 else [f"x{i + 1}" for i in range(d)]


def parse(top: Table, t: Table, base_dir: Path) -> tuple[TwoLayerSpec, dict]:
    if t.has("unit"):
        # phi(x; u) given as an expression or a named family, on axes of its own (docs/units.md)
        from gflow.models.unit_case import parse_unit

        return parse_unit(top, t, base_dir)
    activation = t.string("activation", "tanh", choices=tuple(UNITS))
    bias = t.boolean("bias", False)
    symmetry = t.string("symmetry", "none", choices=("none", "rotations"))
    data_t = top.table("data", required=False)
    if data_t.has("dim"):
        from gflow.models.isotropic_case import parse_isotropic

        return parse_isotropic(top, t, data_t, activation, bias, symmetry)
    if symmetry != "none":
        raise t.error("symmetry", "needs rotation-invariant data: [data] distribution = \"gaussian\" with dim = d")
    d = t.integer("input_dim", 1, minimum=1, maximum=MAX_INPUT_DIM)
    ws = ("w",) if d == 1 else tuple(f"w{i + 1}" for i in range(d))
    axes = ("a", *ws, *(("b",) if bias else ()))
    train = parse_train(t, axes, {"w": ws})
    target, data, files = parse_network_tables(top, t, base_dir, d, bias)
    return TwoLayerSpec("two_layer", axes, activation, bias, d, train, target, data), files


def parse_train(t: Table, axes: tuple[str, ...], groups: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """`train`: the axes that move, in axis order; a group name ("w") stands for its axes
    (w1..wd), and the default is every axis."""
    owner = {axis: name for name, members in groups.items() for axis in members}
    train_raw = t.raw("train", list(dict.fromkeys(owner.get(a, a) for a in axes)))
    if not isinstance(train_raw, list) or not all(isinstance(v, str) for v in train_raw) or not train_raw:
        raise t.error("train", f"must be a non-empty list of axis names, got {train_raw!r}")
    train = []
    for name in train_raw:
        expanded = groups.get(name, (name,))
        if not set(expanded) <= set(axes):
            raise t.error("train", f"unknown axis {name!r} (axes are {', '.join(axes)})")
        train.extend(expanded)
    return tuple(a for a in axes if a in train)


def parse_network_tables(top: Table, t: Table, base_dir: Path, d: int,
                         bias: bool) -> tuple[TargetSpec, DataSpec, dict]:
    """The tables a network of an input x owns beside `[model]` (two_layer, resnet): `[data]`
    and `[target]` (refused when the data carry y: a data file's y column, inline y), and the
    files they name; the potential model's keys are refused in `[model]`."""
    refuse_foreign_keys(t)
    if top.has("data") and isinstance(top.raw("data"), dict) and "dim" in top.raw("data"):
        raise top.error("data.dim", "isotropic data in R^d is for two_layer models")
    if t.has("symmetry"):
        raise t.error("symmetry", "only two_layer models have this key")
    data, columns = _data(top.table("data", required=False), base_dir, d)
    if "y" in columns:
        # the data's y are the targets: a [target] beside them would be a second, silently unused
        if top.has("target"):
            source = "data.y" if data.distribution == "inline" else "the y column of data.file"
            raise top.error("target", f"{source} gives the targets: leave [target] out (or drop the y)")
        target = TargetSpec()
    else:
        target = _target(top.table("target"), d, bias)
    return target, data, ({"data.file": data.file.resolve()} if data.file is not None else {})


def refuse_foreign_keys(t: Table) -> None:
    """The potential model's `[model]` keys, refused in a network's (`axes` is a unit's, with `unit`)."""
    for absent in ("axes", "potential", "interaction"):
        if t.has(absent) and not (absent == "axes" and t.has("unit")):
            raise t.error(absent, "only potential models have this key")


def _target(t: Table, d: int, bias: bool) -> TargetSpec:
    if t.has("neurons") == t.has("expression"):
        raise t.error("neurons", "give exactly one of 'neurons' and 'expression'")
    if t.has("expression"):
        text = t.string("expression")
        check_expression(t, "expression", text, input_names(d))
        t.done()
        return TargetSpec(expression=text)
    raw = t.raw("neurons")
    if not isinstance(raw, list) or not raw:
        raise t.error("neurons", "must be a non-empty list of tables {a, w, b}")
    neurons = []
    for i, item in enumerate(raw):
        n = Table(item, t.source, f"{t.key('neurons')}[{i}]")
        a = n.number("a")
        w = n.numbers("w", length=d)
        b = n.number("b", 0.0)
        if b != 0.0 and not bias:
            raise n.error("b", "the model has bias = false, so teacher neurons have no b")
        n.done()
        neurons.append({"a": a, "w": tuple(w), "b": b})
    t.done()
    return TargetSpec(neurons=tuple(neurons))


def _data(t: Table, base_dir: Path, input_dim: int) -> tuple[DataSpec, list[str]]:
    """The data spec and the names of the columns that carry targets ("y" among them when the
    data give y: a file's columns, or ["y"] inline), else none (`gflow.models.data_case`)."""
    from gflow.models.data_case import parse_data

    return parse_data(t, base_dir, input_dim)


def data_nodes(spec: DataSpec, input_dim: int, model=None) -> int:
    """How many nodes the data measure has (for a file: a bound, its lines after the header;
    for isotropic data, that of the model spec `model` builds)."""
    if spec.dim:
        from gflow.models.isotropic_case import isotropic_nodes
        return isotropic_nodes(model)
    if spec.distribution == "file":
        return spec.rows
    if spec.distribution == "inline":
        return len(spec.points)
    return spec.samples if spec.distribution in ("samples", "sphere") else spec.nodes**input_dim


# ----------------------------------------------------------------------------- building

def target_function(spec: TargetSpec, activation: str, input_dim: int):
    """f*(x) for x of shape (n, d): a sum of teacher neurons or an expression, or None."""
    if spec.expression is not None:
        expr = parse_expression(spec.expression, input_names(input_dim))
        return lambda x: np.broadcast_to(expr(*[x[:, i] for i in range(input_dim)]), (len(x),)).astype(float)
    if not spec.neurons:
        return None
    sigma = UNITS[activation].sigma
    a = np.array([n["a"] for n in spec.neurons])
    w = np.array([n["w"] for n in spec.neurons])
    b = np.array([n["b"] for n in spec.neurons])
    return lambda x: sigma(x @ w.T + b) @ a


def data_and_target(case):
    """The data measure and f* (None where the data file gives y) of a network case."""
    from gflow.models.data import build_data

    spec = case.model
    data = build_data(spec.data, spec.input_dim, case.source)
    target = target_function(spec.target, spec.activation, spec.input_dim)
    if target is None and data.y is None:
        raise InputError(f"{case.source}: target: no target and the data file has no y column")
    return data, target


def build(case):
    from gflow.models.two_layer import TwoLayerModel

    if case.model.unit:
        from gflow.models.unit_network import UnitNetworkModel
        return UnitNetworkModel(case.model, *data_and_target(case), case.weight_decay, case.temperature)
    if case.model.data.dim:
        from gflow.models.two_layer_symmetry import build_isotropic
        return build_isotropic(case)
    return TwoLayerModel(case.model, *data_and_target(case), case.weight_decay, case.temperature)


KIND = ModelKind("two_layer", parse, build)
