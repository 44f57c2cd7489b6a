"""The mean-field ResNet (flow-based model) as a `Model`: one density per layer, one frozen layer axis.

E, Ma, Wu (2019), sec. 4; the E lectures "Gradient flow for flow-based models". Each layer l
of L carries a density rho_l of u = (a, w[, b]); training is one Wasserstein gradient flow per layer,

    d_t rho_l = div(rho_l grad V_l) + T lap rho_l,   V_l = E_x[P_{l+1} . phi(z_l, u)] + lam |u|^2 / 2

(`gflow.models.resnet_depth` holds the sweep). Solvers see the L layers as one density on a grid
(or one particle cloud) with a frozen first axis, `layer`, whose coordinate is the depth
tau_l = l / L of layer l: nothing moves along it, so each layer keeps its mass, and the joint
measure (1/L) sum_l delta_{tau_l} x rho_l has mass 1. Its free energy

    E = R + (1/L) sum_l [lam/2 int |u|^2 rho_l + T int rho_l log rho_l]

decreases along the flow: the joint flow is the Wasserstein gradient flow of E, since
delta R / delta rho_l = V_l / L.

Particles with joint weights q_j (q_j = 1/(L M) for M random particles per layer) carry the
layer coordinate in column 0; layer l's measure is sum_{j in l} L q_j delta_{u_j}. Forward Euler
on the particles with step dt is gradient descent with learning rate eta = L M dt on the loss
R of the ResNet z_{l+1} = z_l + (1/(L M)) sum_j a_j sigma(w_j.z_l + b_j), since
dR/du_j = grad V_l(u_j) / (L M).

`refresh = k` (> 1): the sweep (z_l, P_{l+1}) is redone at the first step after each snapshot
and every k steps after it, and frozen in between (`Schedule`): k = 1 is the gradient flow, large
k the method of successive approximations (each layer then descends its frozen Hamiltonian).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gflow.models.data import DataMeasure, labelled
from gflow.models.resnet_case import ResNetSpec
from gflow.grids import LAYER
from gflow.models.resnet_depth import CHUNK, Layer, Sweep, layer_gradient, layer_potential, msa_residuals, sweep
from gflow.models.units import UNITS


class Schedule:
    """When the depth sweep is redone: every evaluation (refresh = 1), or at the first step after
    a snapshot and every `refresh` steps after it, the sweep frozen in between.

    The run loop calls `begin_step(after_snapshot)` before each step (`Model.begin_step`);
    counting from the last snapshot is what lets a resumed run continue bitwise.
    """

    def __init__(self, refresh: int):
        self.refresh = refresh
        self.steps = 0
        self.sweeps = 0
        self.frozen = None

    def begin_step(self, after_snapshot: bool) -> None:
        if after_snapshot:
            self.steps = 0
        if self.steps % self.refresh == 0:
            self.frozen = None
        self.steps += 1

    def get(self, compute: Callable[[], object]):
        """The sweep to use now: computed afresh (refresh = 1, or due), else the frozen one."""
        if self.refresh == 1:
            self.sweeps += 1
            return compute()
        if self.frozen is None:
            self.sweeps += 1
            self.frozen = compute()
        return self.frozen


class ResNetModel:
    """V_l and grad V_l for the neurons of every layer, u = (tau, a, w[, b]) with tau frozen."""

    kind = "resnet"
    singular_interaction = False

    def __init__(self, spec: ResNetSpec, data: DataMeasure, target, weight_decay: float = 0.0,
                 temperature: float = 0.0):
        self.spec = spec
        self.layers = spec.layers
        self.parameter_axes = spec.axes
        self.axes = (LAYER, *spec.axes)
        self.input_dim = spec.input_dim
        self.bias = spec.bias
        unit = UNITS[spec.activation]
        self.sigma, self.dsigma, self.d2sigma = unit.sigma, unit.dsigma, unit.d2sigma
        self.target = target
        self.data = labelled(data, target)
        self.x, self.p, self.y = self.data.x, self.data.p, self.data.y
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.trained = np.array([False, *(a in spec.train for a in spec.axes)])
        self.schedule = Schedule(spec.refresh)
        #: -1 on the trained axes, 0 elsewhere: velocity = sign * grad V
        self._sign = np.where(self.trained, -1.0, 0.0)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def stateful(self) -> bool:
        """Whether the velocity depends on more than the points (a frozen sweep, refresh > 1):
        steppers then never carry a stage over to the next step."""
        return self.schedule.refresh > 1

    def begin_step(self, after_snapshot: bool = False) -> None:
        """The run loop's call before each step (the refresh schedule counts steps)."""
        self.schedule.begin_step(after_snapshot)

    # ------------------------------------------------------------------ layers of a point cloud
    def layer_index(self, u: np.ndarray) -> np.ndarray:
        """The layer l of each point, from its coordinate tau = l / L."""
        return np.clip(np.rint(u[:, 0] * self.layers), 0, self.layers - 1).astype(np.intp)

    def groups(self, u: np.ndarray) -> list[np.ndarray]:
        """The indices of the points of each layer."""
        index = self.layer_index(u)
        order = np.argsort(index, kind="stable")
        return np.split(order, np.cumsum(np.bincount(index, minlength=self.layers))[:-1])

    def effective_layers(self, u: np.ndarray, q: np.ndarray, groups) -> list[Layer]:
        """Each layer's neurons with amplitudes L q_j a_j (layer l's measure is sum_j L q_j delta)."""
        d, L = self.input_dim, self.layers
        out = []
        for idx in groups:
            v = u[idx, 1:]
            out.append(Layer((L * q[idx])[:, None] * v[:, :d], v[:, d:2 * d], v[:, -1] if self.bias else None))
        return out

    def depth_sweep(self, u: np.ndarray, q: np.ndarray, batch=None, groups=None) -> Sweep:
        x, _, y = (self.x, self.p, self.y) if batch is None else batch
        groups = self.groups(u) if groups is None else groups
        return sweep(self.effective_layers(u, q, groups), x, y, self.sigma, self.dsigma)

    # ------------------------------------------------------------------ the Model protocol
    def states(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """z_0..z_L at the inputs x (the data nodes by default), shape (L + 1, N, d)."""
        x = self.x if x is None else x
        from gflow.models.resnet_depth import forward
        z, _ = forward(self.effective_layers(u, q, self.groups(u)), x, self.sigma, 1.0 / self.layers)
        return np.stack(z)

    def network(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """f(x) = 1^T z_L(x)."""
        return self.states(u, q, x)[-1].sum(axis=1)

    def risk(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> float:
        r = self.network(u, q) - self.y
        return 0.5 * float(self.p @ (r * r))

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                 out: np.ndarray | None = None) -> np.ndarray:
        """-grad V_l(u_j) for every point in its own layer l, the layer axis and frozen axes zero."""
        groups = self.groups(u)
        frozen = self.schedule.get(lambda: (self.depth_sweep(u, q, batch, groups),
                                            self.p if batch is None else batch[1]))
        sw, p = frozen
        grad = np.zeros_like(u) if out is None else out
        grad[:, 0] = 0.0
        d, rho = self.input_dim, self.spec.msa_rho
        now = self.effective_layers(u, q, groups) if rho else None
        for l, idx in enumerate(groups):
            msa = (rho, *msa_residuals(now[l], sw, l, self.sigma, self.dsigma), self.d2sigma) if rho else None
            for s in range(0, len(idx), CHUNK):      # bounded (chunk, N) temporaries
                part = idx[s:s + CHUNK]
                grad[part, 1:] = layer_gradient(u[part, 1:], sw.z[l], sw.P[l], p, d, self.bias, self.sigma,
                                                self.dsigma, msa)
        grad[:, 1:] += self.weight_decay * u[:, 1:]
        grad *= self._sign
        return grad

    def potential(self, u: np.ndarray, q: np.ndarray) -> np.ndarray:
        """V_l(u_j) of each point in its own layer."""
        groups = self.groups(u)
        sw = self.depth_sweep(u, q, None, groups)
        out = np.empty(len(u))
        for l, idx in enumerate(groups):
            for s in range(0, len(idx), CHUNK):
                part = idx[s:s + CHUNK]
                out[part] = layer_potential(u[part, 1:], sw.z[l], sw.P[l], self.p, self.input_dim, self.bias,
                                            self.sigma)
        return out + 0.5 * self.weight_decay * np.einsum("ij,ij->i", u[:, 1:], u[:, 1:])

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        """R + lam/2 sum_j q_j |u_j|^2 over the parameter axes (q: joint weights, the 1/L inside)."""
        v = u[:, 1:]
        return risk + 0.5 * self.weight_decay * float(q @ np.einsum("ij,ij->i", v, v))

    def grid_operator(self, grid, threads: int = 1):
        from gflow.models.resnet_grid import ResNetGridOperator
        return ResNetGridOperator(self, grid)
