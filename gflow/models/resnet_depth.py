"""The depth sweep of the mean-field ResNet: forward states, backward costates, per-layer V.

E, Ma, Wu, "Machine learning from a continuous viewpoint" (2019), sec. 4; Li, Chen, Tai, E,
JMLR 18 (2018), eqs. 3-5. Forward Euler in depth with step h = 1/L,

    z_0 = x,   z_{l+1} = z_l + h F_l(z_l),   F_l(z) = E_{u ~ rho_l} phi(z, u),   f(x) = 1^T z_L,

with phi(z, u) = a sigma(w.z + b), a, w in R^d. The loss R = 1/2 E_x (f - f*)^2 has the exact
discrete adjoint (back-propagation) P_l = dR_x / dz_l:

    P_L = (f - f*) 1,   P_l = P_{l+1} + h J_l(z_l)^T P_{l+1},   J_l = dF_l / dz,

and the first variation of R with respect to layer l's density, scaled to the continuum
(delta R / delta rho_l = h V_l),

    V_l(u) = E_x[P_{l+1} . phi(z_l, u)] + lam |u|^2 / 2,

whose gradient is grad_a V = E_x[P_{l+1} sigma(w.z_l + b)] + lam a,
grad_w V = E_x[(a.P_{l+1}) sigma'(w.z_l + b) z_l] + lam w, grad_b V = E_x[(a.P_{l+1}) sigma'] + lam b.

A layer's density enters only through its "effective neurons" (A_j, W_j, B_j) with
F_l(z) = sum_j A_j sigma(W_j.z + B_j): particles with weights q_j (per layer, summing to 1)
have A_j = q_j a_j; a grid density has one neuron per (w, b) cell with A = int a rho da dw db.
Each layer costs two products of size N x n (data x neurons): one forward, one backward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


#: neurons per chunk of a layer: keeps each (N, chunk) temporary near a few tens of MB
CHUNK = 1 << 12


@dataclass
class Layer:
    """The effective neurons of one layer: F(z) = sum_j A_j sigma(W_j.z + B_j)."""

    A: np.ndarray            # (n, d)
    W: np.ndarray            # (n, d)
    B: np.ndarray | None     # (n,) or None (no bias)

    def preactivation(self, z: np.ndarray) -> np.ndarray:
        pre = z @ self.W.T
        if self.B is not None:
            pre += self.B
        return pre

    def chunks(self):
        """The layer as slices of at most CHUNK neurons (memory stays bounded for any M)."""
        if len(self.A) <= CHUNK:
            yield self
            return
        for s in range(0, len(self.A), CHUNK):
            yield Layer(self.A[s:s + CHUNK], self.W[s:s + CHUNK], None if self.B is None else self.B[s:s + CHUNK])

    def field(self, z: np.ndarray, sigma) -> np.ndarray:
        """F(z) = sum_j A_j sigma(W_j.z + B_j) at every datum, shape (N, d)."""
        return sum(sigma(c.preactivation(z)) @ c.A for c in self.chunks())


@dataclass
class Sweep:
    """States z_0..z_L (each (N, d)) and costates P_1..P_L of one forward/backward sweep.

    `P[l]` is P_{l+1}, the costate layer l's V pairs with; `residual` is f - f* at the data.
    """

    z: list[np.ndarray]
    P: list[np.ndarray]
    residual: np.ndarray
    #: each layer's F_l(z_l) and J_l(z_l)^T P_{l+1} in the sweep (the extended MSA's references)
    F: list[np.ndarray]
    JtP: list[np.ndarray]


def forward(layers: list[Layer], x: np.ndarray, sigma, h: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """z_0 = x, z_{l+1} = z_l + h F_l(z_l); returns the states and the F_l(z_l)."""
    z, Fs = [np.asarray(x, dtype=float)], []
    for layer in layers:
        F = layer.field(z[-1], sigma)
        Fs.append(F)
        z.append(z[-1] + h * F)
    return z, Fs


def jacobian_t(layer: Layer, z: np.ndarray, P: np.ndarray, dsigma) -> np.ndarray:
    """J^T P = sum_j sigma'(W_j.z + B_j) W_j (A_j . P) at every datum, shape (N, d)."""
    return sum((dsigma(c.preactivation(z)) * (P @ c.A.T)) @ c.W for c in layer.chunks())


def backward(layers: list[Layer], z: list[np.ndarray], P_last: np.ndarray, dsigma,
             h: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """P_L = P_last, P_l = P_{l+1} + h J_l^T P_{l+1}; returns [P_1, ..., P_L] (P[l] = P_{l+1})
    and the J_l^T P_{l+1}."""
    L = len(layers)
    P, JtP = [None] * L, [None] * L
    current = P_last
    for l in range(L - 1, -1, -1):
        P[l] = current
        JtP[l] = jacobian_t(layers[l], z[l], current, dsigma)
        current = current + h * JtP[l]
    return P, JtP


def sweep(layers: list[Layer], x: np.ndarray, y: np.ndarray, sigma, dsigma) -> Sweep:
    """One forward and one backward sweep for the data (x, y)."""
    h = 1.0 / len(layers)
    z, Fs = forward(layers, x, sigma, h)
    r = z[-1].sum(axis=1) - y
    P, JtP = backward(layers, z, np.repeat(r[:, None], x.shape[1], axis=1), dsigma, h)
    return Sweep(z, P, r, Fs, JtP)


def msa_residuals(layer: Layer, sw: Sweep, l: int, sigma, dsigma) -> tuple[np.ndarray, np.ndarray]:
    """The extended MSA's feasibility errors of layer l's current neurons against the sweep's,
    with z_l and P_{l+1} frozen: e = F_l(z_l; rho) - F_l(z_l; rho^k) and
    e' = J_l(rho)^T P_{l+1} - J_l(rho^k)^T P_{l+1}, each (N, d)."""
    z, P = sw.z[l], sw.P[l]
    e = layer.field(z, sigma) - sw.F[l]
    return e, jacobian_t(layer, z, P, dsigma) - sw.JtP[l]


def layer_gradient(u: np.ndarray, z: np.ndarray, P: np.ndarray, p: np.ndarray, d: int, bias: bool,
                   sigma, dsigma, msa=None) -> np.ndarray:
    """grad V_l without weight decay at the parameter points u (n, D) = (a, w[, b]), from
    the layer's state z_l (N, d), costate P_{l+1} (N, d) and data weights p (N,).

    msa = (rho, e, e', sigma''): the gradient of the extended MSA's layer functional instead
    (docs/resnet.md), V = E_x[(P + rho e) . a sigma(w.z + b)] + rho E_x[(w.e') (a.P) sigma'(w.z + b)].
    """
    a, w = u[:, :d], u[:, d:2 * d]
    pre = w @ z.T
    if bias:
        pre += u[:, -1:]
    pP = P * p[:, None]
    Q = pP if msa is None else pP + msa[0] * msa[1] * p[:, None]
    grad = np.empty_like(u)
    ds = dsigma(pre)
    grad[:, :d] = sigma(pre) @ Q
    # (a_j . Q(x)) sigma'(w_j.z(x) + b_j) p(x)
    s = ds * (a @ Q.T)
    grad[:, d:2 * d] = s @ z
    if bias:
        grad[:, -1] = s.sum(axis=1)
    if msa is not None:
        rho, _, e2, d2sigma = msa
        we = w @ e2.T                       # (w_j . e'(x))
        aP = a @ pP.T                       # (a_j . P(x)) p(x)
        grad[:, :d] += rho * (ds * we) @ pP
        t = d2sigma(pre) * aP * we
        grad[:, d:2 * d] += rho * ((ds * aP) @ e2 + t @ z)
        if bias:
            grad[:, -1] += rho * t.sum(axis=1)
    return grad


def layer_potential(u: np.ndarray, z: np.ndarray, P: np.ndarray, p: np.ndarray, d: int, bias: bool,
                    sigma) -> np.ndarray:
    """V_l without weight decay, E_x[P_{l+1} . a sigma(w.z_l + b)], at the points u (n, D)."""
    pre = u[:, d:2 * d] @ z.T
    if bias:
        pre += u[:, -1:]
    return np.einsum("jk,jk->j", u[:, :d], sigma(pre) @ (P * p[:, None]))
