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
from gflow.models.two_layer_case import (MAX_INPUT_DIM, DataSpec, TargetSpec, data_and_target, parse_network_tables,
                                         parse_train)
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
    train = parse_train(t, axes, {"a": amps, "w": ws})
    target, data, files = parse_network_tables(top, t, base_dir, d, bias)
    return ResNetSpec("resnet", axes, activation, bias, d, layers, train, refresh, msa_rho, target, data), files


def build(case):
    from gflow.models.resnet import ResNetModel

    return ResNetModel(case.model, *data_and_target(case), case.weight_decay, case.temperature)


KIND = ModelKind("resnet", parse, build)
