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
- Any other initial density (uniform, sphere, product, a grid run's snapshot): the midpoint rule,
  nodes at the cell centres of the case grid (or of a grid with n cells per axis on the same box
  when n is given; the snapshot's own grid for a snapshot) and weights the cell averages of the
  density times the cell volume, as the grid solvers start from. Point masses (`points`, `file`,
  a particle run's snapshot) are no density: every solver with particles takes them as given.
- Weighted blobs (`solvers.blob`) take the midpoint rule for every density, Gaussians included:
  the blob method's mollifier needs nodes about equally spaced along every axis. On the 2D
  Ornstein-Uhlenbeck case (std 0.6 x 1.2, T = 0.5, t = 1) Gauss-Hermite blobs missed the
  variance change by 5-9% at 12^2 to 32^2 nodes (eps from the finer axis: blobs too narrow
  along the coarser one) or 16-47% (eps from the coarser axis: O(eps) error), not converging,
  while midpoint lattices of 24^2, 40^2, 60^2 cells gave 7%, 1.4%, 0.4%.

Where it stops converging (quickstart, relative risk error against 128^2 nodes, RK4):

    t                  1       2       3       5       7      10
    tanh, 24^2 nodes   5e-8    5e-7    7e-6    1e-4    3e-4   5e-4
    tanh, 48^2 nodes   5e-10   4e-10   5e-8    1e-6    5e-6   1e-5
    tanh, 96^2 nodes   3e-13   2e-13   6e-11   4e-8    5e-7   1e-6
    ReLU, 64^2 nodes   4e-4    8e-4    1e-3    3e-3    3e-3   4e-3    (vs 512^2)
    ReLU, 128^2 nodes  2e-4    3e-4    6e-4    1e-3    1e-3   1e-3

tanh is spectral (to round-off at 96^2) while t <= 3; as the mass splits and collapses onto
the teacher (t ~ 5 to 7, the risk falling 1000-fold) the rate drops to about n^-4 between 64^2
and 96^2 nodes, and the relative error grows as the risk it is divided by shrinks (the
absolute error of 24^2 nodes peaks at 3e-6 near t = 5). No characteristics cross (the flow
map stays a diffeomorphism: neighbouring nodes' distance grows at most 6-fold by t = 20); it
is the flow map's shrinking strip of analyticity that slows the rule. ReLU's kink at w = 0
(sigma' jumps, so the flow map is only Lipschitz there: neighbour distances stretch 27-fold
across it) makes the rule first order in n from the start: no better than a grid.

Weights below WEIGHT_CUTOFF times the largest are dropped (a 48^2 Gauss-Hermite rule keeps
920 of its 2304 nodes; the dropped mass is below 1e-11) and the rest renormalised to sum 1.
Unlike the grid solvers' initial density, the Gaussian rules are not truncated to the box,
like the random draws they replace.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from gflow.grids import CartesianGrid

#: weights below this fraction of the largest are dropped (then the rest renormalised)
WEIGHT_CUTOFF = 1e-14
#: the largest rule taken from numpy's hermegauss (beyond, scipy's asymptotic one)
MAX_HERMEGAUSS = 200


def hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the weight exp(-x^2 / 2).

    numpy's `hermegauss` (Golub-Welsch plus Newton) overflows beyond n ~ 300 (NaN weights at
    384), so larger rules come from scipy's `roots_hermitenorm`, which switches to asymptotic
    expansions (Townsend, Trogdon, Olver) there; the two agree to 1e-14 at n = 300.
    """
    if n <= MAX_HERMEGAUSS:
        return hermegauss(n)
    from scipy.special import roots_hermitenorm
    return roots_hermitenorm(n)


def gauss_hermite(mean, std, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for N(mean, diag(std^2)): nodes (n^D, D), weights (n^D,) summing to 1."""
    t, w = hermite_rule(n)
    w = w / w.sum()
    axes = [mu + sd * t for mu, sd in zip(mean, std)]
    nodes = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    weights = np.ones(())
    for _ in mean:
        weights = np.multiply.outer(weights, w)
    return nodes, weights.ravel()


def midpoint_rule(problem, n: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres and cell masses of the initial density on the case grid (n = 0) or on a
    grid with n cells per axis over the same box; a grid run's snapshot (`[initial] snapshot`)
    gives its own grid, one particle per cell with the cell's mass."""
    one = problem.initial_grid
    grid = one if n == 0 else CartesianGrid(one.bounds, (n,) * one.ndim)
    masses = problem.law_density(grid, problem.layer_initials()[0]) * grid.cell_volume
    nodes = grid.points()
    return nodes, masses.ravel()


def prune(nodes: np.ndarray, weights: np.ndarray, cutoff: float = WEIGHT_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """Drop weights below cutoff x the largest, renormalise the rest to sum 1."""
    keep = weights >= cutoff * weights.max()
    q = weights[keep]
    return np.ascontiguousarray(nodes[keep], dtype=float), q / q.sum()


def nodes_per_axis(options: dict, ndim: int, components: int = 1) -> int:
    """`nodes`, or else the n with components x n^D closest to `particles`."""
    if options["nodes"]:
        return int(options["nodes"])
    return max(1, int(round((options["particles"] / components) ** (1.0 / ndim))))


def quadrature_particles(problem, options: dict, lattice: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Initial nodes (m, D) and weights (m,) summing to 1 for init = "quadrature".

    `options`: a particle solver's complete options (`nodes`, `particles`).

    lattice: the midpoint rule on a uniform grid whatever the initial density (the blob
    solver's choice, see `solvers.blob`), instead of Gauss-Hermite for Gaussians.
    """
    init = problem.layer_initials()[0]      # a layered model's rule is layer 0's, moved per layer
    ndim = problem.parameter_grid.ndim
    if init.distribution in ("gaussian", "mixture") and not lattice:
        n = nodes_per_axis(options, ndim, len(init.components))
        parts = [gauss_hermite(mean, std, n) for _, mean, std in init.components]
        nodes = np.concatenate([p[0] for p in parts])
        weights = np.concatenate([c[0] * p[1] for c, p in zip(init.components, parts)])
    else:
        nodes, weights = midpoint_rule(problem, options["nodes"])
    return problem.replicate(*prune(nodes, weights))


def lattice_spacing(u: np.ndarray, q: np.ndarray) -> float:
    """The spacing h of quadrature nodes that the blob solver's `epsilon_rule` needs.

    Per axis, the mass-weighted gap from each node's coordinate to the next larger node
    coordinate (the lattice spacing itself on a uniform lattice; on a Gauss-Hermite lattice
    the spacing where the mass is, not the wider gaps of the tails); h is the largest over the
    axes, so that the (isotropic) blobs overlap along the coarsest axis too: with the smallest,
    2D Ornstein-Uhlenbeck blobs on a 0.6 x 1.2 Gaussian lost 5-9% of the variance change.
    """
    spacing = []
    for k in range(u.shape[1]):
        c = np.unique(u[:, k])
        if len(c) < 2:
            raise ValueError("cannot choose epsilon: the nodes have one coordinate along an axis; set epsilon")
        gaps = np.diff(c)
        # the gap above each node (the topmost node takes the gap below it)
        at = np.minimum(np.searchsorted(c, u[:, k]), len(gaps) - 1)
        spacing.append(float(q @ gaps[at] / q.sum()))
    return max(spacing)
