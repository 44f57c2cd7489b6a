"""The `resnet` model kind's case tables: `[model]` (with `[target]` and `[data]` as for `two_layer`).

    [model]  kind = "resnet", activation, bias, input_dim = d (the state dimension, z(0) = x),
             layers = L, train (axis names; "a" stands for a1..ad and "w" for w1..wd when d > 1),
             refresh = k (the depth sweep every k steps, V frozen in between; 1: gradient flow),
             msa_rho = rho (>= 0, the extended MSA's feasibility penalty; with refresh > 1 only)
    [target] neurons = [{a, w, b}, ...] (a two-layer teacher) or expression = "..." in x (x1..xd)
    [data]   as for two_layer

Axes of every layer: (a, w[, b]) for d = 1, (a1..ad, w1..wd[, b]) for d > 1. The run's grid and
particles carry one more, frozen, axis in front: the layer (`LAYER`, its coordinate the depth
tau_l = l / L of layer l), which the case never names: `[grid]` and `[initial]` describe the
box and the initial law of every layer (docs/resnet.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gflow.models.base import ModelKind
from gflow.models.two_layer_case import MAX_INPUT_DIM, DataSpec, TargetSpec, _data, _target
from gflow.models.units import UNITS
from gflow.schema import Table

#: layers beyond this would be a typo (1e6 layers of a grid): refused in one line
MAX_LAYERS = 4096
#: the refresh period beyond which a schedule never sweeps again within any sane run
MAX_REFRESH = 10**6


@dataclass(frozen=True)
class ResNetSpec:
    kind: str
    axes: tuple[str, ...]
    activation: str = "tanh"
    bias: bool = False
    input_dim: int = 1
    layers: int = 4
    train: tuple[str, ...] = ()
    refresh: int = 1
    msa_rho: float = 0.0
    target: TargetSpec = field(default_factory=TargetSpec)
    data: DataSpec = field(default_factory=DataSpec)


def resnet_axes(d: int, bias: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The amplitude axes and the w axes of one layer for state dimension d."""
    if d == 1:
        return ("a",), ("w",)
    return tuple(f"a{i + 1}" for i in range(d)), tuple(f"w{i + 1}" for i in range(d))


def parse(top: Table, t: Table, base_dir: Path) -> tuple[ResNetSpec, dict]:
    activation = t.string("activation", "tanh", choices=tuple(UNITS))
    bias = t.boolean("bias", False)
    d = t.integer("input_dim", 1, minimum=1, maximum=MAX_INPUT_DIM)
    layers = t.integer("layers", 4, minimum=1, maximum=MAX_LAYERS)
    refresh = t.integer("refresh", 1, minimum=1, maximum=MAX_REFRESH)
    msa_rho = t.number("msa_rho", 0.0, minimum=0.0)
    if msa_rho > 0 and refresh == 1:
        raise t.error("msa_rho", "the extended MSA's penalty acts while z and p are frozen: give refresh > 1")
    amps, ws = resnet_axes(d, bias)
    axes = (*amps, *ws, *(("b",) if bias else ()))
    groups = {"a": amps, "w": ws}
    train_raw = t.raw("train", ["a", "w", *(["b"] if bias else [])])
    if not isinstance(train_raw, list) or not all(isinstance(v, str) for v in train_raw) or not train_raw:
        raise t.error("train", f"must be a non-empty list of axis names, got {train_raw!r}")
    train = []
    for name in train_raw:
        expanded = groups.get(name, (name,))
        if not set(expanded) <= set(axes):
            raise t.error("train", f"unknown axis {name!r} (axes are {', '.join(axes)})")
        train.extend(expanded)
    for absent in ("axes", "potential", "interaction"):
        if t.has(absent):
            raise t.error(absent, "only potential models have this key")
    data, columns = _data(top.table("data", required=False), base_dir, d)
    if "y" in columns:
        if top.has("target"):
            _target(top.table("target"), d, bias)
        target = TargetSpec()
    else:
        target = _target(top.table("target"), d, bias)
    spec = ResNetSpec("resnet", axes, activation, bias, d, layers, tuple(a for a in axes if a in train),
                      refresh, msa_rho, target, data)
    return spec, ({"data.file": data.file.resolve()} if data.file is not None else {})


def build(case):
    from gflow.errors import InputError
    from gflow.models.data import build_data
    from gflow.models.resnet import ResNetModel
    from gflow.models.two_layer_case import target_function

    spec = case.model
    data = build_data(spec.data, spec.input_dim, case.source)
    target = target_function(spec.target, spec.activation, spec.input_dim)
    if target is None and data.y is None:
        raise InputError(f"{case.source}: target: no target and the data file has no y column")
    return ResNetModel(spec, data, target, case.weight_decay, case.temperature)


KIND = ModelKind("resnet", parse, build)
