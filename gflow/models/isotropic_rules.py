"""Gauss rules for the laws of a rotation-invariant data measure in R^d.

For x ~ N(0, sigma^2 I_d) split as x = x1 e1 + x_perp, with s = |x_perp| and c the cosine of
the angle between x_perp and a fixed direction of the complement of e1:

    x1 ~ N(0, sigma^2),   s ~ sigma chi_{d-1},   c ~ (1 - c^2)^((d - 4)/2) on [-1, 1]

(the last is the law of one coordinate of a uniform point on the sphere S^{d-2}; for the full
rotation group, |x| ~ sigma chi_d and c ~ (1 - c^2)^((d - 3)/2)). Each rule here is Gaussian
(exact to degree 2n - 1) for its law, with probability weights summing to 1, built by the
Golub-Welsch algorithm from the three-term recurrence of the law's orthogonal polynomials
(Golub and Welsch, Math. Comp. 23, 1969): the nodes are the eigenvalues of the symmetric
Jacobi matrix, the weights the squared first components of its eigenvectors. That form never
evaluates a Gamma function, so it stays accurate for d = 10^4 and beyond, where the chi law
is a narrow peak at sigma sqrt(d) and c one of width d^(-1/2).
"""
from __future__ import annotations

import numpy as np


def golub_welsch(diagonal: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and probability weights of the Gauss rule of the Jacobi matrix (diagonal, off)."""
    nodes, vectors = np.linalg.eigh(np.diag(diagonal) + np.diag(off, 1) + np.diag(off, -1))
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def gauss_normal(n: int) -> tuple[np.ndarray, np.ndarray]:
    """N(0, 1): probabilists' Hermite recurrence, off-diagonal sqrt(k)."""
    return golub_welsch(np.zeros(n), np.sqrt(np.arange(1.0, n)))


def gauss_chi(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """chi_k (the norm of a standard normal vector in R^k), k >= 1.

    s^2 / 2 ~ Gamma(k / 2): the generalised Laguerre rule of alpha = k/2 - 1 (diagonal
    2j + alpha + 1, off-diagonal sqrt(j (j + alpha))), mapped by s = sqrt(2 tau)."""
    if k < 1:
        raise ValueError(f"chi law needs k >= 1 degrees of freedom, got {k}")
    alpha = 0.5 * k - 1.0
    j = np.arange(n, dtype=float)
    tau, weights = golub_welsch(2.0 * j + alpha + 1.0, np.sqrt(j[1:] * (j[1:] + alpha)))
    return np.sqrt(2.0 * np.maximum(tau, 0.0)), weights


def gauss_cosine(n: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The law proportional to (1 - c^2)^lam on [-1, 1], lam > -1 (Gegenbauer / symmetric Jacobi).

    Monic recurrence c P_k = P_{k+1} + beta_k P_{k-1} with beta_1 = 1 / (2 lam + 3) and
    beta_k = k (k + 2 lam) / ((2k + 2 lam + 1)(2k + 2 lam - 1)) for k >= 2 (the k = 1 form of
    the general Jacobi formula is 0/0 at lam = -1/2, Chebyshev's weight)."""
    if not lam > -1.0:
        raise ValueError(f"(1 - c^2)^lam is not integrable for lam = {lam}")
    k = np.arange(2, n, dtype=float)
    beta = np.concatenate([[1.0 / (2 * lam + 3)] if n > 1 else [],
                           k * (k + 2 * lam) / ((2 * k + 2 * lam + 1) * (2 * k + 2 * lam - 1))])
    nodes, weights = golub_welsch(np.zeros(n), np.sqrt(beta))
    # the law is even: symmetrise the rule against the eigensolver's round-off
    return 0.5 * (nodes - nodes[::-1]), 0.5 * (weights + weights[::-1])


def sphere_cosine(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One coordinate of a uniform point on the unit sphere of R^k: (1 - c^2)^((k - 3)/2), and
    for k = 1 the two points -1, +1 (the 'sphere' of R^1)."""
    if k == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    return gauss_cosine(n, 0.5 * (k - 3))
