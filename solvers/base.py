"""The one small interface every solver implements: make a stepper, the run loop drives it.

A stepper owns its discrete state (a grid density, particles, ...). The run loop
(`gflow.solvers.loop`) asks it to `step` no further than a given time, and to `observe` the
quantities a snapshot stores; snapshots, progress and checks never live in a solver.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from gflow.snapshots import Observation
from gflow.solver_options import SOLVERS, complete


class Stepper(ABC):
    """Advance one discretisation of d_t rho = div(rho grad V[rho]) + T lap rho."""

    kind: ClassVar[str]
    #: a conserving scheme's mass may not drift beyond round-off (the run loop checks it)
    conserves_mass: ClassVar[bool] = True
    #: per-particle weights for Lagrangian solvers, else None
    weights: np.ndarray | None = None
    #: whether `weights` change during the run (birth-death's "weights" scheme, Fisher-Rao masses):
    #: each `Observation` then carries them (`weights`) and the run file stores them per snapshot
    #: (`snapshot_weights`); `gflow run --resume` holds the last row to the restored weights
    varying_weights: bool = False
    #: attributes of the snapshot file's `density` dataset (what it holds, where that needs saying)
    density_attrs: ClassVar[dict[str, str]] = {}
    #: the time of the state: the run loop sets it before each step (a reaction's stop time reads it)
    time: float = 0.0

    def __init__(self, problem, options: dict[str, Any]):
        self.problem = problem
        #: every option of this kind: the case's, the rest at the registry's defaults
        self.options = complete(self.kind, options) if self.kind in SOLVERS else dict(options)

    @abstractmethod
    def step(self, dt_max: float, fixed: bool = False) -> float:
        """Advance by at most dt_max (less where stability demands); return the step taken.

        `fixed` says that dt_max is the user's fixed step ([time].dt, or the rest of it up to a
        snapshot time) rather than only the time left to the next snapshot: a stepper with a
        step of its own (the particles' learning rate) takes dt_max itself then.
        """

    @abstractmethod
    def observe(self) -> Observation:
        """The current snapshot quantities."""

    def extra_names(self) -> tuple[str, ...]:
        """Names of the per-snapshot extras `observe` reports."""
        return ()

    def summary(self) -> str:
        """Solver-specific words for the end-of-run line (e.g. sweeps, rejections)."""
        return ""

    # -------------------------------------------------------------- restart (gflow run --resume)
    def restart_state(self) -> dict[str, Any]:
        """What, beside the snapshot itself, a resumed run needs to continue exactly.

        Values are numpy arrays or JSON-able scalars and strings. Grid solvers whose state
        is the snapshot's density need nothing more.
        """
        return {}

    def state_problem(self, state: dict[str, Any]) -> str | None:
        """Why a saved `restart` state, though well formed, was made by another set-up of this
        solver (say what to change), or None; `gflow run --resume` asks before anything else."""
        return None

    def restore(self, density: np.ndarray, positions: np.ndarray | None, state: dict[str, Any]) -> None:
        """Continue from a snapshot (and `restart_state`), as if the run had never stopped."""
        if not hasattr(self, "rho"):
            raise NotImplementedError(f"the {self.kind} solver cannot resume")
        self.rho = np.array(density, dtype=float)


def grid_of(problem):
    """The case grid, refused in one line where a grid solver cannot work on it (D > 3)."""
    grid = problem.grid
    per_layer = grid.ndim - (1 if problem.layers else 0)
    if per_layer > 3:
        raise ValueError(f"grid solvers handle 1 to 3 axes{' per layer' if problem.layers else ''}; "
                         f"this case has {per_layer}")
    return grid

