"""Separable evaluation of the two-layer V on a grid with axes (a, w_1..w_d[, b]).

V is linear in a, so on an N_a x N_wb grid the network needs only the a-moment
m1(w, b) = sum_a a rho da, and V needs g(w, b) = E_x[r sigma(w.x + b)]: the features
sigma(w.x + b) at the (fixed) grid nodes are computed once, and each evaluation is a few
matrix-vector products of size N_wb x M, never N_a N_wb M (BACKGROUND.md).
Face velocities are the exact -dV/du at face positions (no differencing of V).
"""
from __future__ import annotations

import numpy as np

from grids import CartesianGrid
from gflow.two_layer import TwoLayerModel


class TwoLayerGridOperator:
    """V, face velocities, risk and energy of a grid density for a `TwoLayerModel`."""

    def __init__(self, model: TwoLayerModel, grid: CartesianGrid):
        if grid.ndim != model.ndim:
            raise ValueError("grid and model have different numbers of axes")
        self.model, self.grid = model, grid
        self.lam, self.temperature = model.weight_decay, model.temperature
        self.a = grid.centres[0]
        self.da = grid.spacing[0]
        self.wb_shape = grid.shape[1:]
        self.wb_volume = float(np.prod(grid.spacing[1:]))
        self.features = model.sigma(self._preactivation([grid.centres[i] for i in range(1, grid.ndim)]))
        # derivative features at the faces of each trained w/b axis, premultiplied by x_k (or 1)
        self.face_features = {}
        for axis in range(1, grid.ndim):
            if model.trained[axis]:
                coords = [grid.faces[i] if i == axis else grid.centres[i] for i in range(1, grid.ndim)]
                ds = model.dsigma(self._preactivation(coords))
                k = axis - 1
                self.face_features[axis] = ds * model.x[:, k] if k < model.input_dim else ds
        self.radius2 = sum(c**2 for c in grid.mesh())

    def _preactivation(self, coords: list[np.ndarray]) -> np.ndarray:
        """w.x + b for all (w, b) in the product of `coords`, shape (N, M)."""
        mesh = np.meshgrid(*coords, indexing="ij")
        m = self.model
        z = sum(mesh[k].reshape(-1, 1) * m.x[:, k] for k in range(m.input_dim))
        if m.bias:
            z = z + mesh[-1].reshape(-1, 1)
        return z

    # ------------------------------------------------------------------ evaluation
    def a_moment(self, rho: np.ndarray) -> np.ndarray:
        return np.tensordot(self.a * self.da, rho, axes=(0, 0))

    def residual(self, rho: np.ndarray) -> np.ndarray:
        m1 = self.a_moment(rho).ravel() * self.wb_volume
        return m1 @ self.features - self.model.y

    def risk(self, rho: np.ndarray) -> float:
        return self.model.risk_from_residual(self.residual(rho))

    def g(self, pr: np.ndarray) -> np.ndarray:
        """g(w, b) = E_x[r sigma(w.x + b)] at the (w, b) centres, from pr = p * r."""
        return (self.features @ pr).reshape(self.wb_shape)

    def potential(self, rho: np.ndarray) -> np.ndarray:
        """V at the cell centres."""
        g = self.g(self.model.p * self.residual(rho))
        return self.a.reshape(-1, *[1] * len(self.wb_shape)) * g + 0.5 * self.lam * self.radius2

    def face_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV/du_k on the faces normal to each axis k (None for frozen axes).

        Entry k has the grid's shape with n_k + 1 along axis k (boundary faces included).
        """
        grid, lam = self.grid, self.lam
        pr = self.model.p * self.residual(rho)
        out: list[np.ndarray | None] = [None] * grid.ndim
        if self.model.trained[0]:
            a_faces = grid.faces[0].reshape(-1, *[1] * len(self.wb_shape))
            out[0] = -(self.g(pr) + lam * a_faces)
        for axis, feats in self.face_features.items():
            face_shape = list(self.wb_shape)
            face_shape[axis - 1] += 1
            h = (feats @ pr).reshape(face_shape)
            coord = grid.face_mesh(axis)[axis]
            out[axis] = -(self.a.reshape(-1, *[1] * len(self.wb_shape)) * h + lam * coord)
        return out

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        vol = self.grid.cell_volume
        risk = self.risk(rho) if risk is None else risk
        energy = risk + 0.5 * self.lam * float((self.radius2 * rho).sum()) * vol
        if self.temperature > 0:
            energy += self.temperature * entropy(rho, vol)
        return energy


def entropy(rho: np.ndarray, cell_volume: float) -> float:
    """int rho log rho with 0 log 0 = 0."""
    pos = rho[rho > 0]
    return float((pos * np.log(pos)).sum()) * cell_volume
