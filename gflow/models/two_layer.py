"""The mean-field two-layer network: V, grad V, risk and energy for a weighted set of neurons.

For neurons u = (a, w, b) with weights q_j (a density's quadrature weights, or 1/m for
particles) the network is f(x) = sum_j q_j a_j sigma(w_j.x + b_j) and

    R   = 1/2 E_x (f - f*)^2,
    V(u) = a g(w, b) + lam |u|^2 / 2,    g(w, b) = E_x[r(x) sigma(w.x + b)],   r = f - f*,

with the exact gradient dV/da = g + lam a, dV/dw = a E_x[r sigma'(w.x + b) x] + lam w,
dV/db = a E_x[r sigma'(w.x + b)] + lam b (BACKGROUND.md, "The same computation, cheaply").
Frozen axes (not in `train`) get zero velocity: `train = ["a"]` is the random-feature model.

This module evaluates these on any point set in chunks of neurons, so memory stays bounded
for millions of particles; `gflow.models.two_layer_grid` holds the separable grid fast path.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gflow.models.data import DataMeasure
from gflow.models.data_network import DataNetwork
from gflow.models.two_layer_case import TwoLayerSpec
from gflow.models.units import UNITS

#: neurons per chunk: keeps each (chunk, M) temporary near a few tens of MB
CHUNK = 1 << 15

#: the `kernel` names of the fused numba kernel -> the precision of its pair work
#: (`two_layer_kernels.ParticleKernel`); any other name is the numpy path
FUSED_KERNELS = {"numba": "float64", "numba-float32": "float32"}


class TwoLayerModel(DataNetwork):
    """V and its gradient for u = (a, w_1..w_d[, b]) with a fixed data measure."""

    def __init__(self, spec: TwoLayerSpec, data: DataMeasure, target: Callable[[np.ndarray], np.ndarray] | None,
                 weight_decay: float = 0.0, temperature: float = 0.0):
        super().__init__(spec, data, target, weight_decay, temperature)
        self.bias = spec.bias
        unit = UNITS[spec.activation]
        self.sigma, self.dsigma, self.d2sigma = unit.sigma, unit.dsigma, unit.d2sigma

    def _preactivation(self, u: np.ndarray, x: np.ndarray) -> np.ndarray:
        # the inputs are the data nodes' columns (input_dim of them, but for a reduced model's rule)
        z = u[:, 1:1 + x.shape[1]] @ x.T
        if self.bias:
            z += u[:, -1:]
        return z

    def network(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """f(x) = sum_j q_j a_j sigma(w_j.x + b_j) at the data nodes (or at the given x)."""
        x = self.x if x is None else x
        f = np.zeros(len(x))
        for s in range(0, len(u), CHUNK):
            uc = u[s:s + CHUNK]
            f += (q[s:s + CHUNK] * uc[:, 0]) @ self.sigma(self._preactivation(uc, x))
        return f

    def risk(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> float:
        """R of the network of the weighted neurons (through the fused kernel where it serves)."""
        if kernel in FUSED_KERNELS and self.fused():
            return self.risk_from_residual(self._kernel(kernel).residual(u, q))
        return self.risk_from_residual(self.residual(u, q))

    def fused(self) -> bool:
        """Whether the fused numba kernel serves this model (numba installed, its unit has a kernel code)."""
        from gflow.models.two_layer_kernels import has_kernel   # numba loads only when asked for
        return has_kernel(self.spec.activation)

    def _kernel(self, kernel: str = "numba"):
        from gflow.models.two_layer_kernels import kernel_for
        return kernel_for(self, FUSED_KERNELS[kernel])

    def potential(self, u: np.ndarray, r: np.ndarray) -> np.ndarray:
        """V at the points u, given the residual r of the current density."""
        pr = self.p * r
        out = np.empty(len(u))
        for s in range(0, len(u), CHUNK):
            uc = u[s:s + CHUNK]
            out[s:s + CHUNK] = uc[:, 0] * (self.sigma(self._preactivation(uc, self.x)) @ pr)
        return out + 0.5 * self.weight_decay * np.einsum("ij,ij->i", u, u)

    def potential_at(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> np.ndarray:
        """V(u_j; sum_k q_k delta_{u_k}) at the weighted points themselves (birth-death's rate,
        `gflow.solvers.birth_death`, which refuses T > 0): the fused kernel's (float64) where it
        serves, ~8x faster than `potential` of the numpy residual."""
        if kernel in FUSED_KERNELS and self.fused():
            return self._kernel("numba").potential(u, q)
        return self.potential(u, self.residual(u, q))

    def gradient(self, u: np.ndarray, r: np.ndarray, p: np.ndarray | None = None,
                 x: np.ndarray | None = None) -> np.ndarray:
        """grad V at the points u (all axes, frozen ones included), shape (n, D).

        `p` and `x` replace the data weights and nodes (a minibatch, say); r must match them.
        """
        p = self.p if p is None else p
        x = self.x if x is None else x
        pr = p * r
        # columns: E[r sigma' x_k] for each input coordinate, then E[r sigma'] for the bias
        moments = np.concatenate([x * pr[:, None], pr[:, None]], axis=1)
        d = x.shape[1]
        grad = np.empty_like(u)
        for s in range(0, len(u), CHUNK):
            uc = u[s:s + CHUNK]
            z = self._preactivation(uc, x)
            a = uc[:, :1]
            grad[s:s + CHUNK, 0] = self.sigma(z) @ pr
            dm = self.dsigma(z) @ moments
            grad[s:s + CHUNK, 1:1 + d] = a * dm[:, :d]
            if self.bias:
                grad[s:s + CHUNK, -1] = a[:, 0] * dm[:, d]
        return grad + self.weight_decay * u

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                 out: np.ndarray | None = None) -> np.ndarray:
        """-grad V(u_j; sum_j q_j delta_{u_j}) with frozen axes held still.

        `batch` = (x, p, y) replaces the data measure (SGD). kernel = "numba" takes the fused
        kernel of `two_layer_kernels` where the unit has one (numba installed), "numba-float32"
        the same kernel computing in float32 (`FUSED_KERNELS`); otherwise, and for kernel =
        "numpy", the numpy path of this class. `out` may receive the result.
        """
        if kernel in FUSED_KERNELS and self.fused():
            return self._kernel(kernel).velocity(u, q, batch, out)
        if batch is None:
            grad = self.gradient(u, self.residual(u, q))
        else:
            x, p, y = batch
            grad = self.gradient(u, self.network(u, q, x) - y, p, x)
        return -grad * self.trained

    def risk_weight_gradient(self, path: list[np.ndarray], steps: list[float], q: np.ndarray) -> np.ndarray:
        """dR(t) / dq_j along the forward-Euler path u^0..u^N of neurons weighted q: the first
        variation psi_t of the risk at the initial nodes (`two_layer_fluctuation`)."""
        from gflow.models.two_layer_fluctuation import risk_weight_gradient
        return risk_weight_gradient(self, path, steps, q)

    def initial_bias(self, u: np.ndarray, q: np.ndarray) -> float:
        """m (E[R_m(0)] - R(0)) for m i.i.d. neurons from the law the quadrature (u, q) integrates:
        (1/2) E_x Var phi(x; u), exact for every m (`two_layer_fluctuation.initial_bias`)."""
        from gflow.models.two_layer_fluctuation import initial_bias
        return initial_bias(self, u, q)

    def separable_features(self, coords: list[np.ndarray], axis: int | None = None) -> np.ndarray:
        """psi(x; v) = sigma(w.x + b) (axis None) or d psi / d v_axis (sigma'(w.x + b) x_k for
        w_k, sigma'(w.x + b) for b) for every v = (w, b) in the product of `coords` (one 1-D array
        per axis 1..D-1) at the data nodes, shape (N_v, M): the features of the separable grid
        path (`TwoLayerGridOperator`), since phi = a psi."""
        mesh = np.meshgrid(*coords, indexing="ij")
        # the inputs are the data nodes' columns (input_dim of them, but for a reduced model's rule)
        z = sum(mesh[k].reshape(-1, 1) * self.x[:, k] for k in range(self.x.shape[1]))
        if self.bias:
            z = z + mesh[-1].reshape(-1, 1)
        if axis is None:
            return self.sigma(z)
        ds = self.dsigma(z)
        k = axis - 1
        return ds * self.x[:, k] if k < self.x.shape[1] else ds

    def grid_operator(self, grid, threads: int = 1):
        """The separable grid evaluation (`TwoLayerGridOperator`); it needs no FFT threads."""
        from gflow.models.two_layer_grid import TwoLayerGridOperator
        return TwoLayerGridOperator(self, grid)
