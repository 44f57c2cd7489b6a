"""Finite-width fluctuations of the two-layer risk from the mean-field flow: the discrete adjoint.

m neurons drawn i.i.d. from rho0 and trained by deterministic gradient descent with mean-field
weights 1/m follow the mean-field flow of their own empirical measure mu_m, so their risk is
R_m(t) = R_t[mu_m] with R_t the map rho0 -> R(t). The delta method (Rotskoff and Vanden-Eijnden,
CPAM 2022; Chen, Rotskoff, Bruna, Vanden-Eijnden, NeurIPS 2020) gives

    sqrt(m) (R_m(t) - R(t))  ->  N(0, Var_{u ~ rho0} psi_t(u)),   psi_t = delta R_t / delta rho0.

On quadrature particles u_j with weights q_j (a quadrature of rho0) the first variation at the
nodes is the gradient of R_t with respect to the weights, psi_t(u_j) = dR_t / dq_j (up to a
constant, which the variance does not see). This module computes it exactly for the discrete
flow, forward Euler u^{n+1} = u^n - dt_n M grad V(u^n; r^n) (M: the trained axes), by one reverse
sweep (the discrete adjoint). With phi(x; u) = a sigma(w.x + b), r = sum_k q_k phi(., u_k) - f*,
G_j = E_x[r grad phi(x; u_j)] + lam u_j and Lam^n = dR_t / du^n:

    Lam^N_k   = q_k E_x[r^N grad phi(x; u_k^N)],          dR/dq_k |_N = E_x[r^N phi(x; u_k^N)],
    Lam^n_k   = Lam^{n+1}_k - dt_n (H_k L_k + q_k E_x[s grad phi(x; u_k^n)]),
    dR/dq_k  -= dt_n E_x[s phi(x; u_k^n)],

with L = M Lam^{n+1}, H_k L_k = E_x[r^n Hess phi(x; u_k^n) L_k] + lam L_k and the data function
s(x) = sum_j L_j . grad phi(x; u_j^n) (the change of the velocities through the residual).
At t = 0, psi_0(u) = E_x[r_0 phi(x; u)] (V without weight decay) and, exactly,
E[R_m(0)] - R(0) = (1/(2m)) E_x Var_{rho0} phi(x; u) (`initial_bias`).
"""
from __future__ import annotations

import numpy as np

#: (neurons, data) arrays alive at once in a reverse step: the memory check counts them
#: (`gflow.memory`), since the sweep takes every neuron at once (its data sums couple them)
ADJOINT_ARRAYS = 10


def _features(model, u: np.ndarray):
    """sigma, sigma', sigma'' of the preactivations (M, N), and a (M,)."""
    z = model._preactivation(u, model.x)
    return model.sigma(z), model.dsigma(z), model.d2sigma(z), u[:, 0]


def _grad_phi_moments(model, u, S, S1, c: np.ndarray) -> np.ndarray:
    """E_x[c(x) grad phi(x; u_k)] for every k (c includes the data weights), shape (M, D)."""
    d = model.input_dim
    a = u[:, 0]
    out = np.empty_like(u)
    out[:, 0] = S @ c
    out[:, 1:1 + d] = a[:, None] * ((S1 * c) @ model.x)
    if model.bias:
        out[:, -1] = a * (S1 @ c)
    return out


def _hessian_times(model, u, S1, S2, c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """E_x[c(x) Hess phi(x; u_k) v_k] for every k, shape (M, D); phi = a sigma(z), z = w.x + b."""
    d = model.input_dim
    a, va = u[:, 0], v[:, 0]
    dz = v[:, 1:1 + d] @ model.x.T
    if model.bias:
        dz += v[:, -1:]
    mixed = S1 * va[:, None] + a[:, None] * S2 * dz    # d/dz of the w and b rows
    out = np.empty_like(u)
    out[:, 0] = (S1 * dz) @ c
    out[:, 1:1 + d] = (mixed * c) @ model.x
    if model.bias:
        out[:, -1] = mixed @ c
    return out


def risk_weight_gradient(model, path: list[np.ndarray], steps: list[float], q: np.ndarray) -> np.ndarray:
    """dR(t_N) / dq_j of the forward-Euler flow that went through `path` (u^0..u^N, each (M, D))
    with steps dt_0..dt_{N-1}, for neurons of weights q (mean-field scaling, deterministic)."""
    if len(path) != len(steps) + 1:
        raise ValueError("the path holds one more state than there are steps")
    trained = model.trained.astype(float)
    lam = model.weight_decay
    u = path[-1]
    S, S1, _, a = _features(model, u)
    c = model.p * ((q * a) @ S - model.y)
    lam_u = q[:, None] * _grad_phi_moments(model, u, S, S1, c)
    dq = a * (S @ c)
    for n in range(len(steps) - 1, -1, -1):
        u, dt = path[n], steps[n]
        S, S1, S2, a = _features(model, u)
        c = model.p * ((q * a) @ S - model.y)
        L = lam_u * trained
        dz = L[:, 1:1 + model.input_dim] @ model.x.T
        if model.bias:
            dz += L[:, -1:]
        s = L[:, 0] @ S + np.einsum("j,jn,jn->n", a, S1, dz)
        e = model.p * s
        change = _hessian_times(model, u, S1, S2, c, L) + lam * L + q[:, None] * _grad_phi_moments(model, u, S, S1, e)
        dq -= dt * a * (S @ e)
        lam_u = lam_u - dt * change
    return dq


def initial_bias(model, u: np.ndarray, q: np.ndarray) -> float:
    """m (E[R_m(0)] - R(0)) = (1/2) E_x Var_{rho0} phi(x; u), from the quadrature (u, q) of rho0."""
    S, _, _, a = _features(model, u)
    phi = a[:, None] * S
    q = q / q.sum()
    mean = q @ phi
    var = q @ (phi - mean) ** 2
    return 0.5 * float(model.p @ var)
