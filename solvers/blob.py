"""The blob method for diffusion: deterministic particles for d_t rho = div(rho grad V) + T lap rho.

Carrillo, Craig, Patacchini, "A blob method for diffusion", Calc. Var. PDE 58 (2019):
the entropy int rho log rho is replaced by int rho log(phi_eps * rho) with a mollifier
phi_eps, and the gradient flow of the regularised energy for rho = sum_j q_j delta_{u_j} moves
the particles deterministically with (the velocity of BACKGROUND.md, "Blob method")

    v_i = -T sum_j q_j grad phi_eps(u_i - u_j) [1 / rho_eps(u_i) + 1 / rho_eps(u_j)] - grad V(u_i),
    rho_eps = phi_eps * rho = sum_j q_j phi_eps(. - u_j),

so diffusion needs no noise. phi_eps is the Gaussian N(0, eps I) density, truncated at
radius `cutoff` * sqrt(eps); neighbour pairs come from `scipy.spatial.cKDTree.query_pairs`,
so a step costs O(m x neighbours), not O(m^2). The pair sum is antisymmetric (the bracket
is symmetric, grad phi odd), so the diffusion part keeps the centre of mass exactly. Like
the grid solvers' T lap rho, diffusion acts on every axis, frozen ones included.

epsilon: the published working rule eps = 4 (0.4 h^0.99)^2 (BACKGROUND.md) was made for
particles on a lattice of spacing h (with quadrature weights); pass that h to
`epsilon_rule` there. init = "quadrature" makes exactly such particles (weighted blobs: the
deterministic way to add the entropy term to a quadrature run, which noise would spoil): the
midpoint rule of `solvers.quadrature` on the case grid (or on `nodes` cells per axis) for any
initial density, Gaussians included (Gauss-Hermite nodes are unevenly spaced, and their blobs
did not converge), and the default h = `solvers.quadrature.lattice_spacing`, the coarsest
axis's spacing. For i.i.d. draws (init = "random") the default takes
h = `random_spacing` = s m^(-1/(D+4)): random points leave gaps far wider than
(volume / m)^(1/D), above all in the tails, and blobs that do not overlap across a gap do
not diffuse (with h = (volume / m)^(1/D), 400 random blobs in 1D lost 12% of the heat
equation's variance growth; with this h, under 0.5%). That h gives each blob ~ m^(4/(D+4))
neighbours, so the default caps the average at MAX_NEIGHBOURS (shrinking eps), which keeps the
cost per step linear in m. Random blobs carry a Monte Carlo error that falls with the number
of neighbours, not with eps (2D Ornstein-Uhlenbeck variance at t = 1: -6%, -2.5%, -1.3% with
50, 130, 480 neighbours); lattice blobs with weights have none. The option `epsilon`
overrides the default; one whose blob width sqrt(epsilon) exceeds MAX_BLOB_WIDTH times the
box's widest side is refused (such blobs bin to a flat, then to a zero, density).

Time stepping: third-order strong-stability-preserving Runge-Kutta (Shu-Osher, as the fv
solver), whose stages are forward-Euler steps, so it is stable under the forward-Euler limit
dt = min(dt_max, DIFFUSION_CFL eps / T, ADVECTION_CFL sqrt(eps) / max_i |v_i|), plus the
nearest-neighbour cap of `solvers.particle` for singular interaction kernels (relative
speed; never silently below a fixed [time].dt; `neighbour_cap = false` turns it off). The
first bound keeps the stiff blob diffusion stable (its fastest rate is ~ T / eps: on a 1D lattice, Euler steps of
1.0 eps / T were stable and 2.0 eps / T were not); the second keeps particles from moving
more than half a blob width per step. Since stability forces dt ~ eps, forward Euler's O(dt)
error would be as large as the O(eps) blob error (it lost 0.9% of the Ornstein-Uhlenbeck
mean decay to t = 1 with 2000 blobs); third order makes it negligible for three neighbour
searches per step.

Observation: the density is the cell average of rho_eps on the case grid
(`solvers.deposit.gaussian_blobs`: each blob integrated exactly over the cells, so the
binned mass is exactly the weight sum); the energy is the regularised energy the method
dissipates, R + lam/2 sum_i q_i |u_i|^2 + T sum_i q_i log rho_eps(u_i). The potential
model's interaction W * rho is the particle sum of `PotentialModel.velocity` (O(m^2), not
mollified).

Wasserstein-Fisher-Rao (`[dynamics] fisher_rao`, `gflow.solvers.wfr`, T = 0): the velocity times
`transport` (beta), then the reaction q <- q exp(-alpha dt V) on the weights after each step (the
grids' splitting, through birth-death's weights scheme without its renormalisation).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from gflow.solvers.base import Observation, Stepper
from gflow.solvers.birth_death import particle_birth_death
from gflow.solvers.deposit import INSIDE_NOTE, gaussian_blobs, outside_mass
from gflow.solvers.integrators import ssprk3
from gflow.solvers.particle import initial_particles, neighbour_step_limit, particle_velocity, refuse_below_fixed
from gflow.solvers.quadrature import lattice_spacing
from gflow.solvers.wfr import blob_fisher_rao, transport_of

#: ordered neighbour pairs per chunk of the blob sums (temporaries of a few MB each)
PAIR_CHUNK = 1 << 18
#: layers of a layered model, in box widths apart for the mollifier (`BlobStepper.kernel_points`)
LAYER_SEPARATION = 1e3
#: most neighbours (within the cutoff) of the average blob under the default epsilon
MAX_NEIGHBOURS = 512
#: forward-Euler step limits, as fractions of eps / T and of sqrt(eps) / max speed
DIFFUSION_CFL = 0.25
ADVECTION_CFL = 0.5
#: largest blob standard deviation sqrt(epsilon), in units of the box's widest side: a wider
#: blob bins as a flat density that says nothing about the particles, and far wider ones lose
#: all their mass to round-off in the cell integrals (epsilon = 1e300 binned mass 0)
MAX_BLOB_WIDTH = 10.0


def epsilon_rule(h: float) -> float:
    """The published working rule eps = 4 (0.4 h^0.99)^2 for blob spacing h."""
    return 4.0 * (0.4 * h ** 0.99) ** 2


def random_spacing(u: np.ndarray, q: np.ndarray) -> float:
    """The spacing h that `epsilon_rule` needs for i.i.d. draws: s m^(-1/(D + 4)).

    Random points leave gaps far wider than (volume / m)^(1/D), above all in the tails, and
    blobs that do not overlap across a gap do not diffuse; the gaps close like the kernel
    density bandwidth (Silverman's m^(-1/(D+4))). s is the geometric mean of the weighted
    sample standard deviations.
    """
    m, dim = u.shape
    mean = q @ u / q.sum()
    sd = np.sqrt(q @ (u - mean) ** 2 / q.sum())
    s = float(np.prod(sd) ** (1.0 / dim))
    if not s > 0:
        raise ValueError("cannot choose epsilon: the initial particles have no spread; set epsilon")
    return s * m ** (-1.0 / (dim + 4))


def mean_neighbours(tree: cKDTree, u: np.ndarray, radius: float) -> float:
    """Average number of points within `radius` of a point (itself included), from ~256 of them."""
    sample = u[::max(1, len(u) // 256)]
    return float(np.mean(tree.query_ball_point(sample, radius, return_length=True)))


def default_epsilon(u: np.ndarray, q: np.ndarray, cutoff: float) -> float:
    """`epsilon_rule(random_spacing(u, q))`, shrunk where the average blob would have more
    than MAX_NEIGHBOURS neighbours within the cutoff, so the cost per step stays linear in m."""
    eps = epsilon_rule(random_spacing(u, q))
    found = mean_neighbours(cKDTree(u), u, cutoff * np.sqrt(eps))
    if found > MAX_NEIGHBOURS:
        # neighbour counts grow like eps^(D/2)
        eps *= (MAX_NEIGHBOURS / found) ** (2.0 / u.shape[1])
    return eps


class BlobKernel:
    """The truncated Gaussian mollifier phi_eps and its neighbour sums over a point set.

    Sums run over ordered pairs (i, j) within the cutoff, i = j included, found for one chunk
    of points i at a time against a tree of all points, so memory stays near PAIR_CHUNK pairs
    whatever m and the number of neighbours.
    """

    def __init__(self, dim: int, epsilon: float, cutoff: float):
        self.dim, self.epsilon, self.cutoff = dim, epsilon, cutoff
        self.radius = cutoff * np.sqrt(epsilon)
        self.norm = (2 * np.pi * epsilon) ** (-dim / 2)

    def pair_chunks(self, u: np.ndarray, tree: cKDTree | None = None):
        """Chunks (start, stop, i, j, r): points u[start:stop], local i, global j, |u_i - u_j|.

        A list (reusable by a second pass) when all pairs fit in one chunk, else a generator
        that searches each chunk as it is consumed.
        """
        tree = cKDTree(u) if tree is None else tree
        chunk = max(1, int(PAIR_CHUNK / mean_neighbours(tree, u, self.radius)))
        chunks = self._search(u, tree, chunk)
        return list(chunks) if chunk >= len(u) else chunks

    def _search(self, u: np.ndarray, tree: cKDTree, chunk: int):
        for start in range(0, len(u), chunk):
            stop = min(start + chunk, len(u))
            pairs = cKDTree(u[start:stop]).sparse_distance_matrix(tree, self.radius, output_type="ndarray")
            yield (start, stop, *(np.ascontiguousarray(pairs[name]) for name in ("i", "j", "v")))

    def phi(self, r: np.ndarray) -> np.ndarray:
        return self.norm * np.exp(-(r * r) / (2 * self.epsilon))

    def density(self, u: np.ndarray, q: np.ndarray, chunks=None) -> np.ndarray:
        """rho_eps(u_i) = sum_j q_j phi_eps(u_i - u_j), the self term included."""
        rho = np.empty(len(u))
        for start, stop, i, j, r in self.pair_chunks(u) if chunks is None else chunks:
            rho[start:stop] = np.bincount(i, q[j] * self.phi(r), minlength=stop - start)
        return rho

    def diffusion_velocity(self, u: np.ndarray, q: np.ndarray, temperature: float) -> np.ndarray:
        """-T sum_j q_j grad phi_eps(u_i - u_j) [1/rho_eps(u_i) + 1/rho_eps(u_j)] for each i."""
        tree = cKDTree(u)
        chunks = self.pair_chunks(u, tree)
        inv_rho = 1.0 / self.density(u, q, chunks)
        if not isinstance(chunks, list):
            chunks = self.pair_chunks(u, tree)
        v = np.empty_like(u)
        for start, stop, i, j, r in chunks:
            gi = i + start
            # -grad phi_eps(d) = phi_eps(d) d / eps: each pair pushes its two points apart
            push = q[j] * self.phi(r) * (inv_rho[gi] + inv_rho[j])
            for k in range(u.shape[1]):
                v[start:stop, k] = np.bincount(i, push * (u[gi, k] - u[j, k]), minlength=stop - start)
        return v * (temperature / self.epsilon)


class BlobStepper(Stepper):
    kind = "blob"
    #: attributes of the file's `density` dataset (`gflow.snapshots.SnapshotWriter`)
    density_attrs = {"binned": INSIDE_NOTE}

    def __init__(self, problem, options):
        super().__init__(problem, options)
        self.model = problem.model
        self.grid = problem.grid
        options = self.options
        if problem.lifted:
            raise ValueError("the blob solver mollifies on the case's axes: for neurons in the full R^d "
                             "(symmetry = \"none\") run particle")
        self.u, self.weights, _ = initial_particles(problem, options, lattice=True)
        self.temperature = problem.temperature
        #: a layered model's layers (blobs of different layers never meet), else None
        self.layers = problem.layers
        cutoff = options["cutoff"]
        epsilon = options["epsilon"]
        points, weights = self.u, self.weights
        if self.layers:      # the spacing of one layer's blobs (every layer holds the same weights)
            points, weights = self.u[:len(self.u) // self.layers, 1:], weights[:len(self.u) // self.layers]
        if not epsilon and options["init"] == "quadrature":
            epsilon = epsilon_rule(lattice_spacing(points, weights))
        elif not epsilon:
            epsilon = default_epsilon(points, weights, cutoff)
        side = float(np.max(np.ptp(np.array(self.grid.bounds, dtype=float), axis=1)))
        if not np.sqrt(epsilon) <= MAX_BLOB_WIDTH * side:
            raise ValueError(f"epsilon = {epsilon:g}: the blob width sqrt(epsilon) = {np.sqrt(epsilon):.3g} exceeds "
                             f"{MAX_BLOB_WIDTH:g} times the box's widest side ({side:g}); choose a smaller epsilon")
        self.particle_kernel = options["kernel"]
        self.kernel = BlobKernel(self.u.shape[1] - (1 if self.layers else 0), epsilon, cutoff)
        self.limited_steps = 0
        self.interacting = self.model.singular_interaction and options["neighbour_cap"]
        #: birth-death (`gflow.solvers.birth_death`): reweighting or kill/clone after each step, or None
        # or Wasserstein-Fisher-Rao's reaction -alpha V q on the weights (`gflow.solvers.wfr`)
        self.birth_death = (particle_birth_death(self, problem, options, self.particle_kernel)
                            or blob_fisher_rao(self, problem, options, self.particle_kernel))
        if self.birth_death is not None:
            self.weights = self.weights.copy()     # changed in place by the weights scheme
            self.birth_death.prime(self)
            self.varying_weights = self.birth_death.changes_weights
            self.conserves_mass = self.birth_death.reaction.conserves_mass
        #: beta, the factor of the transport velocity (`[dynamics] transport`; 1 but with fisher_rao)
        self.transport = transport_of(problem)

    def kernel_points(self, u: np.ndarray) -> np.ndarray:
        """The points the mollifier sees: u itself, or for a layered model u with the layer
        coordinate spread LAYER_SEPARATION box widths apart per layer, so that no pair of blobs
        of different layers falls within the cutoff (each layer has a density of its own)."""
        if not self.layers:
            return u
        spread = u.copy()
        side = float(np.max(np.ptp(np.array(self.grid.bounds[1:], dtype=float), axis=1)))
        spread[:, 0] = np.rint(u[:, 0] * self.layers) * LAYER_SEPARATION * side
        return spread

    def layer_density(self, u: np.ndarray, chunks=None) -> np.ndarray:
        """rho_eps at the blobs, of each blob's own layer (joint weights times L)."""
        q = self.weights * (self.layers or 1)
        return self.kernel.density(self.kernel_points(u), q, chunks)

    def velocity(self, u: np.ndarray) -> np.ndarray:
        v = particle_velocity(self.model, u, self.weights, kernel=self.particle_kernel)
        if self.transport != 1.0:       # Wasserstein-Fisher-Rao's beta (fisher_rao refuses T > 0)
            v *= self.transport
        if self.temperature > 0:
            # frozen axes (train) neither drift nor diffuse, as on the grids
            v += self.kernel.diffusion_velocity(self.kernel_points(u), self.weights,
                                                self.temperature) * self.model.trained
        return v

    def step(self, dt_max: float, fixed: bool = False) -> float:
        """One SSP-RK3 step (Shu-Osher), its length set from the velocity at the start; then
        birth-death's reaction over it where the case has one."""
        u = self.u
        v = self.velocity(u)
        cap = neighbour_step_limit(u, v) if self.interacting else np.inf
        if fixed:
            refuse_below_fixed(cap, dt_max, self.kind)
        bd = self.birth_death
        dt = min(dt_max if bd is None else bd.cap(dt_max, self.time), self.stable_dt(v, cap))
        self.limited_steps += dt < dt_max
        self.u = ssprk3(u, self.velocity, dt, first=v)
        if bd is not None:
            bd.advance(self, self.time, dt)
            self.time += dt
        return dt

    def stable_dt(self, v: np.ndarray, neighbour_cap: float = np.inf) -> float:
        """The forward-Euler limit: blob diffusion, half a blob width, and the nearest-neighbour
        cap (`neighbour_step_limit`, computed once per step by `step`)."""
        eps = self.kernel.epsilon
        dt = np.inf
        if self.temperature > 0:
            dt = DIFFUSION_CFL * eps / self.temperature
        speed = float(np.sqrt(np.einsum("ij,ij->i", v, v).max()))
        if speed > 0:
            dt = min(dt, ADVECTION_CFL * np.sqrt(eps) / speed)
        return min(dt, neighbour_cap)

    def observe(self) -> Observation:
        u, q, kernel = self.u, self.weights, self.kernel
        density = gaussian_blobs(self.grid, u, q, kernel.epsilon, kernel.cutoff, (0,) if self.layers else ())
        # the numpy path, whatever `kernel` says: as the blob solver has always reported it
        risk = self.model.risk(u, q, kernel="numpy")
        energy = self.model.energy(risk, u, q)
        if self.temperature > 0:
            energy += self.temperature * float(q @ np.log(self.layer_density(u)))
        return Observation(density, risk, energy, self.grid.mass(density), positions=u.copy(),
                           weights=q.copy() if self.varying_weights else None,
                           extras={"outside_mass": outside_mass(self.grid, u, q)})

    def extra_names(self) -> tuple[str, ...]:
        return ("outside_mass",)

    def restart_state(self) -> dict:
        state = {"limited_steps": int(self.limited_steps)}
        return state if self.birth_death is None else {**state, **self.birth_death.state(self)}

    def restore(self, density, positions, state) -> None:
        self.u = np.array(positions, dtype=float)
        self.limited_steps = int(state["limited_steps"])
        if self.birth_death is not None:
            self.birth_death.restore(self, state)

    def summary(self) -> str:
        text = (f"m = {len(self.weights)}, epsilon = {self.kernel.epsilon:.3g}, "
                f"{self.limited_steps} steps shortened for stability")
        return text if self.birth_death is None else f"{text}, {self.birth_death.summary()}"
