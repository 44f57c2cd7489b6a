"""The general grid evaluation of a network of any unit phi(x; u): cost O(N M) per evaluation.

For a unit that is not a psi(x; v) (`gflow.models.two_layer_grid` serves those), nothing
factors: with rho the cell averages on N cells of volume |c| and M data nodes,

    f(x_m)     = sum_c |c| rho_c phi(x_m; u_c)                    (midpoint rule, cell centres u_c),
    V(u_c)     = sum_m p_m r_m phi(x_m; u_c) + lam |u_c|^2 / 2,
    -dV/du_k   = -(sum_m p_m r_m d phi / d u_k (x_m; u_f) + lam u_f,k)   at the faces u_f of axis k,

the exact symbolic derivatives at the face positions (as the separable path, no differencing of
V). The feature matrices phi(x_m; u_c) and d phi / d u_k (x_m; u_f) are computed once and kept
while they fit in CACHE_BYTES (in that order: the centres' phi first, then each trained axis'
faces); a matrix that does not fit is evaluated again, block by block, at every call (bounded
memory, `UnitNetworkModel.blocks`). No Python loop runs over cells or data nodes.
"""
from __future__ import annotations

import numpy as np

from gflow.grids import CartesianGrid
from gflow.models.functionals import grid_energy

#: bytes of feature matrices a general grid operator keeps between evaluations
CACHE_BYTES = 1 << 28


class _Features:
    """The values of one expression (phi or a derivative) at fixed points and the data nodes:
    a cached (P, M) matrix, or recomputed in blocks at each product."""

    def __init__(self, model, points: np.ndarray, expr, cache: list[int]):
        self.model, self.points, self.expr = model, points, expr
        nbytes = 8 * len(points) * len(model.x)
        self.matrix = None
        if nbytes <= cache[0]:
            cache[0] -= nbytes
            self.matrix = model.matrix(points, expr)

    def times(self, c: np.ndarray) -> np.ndarray:
        """sum_m e(x_m; u_i) c_m for every point i, shape (P,)."""
        if self.matrix is not None:
            return self.matrix @ c
        return self.model.products(self.points, [self.expr], c)[:, 0]

    def weighted(self, w: np.ndarray) -> np.ndarray:
        """sum_i w_i e(x_m; u_i) at every data node, shape (M,)."""
        if self.matrix is not None:
            return w @ self.matrix
        out = np.zeros(len(self.model.x))
        for rows, (v,) in self.model.blocks(self.points, [self.expr]):
            out += w[rows] @ v
        return out


def _points(coords: list[np.ndarray]) -> np.ndarray:
    full = np.meshgrid(*coords, indexing="ij")
    return np.stack([c.ravel() for c in full], axis=1)


class UnitGridOperator:
    """V, face and centre velocities, risk and energy of a grid density for a `UnitNetworkModel`."""

    def __init__(self, model, grid: CartesianGrid, cache_bytes: int = CACHE_BYTES):
        if grid.ndim != model.ndim:
            raise ValueError("grid and model have different numbers of axes")
        self.model, self.grid = model, grid
        self.lam, self.temperature = model.weight_decay, model.temperature
        self._cache = [int(cache_bytes)]
        self.phi = _Features(model, grid.points(), model.phi, self._cache)
        self.faces = {}
        for axis in range(grid.ndim):
            if model.trained[axis]:
                coords = [grid.faces[i] if i == axis else grid.centres[i] for i in range(grid.ndim)]
                self.faces[axis] = _Features(model, _points(coords), model.dphi[axis], self._cache)
        self._centres: dict[int, _Features] = {}   # built on first `centre_velocities`
        self.radius2 = sum(c**2 for c in grid.mesh())

    def residual(self, rho: np.ndarray) -> np.ndarray:
        """r = f - f* at the data nodes, f the midpoint rule over the cells."""
        return self.phi.weighted(rho.ravel() * self.grid.cell_volume) - self.model.y

    def risk(self, rho: np.ndarray) -> float:
        return self.model.risk_from_residual(self.residual(rho))

    def potential(self, rho: np.ndarray) -> np.ndarray:
        """V at the cell centres."""
        pr = self.model.p * self.residual(rho)
        return self.phi.times(pr).reshape(self.grid.shape) + 0.5 * self.lam * self.radius2

    def _line(self, values: np.ndarray, axis: int) -> np.ndarray:
        shape = [1] * self.grid.ndim
        shape[axis] = -1
        return values.reshape(shape)

    def face_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k on the faces normal to each trained axis k (n_k + 1 along it), None where frozen."""
        pr = self.model.p * self.residual(rho)
        out: list[np.ndarray | None] = [None] * self.grid.ndim
        for axis, features in self.faces.items():
            shape = list(self.grid.shape)
            shape[axis] += 1
            out[axis] = -(features.times(pr).reshape(shape) + self.lam * self._line(self.grid.faces[axis], axis))
        return out

    def centre_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k at the cell centres (None for frozen axes), each of the grid's shape."""
        grid = self.grid
        pr = self.model.p * self.residual(rho)
        out: list[np.ndarray | None] = [None] * grid.ndim
        for axis in self.faces:
            if axis not in self._centres:
                self._centres[axis] = _Features(self.model, grid.points(), self.model.dphi[axis], self._cache)
            h = self._centres[axis].times(pr).reshape(grid.shape)
            out[axis] = -(h + self.lam * self._line(grid.centres[axis], axis))
        return out

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        risk = self.risk(rho) if risk is None else risk
        return grid_energy(rho, risk, self.grid.cell_volume, self.lam, self.radius2, self.temperature)
