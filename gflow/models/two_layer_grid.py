"""Separable evaluation of the two-layer V on a grid with axes (a, v_1..v_k): phi = a psi(x; v).

V is linear in a, so on an N_a x N_v grid the network needs only the a-moment
m1(v) = sum_a a rho da, and V needs g(v) = E_x[r psi(x; v)]: the features psi(x; v) at the
(fixed) grid nodes are computed once, and each evaluation is a few matrix-vector products of
size N_v x M, never N_a N_v M (BACKGROUND.md). Face velocities are the exact -dV/du at face
positions (no differencing of V), from the face features d psi / d v_k.

The model supplies the features (`separable_features`): psi = sigma(w.x + b) with
d psi / dw_k = sigma'(w.x + b) x_k and d psi / db = sigma'(w.x + b) for the sigma units of
`TwoLayerModel`, the symbolic d phi / da and its derivatives for a unit linear in its first
axis (`gflow.models.unit_network`, e.g. the Gaussian RBF, v = y).
"""
from __future__ import annotations

import numpy as np

from gflow.grids import CartesianGrid
from gflow.models.functionals import grid_energy


class TwoLayerGridOperator:
    """V, face velocities, risk and energy of a grid density for a model whose unit is a psi(x; v)
    (`TwoLayerModel`, or a separable `UnitNetworkModel`)."""

    def __init__(self, model, grid: CartesianGrid):
        if grid.ndim != model.ndim:
            raise ValueError("grid and model have different numbers of axes")
        self.model, self.grid = model, grid
        self.lam, self.temperature = model.weight_decay, model.temperature
        self.a = grid.centres[0]
        self.da = grid.spacing[0]
        self.wb_shape = grid.shape[1:]
        self.wb_volume = float(np.prod(grid.spacing[1:]))
        self.features = model.separable_features([grid.centres[i] for i in range(1, grid.ndim)])
        # derivative features d psi / d v_k at the faces of each trained v axis
        self.face_features = {}
        for axis in range(1, grid.ndim):
            if model.trained[axis]:
                coords = [grid.faces[i] if i == axis else grid.centres[i] for i in range(1, grid.ndim)]
                self.face_features[axis] = model.separable_features(coords, axis)
        self.radius2 = sum(c**2 for c in grid.mesh())
        self._centre_features: dict[int, np.ndarray] = {}   # built on first `centre_velocities`

    # ------------------------------------------------------------------ evaluation
    def a_moment(self, rho: np.ndarray) -> np.ndarray:
        return np.tensordot(self.a * self.da, rho, axes=(0, 0))

    def residual(self, rho: np.ndarray) -> np.ndarray:
        return self.residual_from_moment(self.a_moment(rho))

    def residual_from_moment(self, m1: np.ndarray) -> np.ndarray:
        """r = f - f* from the a-moment m1(w, b) = sum_a a rho da: f depends on rho only through it."""
        return (m1.ravel() * self.wb_volume) @ self.features - self.model.y

    def risk(self, rho: np.ndarray) -> float:
        return self.model.risk_from_residual(self.residual(rho))

    def g(self, pr: np.ndarray) -> np.ndarray:
        """g(v) = E_x[r psi(x; v)] at the v centres, from pr = p * r."""
        return (self.features @ pr).reshape(self.wb_shape)

    def potential(self, rho: np.ndarray) -> np.ndarray:
        """V at the cell centres."""
        g = self.g(self.model.p * self.residual(rho))
        return self.a.reshape(-1, *[1] * len(self.wb_shape)) * g + 0.5 * self.lam * self.radius2

    def velocity_factors(self, m1: np.ndarray):
        """The separable pieces of the face velocities, from the a-moment m1.

        v_0 = -(G + L_0(a_face)) along a, and v_k = -(a H_k + L_k(u_k face)) along the other
        axes, with G = g(v), H_k = E_x[r d psi / d v_k] at the faces of axis k (for a sigma
        unit E_x[r sigma'(w.x + b) x_k]) and
        L_k = lam * (face coordinate). Frozen axes get zero factors. Returns
        (G, L_0, [(H_k, L_k) for k = 1..D-1]), arrays of size N_wb or n_k + 1 only.
        """
        grid, lam = self.grid, self.lam
        pr = self.model.p * self.residual_from_moment(m1)
        if self.model.trained[0]:
            G, L0 = self.g(pr), lam * grid.faces[0]
        else:
            G, L0 = np.zeros(self.wb_shape), np.zeros(grid.shape[0] + 1)
        rest = []
        for axis in range(1, grid.ndim):
            face_shape = list(self.wb_shape)
            face_shape[axis - 1] += 1
            if axis in self.face_features:
                rest.append(((self.face_features[axis] @ pr).reshape(face_shape), lam * grid.faces[axis]))
            else:
                rest.append((np.zeros(face_shape), np.zeros(grid.shape[axis] + 1)))
        return G, L0, rest

    def face_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k on the faces normal to each axis k (None for frozen axes).

        Entry k has the grid's shape with n_k + 1 along axis k (boundary faces included).
        """
        D = self.grid.ndim
        G, L0, rest = self.velocity_factors(self.a_moment(rho))
        out: list[np.ndarray | None] = [None] * D
        if self.model.trained[0]:
            out[0] = -(G + L0.reshape(-1, *[1] * (D - 1)))
        a = self.a.reshape(-1, *[1] * (D - 1))
        for axis, (H, L) in enumerate(rest, start=1):
            if self.model.trained[axis]:
                shape = [1] * D
                shape[axis] = -1
                out[axis] = -(a * H + L.reshape(shape))
        return out

    def centre_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k at the cell centres (None for frozen axes), each of the grid's shape.

        The same exact derivatives as `face_velocities`, evaluated at the centres (for
        schemes that need the velocity where the density lives, e.g. pseudo-spectral).
        """
        grid, lam = self.grid, self.lam
        pr = self.model.p * self.residual(rho)
        a = self.a.reshape(-1, *[1] * len(self.wb_shape))
        out: list[np.ndarray | None] = [None] * grid.ndim
        if self.model.trained[0]:
            out[0] = -(self.g(pr) + lam * a)
        mesh = grid.mesh()
        for axis in self.face_features:
            if axis not in self._centre_features:
                self._centre_features[axis] = self.model.separable_features(
                    [grid.centres[i] for i in range(1, grid.ndim)], axis)
            h = (self._centre_features[axis] @ pr).reshape(self.wb_shape)
            out[axis] = -(a * h + lam * mesh[axis])
        return [None if v is None else np.broadcast_to(v, grid.shape) for v in out]

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        risk = self.risk(rho) if risk is None else risk
        return grid_energy(rho, risk, self.grid.cell_volume, self.lam, self.radius2, self.temperature)

