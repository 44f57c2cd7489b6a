"""The `[model]` keys of a two_layer network whose unit is any phi(x; u): `unit` and `axes`.

    [model] kind = "two_layer",
            unit = "gaussian"   (a named family, `gflow.models.units.FAMILIES`, with its own keys:
                                 `variance` for the Gaussian RBF) or an expression in the inputs
                                 x (x1..xd) and the axes, e.g. "a*exp(-(x - y)**2/(2*0.5))/sqrt(2*pi*0.5)",
            axes = ["a", "y"]   (required for an expression; a family's default otherwise),
            input_dim = d, train (axis names; a family's group, "y", stands for y1..yd)

The network is f(x) = sum_j q_j phi(x; u_j) (`gflow.models.unit_network`). `unit` excludes
`activation` and `bias` (a unit written out carries its own), rotation-invariant data
(`data.dim`) and a teacher network of sigma(w.x + b) neurons (`[target] neurons`: give an
expression, or data with y). A unit must use at least one axis and one input.
"""
from __future__ import annotations

from keyword import iskeyword
from pathlib import Path

from gflow.expr import FUNCTIONS, ExpressionError, parse_expression
from gflow.models.potential_case import MAX_AXES
from gflow.models.two_layer_case import (
    MAX_INPUT_DIM,
    TwoLayerSpec,
    input_names,
    parse_network_tables,
    parse_train,
)
from gflow.models.units import FAMILIES
from gflow.schema import Table


def parse_unit(top: Table, t: Table, base_dir: Path) -> tuple[TwoLayerSpec, dict]:
    text = t.string("unit")
    for key in ("activation", "bias"):
        if t.has(key):
            raise t.error(key, "a unit given by `unit` has no activation or bias: write them into its expression")
    if t.has("symmetry"):
        raise t.error("symmetry", "rotation-invariant data needs a sigma(w.x + b) unit (`activation`), not `unit`")
    if top.has("data") and isinstance(top.raw("data"), dict) and "dim" in top.raw("data"):
        raise top.error("data.dim", "isotropic data in R^d needs a sigma(w.x + b) unit (`activation`), not `unit`")
    d = t.integer("input_dim", 1, minimum=1, maximum=MAX_INPUT_DIM)
    inputs = input_names(d)
    family = FAMILIES.get(text)
    if family is not None:
        params = {key: t.number(key, default, positive=True) for key, (default, _) in family.parameters.items()}
        default = family.default_axes(d)
        axes = _axes(t, inputs, default) if t.has("axes") else default
        expression = family.expression(inputs, axes, params)
        groups = family.groups(d) if axes == default else {}
    else:
        for other in FAMILIES.values():
            for key in other.parameters:
                if t.has(key):
                    raise t.error(key, f"a parameter of unit = {other.name!r}, not of a unit written as an expression")
        if not t.has("axes"):
            raise t.error("axes", f"a unit written as an expression names its axes, e.g. axes = [\"a\", \"y\"] "
                                  f"(or use a family: {', '.join(FAMILIES)})")
        axes, expression, groups = _axes(t, inputs), text, {}
    _check_unit(t, expression, inputs, axes, family is not None)
    train = parse_train(t, axes, groups)
    target, data, files = parse_network_tables(top, t, base_dir, d, False)
    if target.neurons:
        raise top.error("target.neurons", "a teacher network of sigma(w.x + b) neurons needs an activation: with "
                                          "`unit`, give [target] expression (or data with a y column)")
    return TwoLayerSpec("two_layer", axes, "", False, d, train, target, data, unit=expression,
                        family=family.name if family else ""), files


def _axes(t: Table, inputs: list[str], default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """`axes`: distinct names that can be expression variables and are not inputs (as many as a
    family's default axes, if it is one)."""
    raw = t.raw("axes")
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise t.error("axes", f"must be a non-empty list of names, got {raw!r:.60}")
    if len(raw) > MAX_AXES:
        raise t.error("axes", f"{len(raw)} axes is more than the {MAX_AXES} allowed")
    if default is not None and len(raw) != len(default):
        raise t.error("axes", f"this unit has {len(default)} axes ({', '.join(default)}), got {len(raw)}")
    for name in raw:
        if not name.isidentifier() or iskeyword(name) or name in (*FUNCTIONS, "pi", "sign"):
            raise t.error("axes", f"{name!r:.40} cannot be a variable of an expression (a name such as a, y1)")
        if name in inputs:
            raise t.error("axes", f"{name!r} is an input of the unit ({', '.join(inputs)}): give the axis another name")
    if len(set(raw)) != len(raw):
        raise t.error("axes", "names must be distinct")
    return tuple(raw)


def _check_unit(t: Table, expression: str, inputs: list[str], axes: tuple[str, ...], family: bool) -> None:
    """The unit parses in the inputs and axes, and uses at least one of each."""
    try:
        phi = parse_expression(expression, [*inputs, *axes])
    except ExpressionError as exc:
        raise t.error("unit", f"cannot parse {expression!r:.80}: {exc}") from None
    if not any(phi.uses(a) for a in axes):
        raise t.error("axes" if family else "unit", f"the unit uses none of its axes ({', '.join(axes)}): "
                                                    "nothing would be trained")
    if not any(phi.uses(x) for x in inputs):
        raise t.error("unit", f"the unit uses none of the inputs ({', '.join(inputs)}): the network would be a constant")
