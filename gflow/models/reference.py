"""Plain, obviously correct evaluations of V and grad V: the yardstick for every fast path.

Slow on purpose: one data node at a time, the formulas of SPEC.md written out as they
read, no separability, no chunking, no precomputed features. Tests hold the grid operators
and the particle path to these (STYLE.md, habit 5).
"""
from __future__ import annotations

import numpy as np

from gflow.models.units import ACTIVATIONS


def two_layer_reference(activation: str, bias: bool, x: np.ndarray, p: np.ndarray, y: np.ndarray,
                        source: np.ndarray, q: np.ndarray, query: np.ndarray, weight_decay: float = 0.0):
    """Risk, V and grad V of the two-layer model.

    Parameters
    ----------
    activation, bias : the model
    x, p, y : data nodes (M, d), probability weights (M,), targets (M,)
    source, q : the density as neurons (n, D) with weights (n,): f(x) = sum_j q_j a_j sigma(w_j.x + b_j)
    query : points (k, D) where V and grad V are wanted

    Returns
    -------
    risk : float, V : (k,), grad : (k, D)
    """
    sigma, dsigma = ACTIVATIONS[activation]
    d = x.shape[1]
    M = len(x)

    def unpack(u):
        a, w = u[:, 0], u[:, 1:1 + d]
        b = u[:, 1 + d] if bias else np.zeros(len(u))
        return a, w, b

    a_s, w_s, b_s = unpack(source)
    f = np.array([np.sum(q * a_s * sigma(w_s @ x[m] + b_s)) for m in range(M)])
    r = f - y
    risk = 0.5 * np.sum(p * r**2)

    a, w, b = unpack(query)
    V = np.zeros(len(query))
    grad = np.zeros(query.shape)
    for m in range(M):
        z = w @ x[m] + b
        V += p[m] * r[m] * a * sigma(z)
        grad[:, 0] += p[m] * r[m] * sigma(z)
        for k in range(d):
            grad[:, 1 + k] += p[m] * r[m] * a * dsigma(z) * x[m, k]
        if bias:
            grad[:, 1 + d] += p[m] * r[m] * a * dsigma(z)
    V += 0.5 * weight_decay * np.sum(query**2, axis=1)
    grad += weight_decay * query
    return risk, V, grad
