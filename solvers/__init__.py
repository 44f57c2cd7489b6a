"""Solvers: one stepper class per kind, looked up in a plain registry (no import magic).

Modules are imported on first use so that a run of one solver never pays for the imports
of another (FiPy is slow to import).
"""
from __future__ import annotations

from importlib import import_module

from gflow.solver_options import SOLVERS

#: kind -> "module:Class", from the one solver registry (`gflow.solver_options.SOLVERS`)
REGISTRY = {name: kind.stepper for name, kind in SOLVERS.items()}


def stepper_class(kind: str):
    try:
        module, name = REGISTRY[kind].split(":")
    except KeyError:
        raise KeyError(f"solver {kind!r} is not implemented yet (have: {', '.join(REGISTRY)})") from None
    return getattr(import_module(module), name)


def make_stepper(kind: str, problem, options=None):
    """A stepper of `kind` for `problem`; missing options take their defaults."""
    return stepper_class(kind)(problem, options or {})
