"""The `potential` model kind's case table and builder (aggregation-diffusion equations).

    [model]  kind = "potential", axes = ["x", "y"], potential = "P(u)" (default "0"),
             interaction = "W(r)" (optional; r = |u - v|)

Every axis moves; the model has no data, so no `[target]` or `[data]` table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gflow.models.base import ModelKind
from gflow.schema import Table, check_expression

#: as many axes as a two-layer model may have (a, w1..w64, b) and more than any grid can
#: resolve (MAX_CELLS = 2^27 cells is 27 axes of two cells)
MAX_AXES = 66


@dataclass(frozen=True)
class PotentialSpec:
    kind: str
    axes: tuple[str, ...]
    train: tuple[str, ...]
    potential: str = "0"               # P(u)
    interaction: str | None = None     # W(r)


def parse(top: Table, t: Table, base_dir: Path) -> tuple[PotentialSpec, dict]:
    axes = t.raw("axes")
    if (not isinstance(axes, list) or not 1 <= len(axes) or not all(isinstance(a, str) and a.isidentifier()
                                                                   for a in axes)):
        raise t.error("axes", f"must be a non-empty list of names, got {axes!r}")
    if len(axes) > MAX_AXES:
        raise t.error("axes", f"{len(axes)} axes is more than the {MAX_AXES} allowed")
    if len(set(axes)) != len(axes) or {"r", "pi"} & set(axes):
        raise t.error("axes", "names must be distinct and not 'r' or 'pi'")
    potential = t.string("potential", "0")
    check_expression(t, "potential", potential, axes)
    interaction = t.string("interaction", None) if t.has("interaction") else None
    if interaction is not None:
        check_expression(t, "interaction", interaction, ["r"])
    for absent in ("activation", "bias", "input_dim", "train"):
        if t.has(absent):
            raise t.error(absent, "only two_layer models have this key")
    for absent in ("target", "data"):
        if top.has(absent):
            raise top.error(absent, "only two_layer models have this table")
    return PotentialSpec("potential", tuple(axes), tuple(axes), potential, interaction), {}


def build(case):
    from gflow.models.potential import PotentialModel

    return PotentialModel(case.model, case.weight_decay, case.temperature)


KIND = ModelKind("potential", parse, build)
