"""What each dataset of a run file holds, as the `long_name` and `units` attributes of the CF
conventions, which xarray shows and plotting tools use for their labels.

gflow's quantities are dimensionless (a network's parameters, its training time in units of the
learning rate times the step count, a risk in the target's units squared over a target of order
one), so their units are CF's "1"; `wall_time` is in seconds. The `component` scale holds text
(the axis names) and, as CF's labels, has a `long_name` but no units.
"""
from __future__ import annotations

import re

DIMENSIONLESS = "1"

#: dataset -> long_name; units are DIMENSIONLESS unless UNITS says otherwise
LONG_NAMES = {
    "time": "training time t (gradient-flow time: learning rate x steps)",
    "risk": "risk R[rho_t] (two_layer, resnet: 1/2 E_x (f - f*)^2; potential: int P rho + 1/2 int int W rho rho)",
    "energy": "free energy E[rho_t] (the risk, its regularisation and T int rho log rho)",
    "mass": "mass int rho du (for particles: the weight inside the grid's box)",
    "density": "density rho(u, t) of the parameters at the cell centres (sum x cell volume = mass)",
    "positions": "particle positions u_j(t) on the axes",
    "weights": "particle weights q_j (summing to 1)",
    "snapshot_weights": "particle weights q_j(t) at each snapshot (birth-death: summing to 1; Fisher-Rao: masses)",
    "particle": "particle index j",
    "component": "axis of u a position lies along",
    "layer": "layer depth tau_l = l / L (one cell per layer)",
    "layer_mass": "mass of each layer, int rho_l du (1 when a layer keeps its mass)",
    "outside_mass": "weight of the particles outside the grid's box (mass + outside_mass = 1)",
    "risk_fluctuation": "predicted sqrt(m) x standard deviation of the risk of m particles",
    "min_density": "smallest stored density value (a spectral run is never clipped)",
    "negative_mass": "mass of the negative part of the stored density",
    "edge_density": "largest |density| on the box's boundary cells over max |density|",
    "wall_time": "wall-clock time since the run began (summed over resumed runs)",
}

UNITS = {"wall_time": "s", "component": None}

#: what an axis name means (two_layer and resnet; a potential model's axes are its own)
_AXES = ((r"a\d*", "output weight"), (r"w\d*", "input weight"), (r"b", "bias"),
         (r"w_par", "input weight along the data's distinguished direction"),
         (r"w_perp", "input weight across it"), (r"w_norm", "input weight's norm"))


def axis_long_name(name: str) -> str:
    """`a1 (output weight)`, or `x (axis)` for a name gflow gives no meaning."""
    meaning = next((m for pattern, m in _AXES if re.fullmatch(pattern, name)), "axis")
    return f"{name} ({meaning}, cell centres)"


def attributes(name: str, axes=()) -> dict[str, str]:
    """The `long_name` and `units` attributes of dataset `name` of a run on `axes`."""
    if name in LONG_NAMES:
        long_name = LONG_NAMES[name]
    elif name in axes:
        long_name = axis_long_name(name)
    else:
        long_name = f"{name} (a solver's per-snapshot number)"
    units = UNITS.get(name, DIMENSIONLESS)
    return {"long_name": long_name} if units is None else {"long_name": long_name, "units": units}
