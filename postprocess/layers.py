"""Layered runs (the `resnet` kind) one layer at a time, as postprocessing sees them.

The reader presents a layered run with a first, frozen axis "layer" whose cell centres are
the depths tau_l = l/L (`Run.layers` = L): density (L, n_1..n_D) holding each layer's own
density rho_l (int rho_l du = 1 over the parameter axes), positions (L M, 1 + D) given layer
by layer behind their depth, joint weights (L M,) summing to 1. Nothing moves along "layer",
so a distance between two layered runs is a distance per layer over the parameter axes
(E, Ma, Wu 2019, "Machine learning from a continuous viewpoint": one Wasserstein gradient
flow of rho_tau per depth tau), and a layered run is drawn as the marginal density of each
parameter against depth.

`layer_view(run)` is one layer of a run as an unlayered `Run` (the parameter axes, one
layer's weights summing to 1), and `layer_snapshots(run, snap)` splits one snapshot into its
layers' snapshots: the unlayered distance code then applies to each layer unchanged. A view
shares its file with the run; its own `snapshot()` does not apply (the file holds every
layer): its snapshots come from `layer_snapshots` only.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gflow.errors import InputError
from gflow.grids import LAYER
from gflow.snapshots import Run, Snapshot
from gflow.postprocess.runs import faces, marginal


def depths(run: Run) -> np.ndarray:
    """The depths tau_l = l/L of a layered run's layers (its "layer" coordinates)."""
    return np.asarray(run.coordinates[0], dtype=float)


def layer_view(run: Run) -> Run:
    """Any one layer of a layered run as an unlayered run over the parameter axes.

    Every layer has the same grid and the same particle count and weights (SPEC.md stores one
    layer's weights), so one view stands for all; `layer_snapshots` gives each layer's data.
    """
    weights = None
    if run.weights is not None:
        m = len(run.weights) // run.layers
        weights = np.asarray(run.weights[:m], dtype=float) * run.layers     # one layer's, summing to 1
    return dataclasses.replace(run, axes=tuple(run.axes[1:]), coordinates=tuple(run.coordinates[1:]),
                               weights=weights, layers=None)


def layer_snapshots(run: Run, snap: Snapshot) -> list[Snapshot]:
    """Snapshot `snap` of a layered run as one unlayered snapshot per layer (parameter axes only)."""
    L = run.layers
    if snap.positions is None:
        return [Snapshot(snap.time, snap.density[l]) for l in range(L)]
    m = len(snap.positions) // L
    # each layer's weights, summing to 1 as `layer_view`'s (the joint ones are 1/L per layer)
    q = [None if snap.weights is None else snap.weights[l * m:(l + 1) * m] * L for l in range(L)]
    return [Snapshot(snap.time, snap.density[l], snap.positions[l * m:(l + 1) * m, 1:], q[l]) for l in range(L)]


def check_same_layers(run_a: Run, run_b: Run) -> None:
    """Two layered runs compare layer by layer only with the same layers at the same depths."""
    if run_a.layers != run_b.layers or not np.allclose(depths(run_a), depths(run_b), rtol=0, atol=1e-12):
        raise InputError(f"{run_b.path}: its {run_b.layers or 0} layers at depths "
                         f"{np.round(depths(run_b), 6).tolist()} are not {run_a.path}'s {run_a.layers or 0} "
                         f"at {np.round(depths(run_a), 6).tolist()}: layered runs compare layer by layer")


def depth_marginal(run: Run, snap: Snapshot, axis: int) -> np.ndarray:
    """(L, n_axis): the marginal density of parameter `axis` (an index into run.axes, >= 1) in each layer.

    The joint (layer, axis) marginal divided by the layer width 1/L, which the cell volumes
    hold: each row integrates to the layer's mass (1) over the parameter axis.
    """
    if not run.layers or run.axes[0] != LAYER or not 1 <= axis < len(run.axes):
        raise ValueError(f"axis {axis} is not a parameter axis of a layered run")
    return marginal(snap.density, faces(run), (0, axis))
