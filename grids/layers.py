"""The layer axis of a layered model (the resnet): L cells of width 1/L centred on the depths l / L.

A layered model's L parameter densities live on one grid whose first axis, named `LAYER`, is
frozen (nothing moves along it): cell l is layer l, at depth tau_l = l / L of the unit depth
interval, and its width 1/L makes sum rho dV = (1/L) sum_l int rho_l du the mean layer mass.
"""
from __future__ import annotations

#: the name of the layer axis (grids, particles, run files)
LAYER = "layer"


def layer_bounds(layers: int) -> tuple[float, float]:
    """The layer axis' box: L cells of width 1/L whose centres are the depths l / L."""
    h = 1.0 / layers
    return (-0.5 * h, 1.0 - 0.5 * h)
