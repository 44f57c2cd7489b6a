"""What every mean-field network on a data measure shares, whatever its unit.

For neurons u_j with weights q_j and a data measure (x_m, p_m) with targets y_m, a network
f(x) = sum_j q_j phi(x; u_j) has the residual r = f - y at the nodes, the risk
R = 1/2 sum_m p_m r_m^2 and the energy E = R + lam/2 sum_j q_j |u_j|^2; frozen axes (not in
`train`) get zero velocity. `TwoLayerModel` (phi = a sigma(w.x + b)) and `UnitNetworkModel` (any
phi) add the unit: `network`, `potential` and `gradient`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gflow.models.data import DataMeasure, labelled


class DataNetwork:
    """The data, the regularisation and the functionals built from the residual."""

    kind = "two_layer"
    #: V has no pair interaction: no nearest-neighbour step cap for particles
    singular_interaction = False

    def __init__(self, spec, data: DataMeasure, target: Callable[[np.ndarray], np.ndarray] | None,
                 weight_decay: float = 0.0, temperature: float = 0.0):
        self.spec = spec
        self.axes = spec.axes
        self.input_dim = spec.input_dim
        self.target = target
        #: the data measure with its targets: what SGD draws minibatches from
        self.data = labelled(data, target)
        self.x, self.p, self.y = self.data.x, self.data.p, self.data.y
        self.weight_decay = weight_decay
        self.temperature = temperature
        #: trained[i] says whether axis i moves
        train = set(spec.train)            # a set: a full model in R^d has 10^5 axes
        self.trained = np.array([a in train for a in spec.axes])

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def network(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def residual(self, u: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.network(u, q) - self.y

    def risk_from_residual(self, r: np.ndarray) -> float:
        return 0.5 * float(self.p @ (r * r))

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        """R + lam/2 int |u|^2 rho (the entropy part is the discretisation's business)."""
        return risk + 0.5 * self.weight_decay * float(q @ np.einsum("ij,ij->i", u, u))
