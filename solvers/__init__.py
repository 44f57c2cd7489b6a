"""Solvers: one stepper class per kind, looked up in a plain registry (no import magic).

Modules are imported on first use so that a run of one solver never pays for the imports
of another (FiPy is slow to import).
"""
from __future__ import annotations

from importlib import import_module

#: kind -> "module:Class"
REGISTRY = {
    "fv": "gflow.solvers.fv:FiniteVolumeStepper",
    "spectral": "gflow.solvers.spectral:SpectralStepper",
    "fipy": "gflow.solvers.fipy_solver:FiPyStepper",
    "particle": "gflow.solvers.particle:ParticleStepper",
    "blob": "gflow.solvers.blob:BlobStepper",
}


def stepper_class(kind: str):
    try:
        module, name = REGISTRY[kind].split(":")
    except KeyError:
        raise KeyError(f"solver {kind!r} is not implemented yet (have: {', '.join(REGISTRY)})") from None
    return getattr(import_module(module), name)


def make_stepper(kind: str, problem, options):
    return stepper_class(kind)(problem, options)
