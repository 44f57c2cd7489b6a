"""The mean-field ResNet on a grid: L layer densities on one (layer, a, w[, b]) grid, state dimension 1.

A layer's density enters the flow only through its a-moment m1_l(w, b) = int a rho_l da
(phi = a sigma(w z + b) is linear in a), so each layer is a set of effective neurons, one per
(w, b) cell with amplitude m1_l dw db (`gflow.models.resnet_depth.Layer`), and one
forward/backward sweep costs O(L N_wb M) for M data nodes, never O(L N M) with N the cells.
The face velocities are the exact -grad V_l at the faces (`resnet_depth`):

    along a:  -(E_x[P_{l+1} sigma(w z_l + b)] + lam a),
    along w:  -(a E_x[P_{l+1} sigma'(w z_l + b) z_l] + lam w),
    along b:  -(a E_x[P_{l+1} sigma'(w z_l + b)] + lam b),

so, as for the two-layer model, nothing is differenced. Grid cells hold the per-layer density:
the cell volume includes the layer spacing 1/L, so sum rho dV = (1/L) sum_l int rho_l du = 1.
"""
from __future__ import annotations

import numpy as np

from gflow.grids import CartesianGrid
from gflow.models.functionals import grid_energy
from gflow.models.resnet_depth import Layer, forward, msa_residuals, sweep


class ResNetGridOperator:
    """V_l, face velocities, risk and energy of the layer densities rho (L, n_a, n_w[, n_b])."""

    def __init__(self, model, grid: CartesianGrid):
        if grid.ndim != model.ndim:
            raise ValueError("grid and model have different numbers of axes")
        if model.input_dim != 1:
            raise ValueError(f"grid solvers take a ResNet of state dimension 1 (a, w[, b] per layer); "
                             f"input_dim = {model.input_dim} has {len(model.parameter_axes)} axes per layer: "
                             "use the particle solver")
        self.model, self.grid = model, grid
        self.lam, self.temperature = model.weight_decay, model.temperature
        self.L = model.layers
        self.a = grid.centres[1]
        self.da = grid.spacing[1]
        self.wb_shape = grid.shape[2:]
        self.wb_volume = float(np.prod(grid.spacing[2:]))
        self.W, self.B = self._neurons([grid.centres[i] for i in range(2, grid.ndim)])
        self._point_sets: dict[tuple[int, bool], tuple] = {}
        mesh = grid.mesh()
        #: |u|^2 over the parameter axes (the layer coordinate is no parameter)
        self.radius2 = sum(c**2 for c in mesh[1:])

    def _neurons(self, coords: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(w, b) of every point of the product of `coords`, as (N, 1) and (N,) or None."""
        mesh = np.meshgrid(*coords, indexing="ij")
        W = mesh[0].reshape(-1, 1)
        return W, (mesh[1].ravel() if self.model.bias else None)

    # ------------------------------------------------------------------ the sweep
    def a_moments(self, rho: np.ndarray) -> np.ndarray:
        """m1_l(w, b) = sum_a a rho_l da, shape (L, *wb_shape)."""
        return np.tensordot(rho, self.a * self.da, axes=([1], [0]))

    def layers(self, rho: np.ndarray) -> list[Layer]:
        return self.layers_of_moments(self.a_moments(rho))

    def layers_of_moments(self, m1: np.ndarray) -> list[Layer]:
        """The effective neurons of every layer from the a-moments m1 (L, *wb_shape) (da included)."""
        m1 = m1.reshape(self.L, -1) * self.wb_volume
        return [Layer(m1[l][:, None], self.W, self.B) for l in range(self.L)]

    def sweep(self, rho: np.ndarray):
        m = self.model
        return sweep(self.layers(rho), m.x, m.y, m.sigma, m.dsigma)

    def risk(self, rho: np.ndarray) -> float:
        m = self.model
        z, _ = forward(self.layers(rho), m.x, m.sigma, 1.0 / self.L)
        r = z[-1].sum(axis=1) - m.y
        return 0.5 * float(m.p @ (r * r))

    # ------------------------------------------------------------------ V and its gradient
    def _terms(self, sw, axis: int, at_faces: bool, now: list[Layer] | None = None) -> np.ndarray:
        """The data part of dV_l/du_axis (no weight decay), for every layer, at the faces normal
        to `axis` (or at the centres), shape (L, *wb shape with n_k + 1 along axis k); divided
        by a along w and b.

        With the extended MSA (msa_rho > 0) and the current layers `now`, the derivative of
        the layer functional V = E[(P + r e) a sigma] + r E[(w e') (a P) sigma'] instead
        (`resnet_depth.layer_gradient`, d = 1): along a E[(P + r e) sigma] + r w E[e' P sigma'],
        along w E[(P + r e) sigma' z] + r E[P e' sigma'] + r w E[e' P sigma'' z], along b
        E[(P + r e) sigma'] + r w E[e' P sigma''].
        """
        m = self.model
        W, B, shape = self._points(axis, at_faces)
        r = m.spec.msa_rho if now is not None else 0.0
        out = np.empty((self.L, *shape))
        for l in range(self.L):
            z, pP = sw.z[l][:, 0], sw.P[l][:, 0] * m.p
            pre = W @ z[None, :]
            if B is not None:
                pre += B[:, None]
            Q = pP
            if r:
                e, e2 = (v[:, 0] for v in msa_residuals(now[l], sw, l, m.sigma, m.dsigma))
                Q, pPe = pP + r * e * m.p, pP * e2
            if axis == 1:                  # dV/da = E[P sigma]
                t = m.sigma(pre) @ Q
                if r:
                    t += r * W[:, 0] * (m.dsigma(pre) @ pPe)
            else:                          # dV/dw = a E[P sigma' z], dV/db = a E[P sigma']
                ds = m.dsigma(pre)
                t = ds @ (Q * z) if axis == 2 else ds @ Q
                if r:
                    d2 = m.d2sigma(pre)
                    t += r * W[:, 0] * (d2 @ (pPe * z if axis == 2 else pPe))
                    if axis == 2:
                        t += r * (ds @ pPe)
            out[l] = t.reshape(shape)
        return out

    def _points(self, axis: int, at_faces: bool) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
        """(w, b) at the faces normal to `axis` (or at the centres) and their (w, b) shape,
        made once per grid: every evaluation of every stage uses them."""
        key = (axis, at_faces)
        if key not in self._point_sets:
            grid = self.grid
            coords = [grid.faces[i] if (at_faces and i == axis) else grid.centres[i] for i in range(2, grid.ndim)]
            self._point_sets[key] = (*self._neurons(coords), [len(c) for c in coords])
        return self._point_sets[key]

    def _velocities(self, rho: np.ndarray, at_faces: bool) -> list[np.ndarray | None]:
        m, grid = self.model, self.grid
        sw = m.schedule.get(lambda: self.sweep(rho))
        D = grid.ndim
        out: list[np.ndarray | None] = [None] * D
        for axis in range(1, D):
            if not m.trained[axis]:
                continue
            coord = grid.faces[axis] if at_faces else grid.centres[axis]
            shape = [1] * D
            shape[axis] = -1
            decay = self.lam * coord.reshape(shape)
            terms = self._terms(sw, axis, at_faces, self.layers(rho) if m.spec.msa_rho else None)
            if axis == 1:
                v = -(terms[:, None] + decay)
            else:
                v = -(self.a.reshape(1, -1, *[1] * (D - 2)) * terms[:, None] + decay)
            out[axis] = np.broadcast_to(v, tuple(len(grid.faces[i]) if (at_faces and i == axis) else grid.shape[i]
                                                 for i in range(D)))
        return out

    #: `velocity_factors` takes and gives one set of factors per layer (the fused fv stage)
    layered = True

    def velocity_factors(self, m1: np.ndarray):
        """The separable pieces of every layer's face velocities, from the a-moments m1 (L, *wb_shape)
        (da included), as the two-layer model's (`TwoLayerGridOperator.velocity_factors`) with a
        leading layer index: v_a = -(G_l + L_0(a_face)), v_k = -(a H_l,k + L_k(u_k face)), G_l
        (L, *wb_shape), H_l,k (L, wb_shape with n_k + 1 along k); frozen axes get zeros. The same
        sweep (and refresh schedule) as `face_velocities`, so both paths step alike."""
        m, grid = self.model, self.grid
        layers = self.layers_of_moments(m1)
        sw = m.schedule.get(lambda: sweep(layers, m.x, m.y, m.sigma, m.dsigma))
        now = layers if m.spec.msa_rho else None
        G = self._terms(sw, 1, True, now) if m.trained[1] else np.zeros((self.L, *self.wb_shape))
        rest = []
        for axis in range(2, grid.ndim):
            if m.trained[axis]:
                H = self._terms(sw, axis, True, now)
            else:
                H = np.zeros((self.L, *self._points(axis, True)[2]))
            rest.append((H, self.lam * grid.faces[axis] if m.trained[axis] else np.zeros(grid.shape[axis] + 1)))
        L0 = self.lam * grid.faces[1] if m.trained[1] else np.zeros(grid.shape[1] + 1)
        return G, L0, rest

    def face_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        """-dV_l/du_k on the faces normal to axis k of every layer (None: the layer axis, frozen axes)."""
        return self._velocities(rho, True)

    def centre_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        return self._velocities(rho, False)

    def potential(self, rho: np.ndarray) -> np.ndarray:
        """V_l at the cell centres of every layer."""
        sw = self.sweep(rho)
        G = self._terms(sw, 1, False)
        a = self.a.reshape(1, -1, *[1] * (self.grid.ndim - 2))
        return a * G[:, None] + 0.5 * self.lam * self.radius2

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        risk = self.risk(rho) if risk is None else risk
        return grid_energy(rho, risk, self.grid.cell_volume, self.lam, self.radius2, self.temperature)
