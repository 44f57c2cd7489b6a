"""Model kinds behind one protocol (`gflow.models.base.Model`), looked up in a plain registry.

A new model kind lives in one place: a module with its case-table parser and builder (a
`ModelKind` named KIND), its model class (the `Model` protocol) and its grid operator, plus
one line here. Solvers, the case reader and postprocessing never ask which kind a model is.
"""
from __future__ import annotations

from importlib import import_module

from gflow.models.base import GridOperator, Model, ModelKind

#: kind name -> module holding its `KIND` (a `ModelKind`); imported on first use
REGISTRY = {
    "two_layer": "gflow.models.two_layer_case",
    "potential": "gflow.models.potential_case",
    "resnet": "gflow.models.resnet_case",
}

__all__ = ["REGISTRY", "GridOperator", "Model", "ModelKind", "model_kind", "build_model"]


def model_kind(name: str) -> ModelKind:
    """The registered kind `name` (KeyError names the known kinds)."""
    try:
        module = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model kind {name!r} (have: {', '.join(REGISTRY)})") from None
    return import_module(module).KIND


def build_model(case) -> Model:
    """The model of a checked case, with its mass penalty (`[regularization] mass_penalty`,
    `gflow.models.mass_penalty`) where it has one."""
    from gflow.models.mass_penalty import with_mass_penalty
    return with_mass_penalty(model_kind(case.model.kind).build(case), getattr(case, "mass_penalty", 0.0))
