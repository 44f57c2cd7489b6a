"""The aggregation-diffusion model: V = P + W * rho + lam |u|^2 / 2.

    R[rho] = int P rho + 1/2 int int W(|u - v|) rho(u) rho(v),
    E[rho] = R + (lam/2) int |u|^2 rho + T int rho log rho.

At weighted points rho_m = sum_j q_j delta_{u_j} the risk is this same functional of the
empirical measure: for a W finite at 0 (a smooth kernel such as exp(-r^2), or r) the double
sum includes the self-interaction j = k, 1/2 sum_j q_j^2 W(0), an O(1/m) term (1e-3 at m = 200
for W ~ 1). For a kernel singular at 0 (-log r, r^-3: W(0) infinite or undefined) R[rho_m] is
infinite, and the risk leaves the pairs at distance 0 out (the renormalised interaction
energy 1/2 sum_{j != k}); the particles' velocity never has a self-term (W'(0) (u - u)/0 is
0 by symmetry for smooth W and undefined otherwise).

P and W are case-file expressions (parsed, never eval'd); grad P and W' are their exact
symbolic derivatives. On a grid, W * rho is a zero-padded FFT convolution with the cell
integrals of W (`gflow.models.convolution`), and the face velocity is -grad P - lam u at the face
minus the difference of W * rho across it (Carrillo, Chertock, Huang 2015, eq. 2.4).
"""
from __future__ import annotations

import numpy as np

from gflow.expr import parse_expression
from gflow.models.potential_case import PotentialSpec
from gflow.models.functionals import grid_energy
from gflow.grids import CartesianGrid

#: points per chunk of the O(m^2) particle interaction sum
CHUNK = 1 << 11


class PotentialModel:
    """V = P + W * rho + lam |u|^2 / 2 at weighted points (the `Model` protocol)."""

    kind = "potential"
    #: no data measure: no minibatches, no plain-sum scaling
    data = None

    def __init__(self, spec: PotentialSpec, weight_decay: float = 0.0, temperature: float = 0.0):
        self.spec = spec
        self.axes = spec.axes
        self.weight_decay, self.temperature = weight_decay, temperature
        self.P = parse_expression(spec.potential, spec.axes)
        self.grad_P = [self.P.diff(a) for a in spec.axes]
        self.W = parse_expression(spec.interaction, ["r"]) if spec.interaction else None
        self.dW = self.W.diff("r") if self.W is not None else None
        #: W(0) where finite (the self-interaction of a smooth kernel), else 0: a singular one has none
        w0 = _at_zero(self.W) if self.W is not None else 0.0
        self.W0 = w0 if np.isfinite(w0) else 0.0
        self.trained = np.ones(len(spec.axes), dtype=bool)
        #: W or W' not finite at r = 0 (-log r, r**-3, sqrt r): the particles' neighbour cap
        #: applies (a 0/0 form such as sin(r)/r counts as singular: the cap is then only cautious)
        self.singular_interaction = self.W is not None and not (np.isfinite(w0) and np.isfinite(_at_zero(self.dW)))

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def external(self, u: np.ndarray) -> np.ndarray:
        """P(u) + lam |u|^2 / 2 at points u of shape (n, D)."""
        cols = [u[:, i] for i in range(self.ndim)]
        return np.broadcast_to(self.P(*cols), (len(u),)) + 0.5 * self.weight_decay * (u * u).sum(axis=1)

    def external_gradient(self, u: np.ndarray) -> np.ndarray:
        cols = [u[:, i] for i in range(self.ndim)]
        grad = np.stack([np.broadcast_to(g(*cols), (len(u),)) for g in self.grad_P], axis=1)
        return grad + self.weight_decay * u

    def interaction_gradient(self, u: np.ndarray, q: np.ndarray) -> np.ndarray:
        """sum_k q_k W'(|u - u_k|) (u - u_k) / |u - u_k| over the point set itself, skipping k = j."""
        out = np.zeros_like(u)
        if self.dW is None:
            return out
        for s in range(0, len(u), CHUNK):
            diff = u[s:s + CHUNK, None, :] - u[None, :, :]
            r = np.sqrt((diff * diff).sum(axis=2))
            with np.errstate(divide="ignore", invalid="ignore"):
                coef = np.where(r > 0, self.dW(r) / r, 0.0) * q
            out[s:s + CHUNK] = np.einsum("ij,ijk->ik", coef, diff)
        return out

    def interaction_energy(self, u: np.ndarray, q: np.ndarray) -> float:
        """1/2 sum_{j, k} q_j q_k W(|u_j - u_k|), pairs at distance 0 (j = k included) taking W0."""
        if self.W is None:
            return 0.0
        total = 0.0
        for s in range(0, len(u), CHUNK):
            diff = u[s:s + CHUNK, None, :] - u[None, :, :]
            r = np.sqrt((diff * diff).sum(axis=2))
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(r > 0, self.W(r), self.W0)
            total += float(q[s:s + CHUNK] @ w @ q)
        return 0.5 * total

    def potential_at(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> np.ndarray:
        """V(u_j) = P + lam |u_j|^2 / 2 + sum_k q_k W(|u_j - u_k|) at the points themselves (birth-death's
        rate), pairs at distance 0 taking W0 as in `interaction_energy` (numpy only)."""
        V = self.external(u).astype(float)
        if self.W is None:
            return V
        for s in range(0, len(u), CHUNK):
            diff = u[s:s + CHUNK, None, :] - u[None, :, :]
            r = np.sqrt((diff * diff).sum(axis=2))
            with np.errstate(divide="ignore", invalid="ignore"):
                V[s:s + CHUNK] += np.where(r > 0, self.W(r), self.W0) @ q
        return V

    def risk(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> float:
        """R[rho_m] = int P rho_m + 1/2 int int W rho_m rho_m (module text: self-interaction W0;
        numpy only: `kernel` is ignored)."""
        cols = [u[:, i] for i in range(self.ndim)]
        return float(q @ np.broadcast_to(self.P(*cols), (len(u),))) + self.interaction_energy(u, q)

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                 out: np.ndarray | None = None) -> np.ndarray:
        """-grad V(u_j) = -(grad P + lam u_j + sum_{k != j} q_k grad W(|u_j - u_k|)).

        The numpy path only (no fused kernel: `kernel` and `out` are ignored); the model has
        no data, so a minibatch is refused.
        """
        if batch is not None:
            raise ValueError("potential models have no data to draw minibatches from")
        return -(self.external_gradient(u) + self.interaction_gradient(u, q))

    def grid_operator(self, grid, threads: int = 1):
        return PotentialGridOperator(self, grid, threads)

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        return risk + 0.5 * self.weight_decay * float(q @ (u * u).sum(axis=1))


class PotentialGridOperator:
    """V, face velocities, risk and energy of a grid density for a `PotentialModel`."""

    def __init__(self, model: PotentialModel, grid: CartesianGrid, threads: int = 1):
        self.model, self.grid = model, grid
        self.lam, self.temperature = model.weight_decay, model.temperature
        mesh = grid.mesh()
        shape = grid.shape
        self.P = np.broadcast_to(model.P(*mesh), shape).copy()
        self.radius2 = sum(c**2 for c in mesh)
        self.external_faces = []
        for axis in range(grid.ndim):
            fm = grid.face_mesh(axis)
            face_shape = list(shape)
            face_shape[axis] += 1
            v = -(np.broadcast_to(model.grad_P[axis](*fm), face_shape) + self.lam * fm[axis])
            self.external_faces.append(np.ascontiguousarray(v))
        self.convolve = None
        if model.W is not None:
            from gflow.models.convolution import GridConvolution   # pyFFTW loads only when needed
            self.convolve = GridConvolution(model.W, grid, threads)
        self.external_centres: list[np.ndarray] | None = None   # built on first `centre_velocities`

    def interaction(self, rho: np.ndarray) -> np.ndarray | None:
        return self.convolve(rho) if self.convolve is not None else None

    def potential(self, rho: np.ndarray) -> np.ndarray:
        V = self.P + 0.5 * self.lam * self.radius2
        conv = self.interaction(rho)
        return V if conv is None else V + conv

    def face_velocities(self, rho: np.ndarray) -> list[np.ndarray]:
        conv = self.interaction(rho)
        if conv is None:
            return self.external_faces
        out = []
        for axis, ext in enumerate(self.external_faces):
            v = ext.copy()
            inner = [slice(None)] * self.grid.ndim
            inner[axis] = slice(1, -1)
            v[tuple(inner)] -= np.diff(conv, axis=axis) / self.grid.spacing[axis]
            out.append(v)
        return out

    def centre_velocities(self, rho: np.ndarray) -> list[np.ndarray]:
        """-dV/du_k at the cell centres: exact -grad P - lam u, minus grad(W * rho).

        W * rho is smooth but not periodic on the box, so its gradient is a fourth-order
        central difference (second-order one-sided in the two cells next to each edge).
        """
        if self.external_centres is None:
            mesh = self.grid.mesh()
            self.external_centres = [np.ascontiguousarray(np.broadcast_to(
                -(self.model.grad_P[k](*mesh) + self.lam * mesh[k]), self.grid.shape))
                for k in range(self.grid.ndim)]
        conv = self.interaction(rho)
        if conv is None:
            return self.external_centres
        return [ext - _derivative(conv, k, h) for k, (ext, h) in enumerate(zip(self.external_centres,
                                                                              self.grid.spacing))]

    def risk(self, rho: np.ndarray) -> float:
        vol = self.grid.cell_volume
        risk = float((self.P * rho).sum()) * vol
        conv = self.interaction(rho)
        if conv is not None:
            risk += 0.5 * float((conv * rho).sum()) * vol
        return risk

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        risk = self.risk(rho) if risk is None else risk
        return grid_energy(rho, risk, self.grid.cell_volume, self.lam, self.radius2, self.temperature)


def _at_zero(expression) -> float:
    """A parsed expression of r at r = 0 (inf or nan where it is singular there)."""
    with np.errstate(all="ignore"):
        return float(np.broadcast_to(expression(np.zeros(1)), (1,))[0])


def _derivative(f: np.ndarray, axis: int, h: float) -> np.ndarray:
    """df/du along `axis`: fourth-order central inside, second order in the two edge cells;
    with one cell there is no derivative to take (zero), with two a first-order difference."""
    n = f.shape[axis]
    if n < 3:
        return np.zeros_like(f) if n == 1 else np.gradient(f, h, axis=axis, edge_order=1)
    d = np.gradient(f, h, axis=axis, edge_order=2)
    if f.shape[axis] >= 5:
        g = np.moveaxis(f, axis, 0)
        np.moveaxis(d, axis, 0)[2:-2] = (g[:-4] - 8.0 * g[1:-3] + 8.0 * g[3:-1] - g[4:]) / (12.0 * h)
    return d
