"""The entropy term int rho log rho of a particle cloud: the Kozachenko-Leonenko estimator.

An empirical measure has no density, so the free energy's T int rho log rho is estimated from
the particles themselves. With eps_j the distance from u_j to its k-th nearest other particle
in D dimensions, the density near u_j is estimated by the k neighbours' share of the mass in
the ball of radius eps_j; with the digamma bias correction this is

    int rho log rho ~ sum_j q_j log rho_j,  log rho_j = psi(k) - psi(m) - log(c_D eps_j^D),

c_D = pi^(D/2) / Gamma(D/2 + 1) the unit ball's volume (Kozachenko & Leonenko, Probl. Inf.
Transm. 23, 1987; the k-neighbour form: Kraskov, Stoegbauer, Grassberger, Phys. Rev. E 69,
066138, 2004, eq. 20). It is consistent (bias O(m^(-1/D)) for smooth densities, a few 1e-3 in 2-D
at m ~ 5000) for equal weights q_j = 1/m, the only weights with which particles carry noise
(quadrature particles are refused with T > 0); other weights only reweight the sum.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

#: neighbour order: k = 1 is unbiased but noisy, larger k smooths the density estimate more
NEIGHBOUR = 4


def kl_neg_entropy(u: np.ndarray, q: np.ndarray, k: int = NEIGHBOUR) -> float:
    """int rho log rho of the cloud (u (m, D), weights q (m,)), by the k-nearest-neighbour estimator."""
    m, D = u.shape
    k = min(k, m - 1)
    if k < 1:
        return 0.0
    eps = cKDTree(u).query(u, k=k + 1)[0][:, k]
    # coincident particles (a frozen axis with zero initial spread) would give log 0
    eps = np.maximum(eps, np.finfo(float).tiny ** (1.0 / D))
    log_ball = 0.5 * D * np.log(np.pi) - gammaln(0.5 * D + 1.0)
    log_rho = digamma(k) - digamma(m) - log_ball - D * np.log(eps)
    w = np.asarray(q, dtype=float)
    return float(w @ log_rho / w.sum())
