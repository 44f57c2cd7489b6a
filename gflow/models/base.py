"""The one Model protocol every solver uses, and the registry entry of a model kind.

A model is the energy of a density rho on its parameter axes u = (u_1..u_D):

    d_t rho = div(rho grad V[rho]) + T lap rho,    V = delta E / delta rho,

and a solver needs only what this protocol lists: the axes and which of them move
(`trained`), the velocity -grad V at weighted points (the Lagrangian path), the risk and
energy of weighted points, and on a grid its `GridOperator` (the Eulerian path). No solver
asks what kind a model is: a capability that only some kinds have is an attribute here
(`data`, `singular_interaction`) or a method of the grid operator (`velocity_factors`).

A model kind (`ModelKind`) is the case-file side of a model: it parses the `[model]` table
(and any table it owns, such as `[target]` and `[data]`) into a frozen spec, and builds the
model from a checked case. The registry in `gflow.models` maps kind names to these entries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class GridOperator(Protocol):
    """A model evaluated on one Cartesian grid (cell averages rho of shape grid.shape).

    Optional, for the fused finite-volume stage: `velocity_factors(m1)` and the attributes
    `a`, `wb_shape` of a velocity separable in the first axis (`TwoLayerGridOperator`).
    """

    def face_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k on the faces normal to axis k (n_k + 1 along it), None where axis k is frozen."""

    def centre_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k at the cell centres, each of the grid's shape, None where axis k is frozen."""

    def potential(self, rho: np.ndarray) -> np.ndarray:
        """V at the cell centres."""

    def risk(self, rho: np.ndarray) -> float:
        """R[rho] (SPEC.md: the model's loss functional)."""

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        """E[rho] = R + lam/2 int |u|^2 rho + T int rho log rho."""


@runtime_checkable
class Model(Protocol):
    """What every solver may ask of a model (the two-layer network, the potential model, ...).

    Weighted points are u of shape (n, D) with weights q of shape (n,): the measure
    rho = sum_j q_j delta_{u_j} (particles: q_j = 1/m; a grid: cell masses at centres).
    """

    kind: str
    axes: tuple[str, ...]
    #: trained[k]: axis k moves (frozen axes neither drift nor diffuse)
    trained: np.ndarray
    weight_decay: float
    temperature: float
    #: the data measure (x, p, y) of E_x, or None for models without data (no minibatches)
    data: Any
    #: whether V has a pair interaction W(|u - v|) singular at r = 0 (W or W' not finite there:
    #: -log r, r^-3): only then can explicit particle steps jump past a neighbour, so only then
    #: do the particle solvers take their nearest-neighbour step cap (`gflow.solvers.particle`)
    singular_interaction: bool

    @property
    def ndim(self) -> int:
        """D, the number of axes."""

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                 out: np.ndarray | None = None) -> np.ndarray:
        """-grad V(u_j; rho) at the points themselves, frozen axes zero, shape (n, D).

        `batch` = (x, p, y) replaces the data measure (SGD); `kernel` = "numba" takes the
        model's fused kernel where it has one (else its numpy path; "numba-float32" its
        float32 variant, two_layer only), "numpy" the numpy path; `out` may receive the result.
        """

    def risk(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> float:
        """R[rho] for the weighted points."""

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        """R + lam/2 sum_j q_j |u_j|^2 (an entropy is the discretisation's business)."""

    def grid_operator(self, grid, threads: int = 1) -> GridOperator:
        """The model evaluated on `grid` (FFT threads where it convolves)."""

    # Optional, for layered models (the resnet; docs/architecture.md): layers (L), begin_step(after_snapshot)
    # (called by the run loop before each step) and stateful (the velocity depends on a schedule's
    # frozen state too: no stage is reused across steps).
    # Optional, for rotation-invariant data (docs/symmetry.md): case_coordinates(u) and lift(v, rng)
    # (particles with more coordinates than the case's axes, seen and drawn through them),
    # draw_batch(size, rng) (fresh minibatches from a data law) and project(f) (the residual from
    # the network's values at the data nodes, where it is not f - y).
    # Optional, for birth-death (`gflow.solvers.birth_death`, docs/birth_death.md) on particles:
    #   potential_at(u, q, kernel="numba") -> V(u_j; sum_k q_k delta_{u_k}) at the weighted points
    #   themselves, shape (n,); the particle and blob solvers refuse birth-death without it.
    # Optional, for models that are networks of an input x (plots draw f(x)):
    #   input_dim: int, target (f* or None), x and y (the data nodes and targets),
    #   network(u, q, x) -> f(x) = sum_j q_j phi(x; u_j) at the points x (n, input_dim).


@dataclass(frozen=True)
class ModelKind:
    """A registered model kind: its case-file parser and its builder.

    parse(top, model_table, base_dir) -> (spec, resolved_files)
        reads the `[model]` table (a `gflow.schema.Table`) and any top-level table the kind
        owns; `spec` is a frozen dataclass with at least `kind`, `axes` and `train`;
        `resolved_files` maps dotted case keys to the absolute paths they name, so that the
        case text stored in a snapshot finds them again from anywhere.
    build(case) -> Model
        the model of a checked case (its spec is `case.model`).
    """

    name: str
    parse: Callable[..., tuple[Any, dict[str, Any]]]
    build: Callable[[Any], Model]
