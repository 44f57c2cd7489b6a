"""The two-layer network on rotation-invariant data: the reduced model and the full one.

Data x in R^d whose law and target are invariant under the rotations Q that fix e1 (the
target depends on x1 = e1.x and |x| only), and an initial density invariant under the same
rotations acting on w: then rho_t stays invariant (V[rho](Q u) = V[rho](u), so the velocity
field is equivariant), and the flow is that of its image under the invariants

    (a, w, b) -> (a, w_par, w_perp, b),   w_par = e1.w,  w_perp = |w - w_par e1|

(Mei, Montanari and Nguyen, "A mean field view of the landscape of two-layer neural networks",
PNAS 2018, section on isotropic Gaussians). The reduced density carries the Jacobian of the
spheres of w_perp: rho~(a, w_par, w_perp, b) = |S^{d-2}| w_perp^(d-2) rho(a, w_par e1 + w_perp e, b)
(any unit e orthogonal to e1), a probability density on the reduced axes. Without noise it
obeys the same continuity equation d_t rho~ = div(rho~ grad V) in the reduced axes, with V the
full V at (a, w_par e1 + w_perp e, b). The Laplacian in R^d becomes, for rho~,

    T lap rho  ->  T lap rho~ - T d_{w_perp}(rho~ (d - 2) / w_perp),

an extra outward drift (d - 2) T / w_perp: the gradient of -(d - 2) T log w_perp, which the
free energy carries as -T (d - 2) int rho~ log w_perp (the entropy of rho~ against the
Jacobian). Weight decay acts on |u|^2 = a^2 + w_par^2 + w_perp^2 + b^2 unchanged. For data
invariant under every rotation (class labels, a target in |x|) the invariants are (a, w_norm, b),
with w_norm^(d-1) in place of w_perp^(d-2).

E_x is a Gauss rule in the outer variables (x1, s = |x_perp|) times one in the cosine c between
x_perp and w_perp (`isotropic_case.ReducedMeasure`, `isotropic_rules`): the preactivation is
w_par x1 + w_perp (s c) + b, linear in the grid axes, so the separable grid path of
`two_layer_grid` applies unchanged with inputs (x1, s c); only the network is the average over
c of those pair values (f(x) depends on x through (x1, s) alone), i.e. the residual is that
average minus f*, repeated over the cosines.

`FullIsotropicModel` is the same network with its neurons in the whole R^(1 + d [+ 1]) and the
data drawn from the law: real gradient descent, which the reduced PDE is checked against. Its
particles are drawn on the case's axes and lifted by a uniform direction of w_perp, and are
seen (binned, stored) through the invariants again, so both runs write the same axes.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from gflow.errors import InputError
from gflow.models.data import DataMeasure
from gflow.models.isotropic_case import ReducedMeasure, draw_data, reduced_measure, sampled_measure, target_of
from gflow.models.two_layer import TwoLayerModel
from gflow.models.two_layer_case import TwoLayerSpec
from gflow.models.two_layer_grid import TwoLayerGridOperator


def build_isotropic(case):
    spec = case.model
    if spec.symmetry == "rotations":
        return ReducedTwoLayerModel(spec, reduced_measure(spec), case.weight_decay, case.temperature)
    return FullIsotropicModel(spec, case.weight_decay, case.temperature)


class _Radial:
    """The radial axis of the invariants (w_perp or w_norm): its index, and the power k - 1 of
    its Jacobian r^(k-1) (k = d - 1 or d, the dimension of the vector it is the norm of)."""

    def _radial_setup(self, spec: TwoLayerSpec) -> None:
        (self.radial, k), = spec.radial_axes.items()
        self.jacobian_power = k - 1
        self.dim = spec.data.dim

    def risk_weight_gradient(self, path, steps, q):
        raise InputError("fluctuation = true: the finite-width prediction is not derived for isotropic data "
                         "(its adjoint differentiates the plain residual, and its quadrature has no chi law)")

    def initial_bias(self, u, q):
        raise InputError("gflow ensemble: the t = 0 bias is not derived for isotropic data")

    def _jacobian_energy(self, radius: np.ndarray, q: np.ndarray) -> float:
        """-T (k - 1) sum_j q_j log r_j: the free energy's entropy relative to the Jacobian."""
        if self.temperature == 0 or self.jacobian_power == 0:
            return 0.0
        with np.errstate(divide="ignore"):
            return -self.temperature * self.jacobian_power * float(q @ np.log(radius))


class ReducedTwoLayerModel(_Radial, TwoLayerModel):
    """V and grad V on the invariant axes (a, w_par, w_perp[, b]) or (a, w_norm[, b])."""

    def __init__(self, spec: TwoLayerSpec, measure: ReducedMeasure, weight_decay: float = 0.0,
                 temperature: float = 0.0):
        nc = len(measure.inner)
        super().__init__(spec, DataMeasure(measure.x, measure.p, np.repeat(measure.y_outer, nc)), None,
                         weight_decay, temperature)
        self._radial_setup(spec)
        self.measure = measure
        self.target = None                 # f* is a function of (x1, |x|), not of the rule's inputs
        #: no minibatches: a batch of (outer, cosine) pairs is not a batch of data points
        self.data = None

    def project(self, pair_values: np.ndarray) -> np.ndarray:
        """The residual at the pairs from the network's values there: average over the cosines,
        minus f*, repeated over the cosines again."""
        nc = len(self.measure.inner)
        outer = pair_values.reshape(-1, nc) @ self.measure.inner
        return np.repeat(outer - self.measure.y_outer, nc)

    def residual(self, u: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.project(self.network(u, q))

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                 out: np.ndarray | None = None) -> np.ndarray:
        if batch is not None:
            raise ValueError("the reduced model takes no minibatches")
        # the fused kernel averages over the cosines through `project`, as `residual` does
        v = super().velocity(u, q, None, kernel, out)
        if self.temperature > 0 and self.trained[self.radial]:
            v[:, self.radial] += self.jacobian_power * self.temperature / u[:, self.radial]
        return v

    def potential(self, u: np.ndarray, r: np.ndarray) -> np.ndarray:
        V = super().potential(u, r)
        if self.temperature > 0:
            V -= self.jacobian_power * self.temperature * np.log(u[:, self.radial])
        return V

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        return super().energy(risk, u, q) + self._jacobian_energy(u[:, self.radial], q)

    def grid_operator(self, grid, threads: int = 1):
        return ReducedGridOperator(self, grid)


class ReducedGridOperator(TwoLayerGridOperator):
    """The separable grid path with the averaged residual and the radial drift (k - 1) T / r."""

    model: ReducedTwoLayerModel

    def __init__(self, model: ReducedTwoLayerModel, grid):
        super().__init__(model, grid)
        self.radial = model.radial

    def residual_from_moment(self, m1: np.ndarray) -> np.ndarray:
        return self.model.project((m1.ravel() * self.wb_volume) @ self.features)

    def _drift(self, r: np.ndarray) -> np.ndarray:
        """(k - 1) T / r, zero at r <= 0 (a face at r = 0 is the box's wall: no flux crosses it)."""
        T, power = self.model.temperature, self.model.jacobian_power
        out = np.zeros_like(r)
        if T > 0:
            np.divide(power * T, r, out=out, where=r > 0)
        return out

    def velocity_factors(self, m1: np.ndarray):
        G, L0, rest = super().velocity_factors(m1)
        if self.model.trained[self.radial]:
            H, L = rest[self.radial - 1]
            rest[self.radial - 1] = (H, L - self._drift(self.grid.faces[self.radial]))
        return G, L0, rest

    def centre_velocities(self, rho: np.ndarray) -> list[np.ndarray | None]:
        out = super().centre_velocities(rho)
        if out[self.radial] is not None and self.model.temperature > 0:
            out[self.radial] = out[self.radial] + self._radial_column(self._drift(self.grid.centres[self.radial]))
        return out

    def _radial_column(self, values: np.ndarray) -> np.ndarray:
        shape = [1] * self.grid.ndim
        shape[self.radial] = -1
        return values.reshape(shape)

    def potential(self, rho: np.ndarray) -> np.ndarray:
        V = super().potential(rho)
        if self.model.temperature > 0:
            V = V - self.model.jacobian_power * self.model.temperature * self._radial_column(
                np.log(self.grid.centres[self.radial]))
        return V

    def energy(self, rho: np.ndarray, risk: float | None = None) -> float:
        energy = super().energy(rho, risk)
        if self.model.temperature > 0:
            others = tuple(i for i in range(rho.ndim) if i != self.radial)
            masses = rho.sum(axis=others) * self.grid.cell_volume      # the radial marginal's cell masses
            energy += self.model._jacobian_energy(self.grid.centres[self.radial], masses)
        return energy


class FullIsotropicModel(_Radial, TwoLayerModel):
    """The network with neurons in R^(1 + d [+ 1]) and `samples` draws of the data law."""

    def __init__(self, spec: TwoLayerSpec, weight_decay: float = 0.0, temperature: float = 0.0):
        d = spec.data.dim
        ws = tuple(f"w{i + 1}" for i in range(d))
        axes = ("a", *ws, *(("b",) if spec.bias else ()))
        owner = {"w_par": ws[:1], "w_perp": ws[1:], "w_norm": ws}
        train = {a for t in spec.train for a in owner.get(t, (t,))}
        full = replace(spec, axes=axes, train=tuple(a for a in axes if a in train), input_dim=d)
        super().__init__(full, sampled_measure(spec), None, weight_decay, temperature)
        self._radial_setup(spec)
        self.case_spec = spec
        self.keep_e1 = "w_par" in spec.axes
        self._target_x1_r = f = target_of(spec)
        self.target = None if f is None else (lambda x: f(x[:, 0], np.linalg.norm(x, axis=1)))

    def case_coordinates(self, u: np.ndarray) -> np.ndarray:
        """The invariants (a, w_par, w_perp[, b]) or (a, w_norm[, b]) of neurons u (n, 1 + d [+ 1])."""
        d = self.dim
        w = u[:, 1:1 + d]
        columns = [u[:, :1], w[:, :1], np.linalg.norm(w[:, 1:], axis=1)[:, None]] if self.keep_e1 else \
            [u[:, :1], np.linalg.norm(w, axis=1)[:, None]]
        return np.hstack([*columns, u[:, 1 + d:]])

    def lift(self, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Neurons in R^(1 + d [+ 1]) with the invariants v: the radial coordinate times a uniform
        direction of its subspace (the law of an invariant density given its invariants)."""
        d, n = self.dim, len(v)
        k = d - 1 if self.keep_e1 else d
        direction = rng.standard_normal((n, k))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        w_rest = v[:, self.radial:self.radial + 1] * direction
        head = [v[:, :1], v[:, 1:2]] if self.keep_e1 else [v[:, :1]]
        return np.hstack([*head, w_rest, v[:, self.radial + 1:]])

    def draw_batch(self, size: int, rng: np.random.Generator):
        """A minibatch of fresh draws of the data law (x, p, y): online SGD, whose gradient is
        unbiased for the population's (the `samples` draws stay the set the risk is reported on,
        independent of the training draws). Mei, Montanari and Nguyen's procedure."""
        x, y = draw_data(self.case_spec, size, rng, self._target_x1_r)
        return x, np.full(size, 1.0 / size), y

    def energy(self, risk: float, u: np.ndarray, q: np.ndarray) -> float:
        return super().energy(risk, u, q) + self._jacobian_energy(self.case_coordinates(u)[:, self.radial], q)

    def grid_operator(self, grid, threads: int = 1):
        raise InputError("model.symmetry: the grid solvers solve the reduced PDE: set symmetry = \"rotations\" "
                         "(symmetry = \"none\" moves particles in the full R^d)")
