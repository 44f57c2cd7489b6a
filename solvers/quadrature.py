"""Quadrature particles: deterministic initial nodes and weights for the Lagrangian solvers.

The flow is transport: each particle follows its characteristic, so the integrals the model
needs, f(x) = int a sigma(w.x + b) rho_t(du) = int a(t; u0) sigma(w(t; u0).x + b(t; u0)) rho_0(du0),
are integrals against the initial density of smooth functions of the initial point u0. Taking
the initial particles as the nodes of a quadrature rule for rho_0, with its weights, makes the
particle network inherit the rule's accuracy: spectral (faster than any power of the nodes per
axis) while the flow map u0 -> u(t; u0) and sigma are smooth, instead of the m^(-1/2) Monte
Carlo error of random draws (BACKGROUND.md, "Particles").

- Gaussian N(mean, diag(std^2)): tensor Gauss-Hermite, `numpy.polynomial.hermite_e.hermegauss`
  (nodes for the weight exp(-x^2 / 2)), n nodes per axis, mapped to mean + std x.
- Mixture: the same per component, its weights times the component's weight.
- Any other initial density (uniform): the midpoint rule, nodes at the cell centres of the case
  grid (or of a grid with n cells per axis on the same box when n is given) and weights the
  cell averages of the density times the cell volume, as the grid solvers start from.

Weights below WEIGHT_CUTOFF times the largest are dropped (a 48^2 Gauss-Hermite rule keeps
920 of its 2304 nodes; the dropped mass is below 1e-11) and the rest renormalised to sum 1.
Unlike the grid solvers' initial density, the Gaussian rules are not truncated to the box,
like the random draws they replace.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.spatial import cKDTree

from grids import CartesianGrid

#: weights below this fraction of the largest are dropped (then the rest renormalised)
WEIGHT_CUTOFF = 1e-14


def gauss_hermite(mean, std, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for N(mean, diag(std^2)): nodes (n^D, D), weights (n^D,) summing to 1."""
    t, w = hermegauss(n)
    w = w / w.sum()
    axes = [mu + sd * t for mu, sd in zip(mean, std)]
    nodes = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    weights = np.ones(())
    for _ in mean:
        weights = np.multiply.outer(weights, w)
    return nodes, weights.ravel()


def midpoint_rule(problem, n: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres and cell masses of the initial density on the case grid (n = 0) or on a
    grid with n cells per axis over the same box."""
    grid = problem.grid if n == 0 else CartesianGrid(problem.case.bounds, (n,) * problem.grid.ndim)
    masses = problem.initial_density(grid) * grid.cell_volume
    nodes = np.stack([c.ravel() for c in grid.mesh()], axis=1)
    return nodes, masses.ravel()


def prune(nodes: np.ndarray, weights: np.ndarray, cutoff: float = WEIGHT_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """Drop weights below cutoff x the largest, renormalise the rest to sum 1."""
    keep = weights >= cutoff * weights.max()
    q = weights[keep]
    return np.ascontiguousarray(nodes[keep], dtype=float), q / q.sum()


def nodes_per_axis(options: dict, ndim: int, components: int = 1) -> int:
    """`nodes`, or else the n with components x n^D closest to `particles`."""
    if options.get("nodes", 0):
        return int(options["nodes"])
    return max(1, int(round((options.get("particles", 10000) / components) ** (1.0 / ndim))))


def quadrature_particles(problem, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Initial nodes (m, D) and weights (m,) summing to 1 for init = "quadrature"."""
    init = problem.case.initial
    ndim = problem.grid.ndim
    if init.distribution in ("gaussian", "mixture"):
        n = nodes_per_axis(options, ndim, len(init.components))
        parts = [gauss_hermite(mean, std, n) for _, mean, std in init.components]
        nodes = np.concatenate([p[0] for p in parts])
        weights = np.concatenate([c[0] * p[1] for c, p in zip(init.components, parts)])
    else:
        nodes, weights = midpoint_rule(problem, options.get("nodes", 0))
    return prune(nodes, weights)


def lattice_spacing(u: np.ndarray, q: np.ndarray) -> float:
    """The spacing h of quadrature nodes that the blob solver's `epsilon_rule` needs: the
    q-weighted mean distance to the nearest other node (h itself on a uniform lattice; on a
    Gauss-Hermite lattice the spacing where the mass is, not the wider gaps of the tails)."""
    if len(u) < 2:
        raise ValueError("cannot choose epsilon from a single node; set epsilon")
    dist = cKDTree(u).query(u, k=2)[0][:, 1]
    return float(q @ dist / q.sum())
