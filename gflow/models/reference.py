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


def potential_reference(P, W, weight_decay: float, source: np.ndarray, q: np.ndarray,
                        query: np.ndarray | None = None, h: float = 1e-5, gradient: bool = True):
    """Risk, V and grad V of the potential model, by the definitions.

    R = sum_j q_j P(u_j) + 1/2 sum_{j, k} q_j q_k W(|u_j - u_k|), SPEC's R of the empirical
    measure, the self-interaction j = k (and any pair at distance 0) included where W(0) is
    finite and left out where the kernel is singular there (W(0) infinite or nan), and
    V(u) = P(u) + sum_k q_k W(|u - u_k|) + lam |u|^2 / 2, the sum over the points k away from u
    (a point does not interact with itself); grad V by central differences of step h of that
    V, one coordinate and one point at a time: independent of the symbolic derivatives the
    model uses, accurate to ~h^2 (plus round-off ~ 1e-16 / h).

    Parameters
    ----------
    P : callable P(*coordinates) (a parsed expression), W : callable W(r) or None
    source, q : the density as points (n, D) with weights (n,)
    query : points (k, D) where V and grad V are wanted; None: at the source points
        themselves, each skipping its own term (the particle velocity)
    gradient : False skips grad V (returned as zeros), the costly part
    """
    n, D = source.shape
    own = query is None
    query = source if own else query

    def external(u):
        return float(np.broadcast_to(P(*u), ())) + 0.5 * weight_decay * float(u @ u)

    def interaction(u, skip):
        """sum_k q_k W(|u - u_k|) over the points other than `skip` and away from u."""
        if W is None:
            return 0.0
        r = np.sqrt(np.sum((u - source) ** 2, axis=1))
        keep = (r > 0) & (np.arange(n) != skip)
        return float(np.sum(q[keep] * np.broadcast_to(W(r[keep]), (int(keep.sum()),))))

    risk = sum(q[j] * float(np.broadcast_to(P(*source[j]), ())) for j in range(n))
    risk += 0.5 * sum(q[j] * interaction(source[j], j) for j in range(n))
    if W is not None:
        with np.errstate(all="ignore"):
            w0 = float(np.broadcast_to(W(np.zeros(1)), (1,))[0])
        if np.isfinite(w0):
            # the pairs `interaction` skips: j = k and distinct points that coincide
            for j in range(n):
                r = np.sqrt(np.sum((source[j] - source) ** 2, axis=1))
                risk += 0.5 * q[j] * w0 * float(np.sum(q[r == 0]))
    V = np.zeros(len(query))
    grad = np.zeros(query.shape)
    for i, u in enumerate(query):
        skip = i if own else -1
        V[i] = external(u) + interaction(u, skip)
        for d in range(D if gradient else 0):
            e = np.zeros(D)
            e[d] = h
            up, down = u + e, u - e
            grad[i, d] = ((external(up) + interaction(up, skip)) - (external(down) + interaction(down, skip))) / (2 * h)
    return risk, V, grad
