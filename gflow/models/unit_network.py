"""The mean-field network of any unit phi(x; u): V, grad V, risk and energy of weighted neurons.

For neurons u_j on the case's axes with weights q_j the network is f(x) = sum_j q_j phi(x; u_j),
phi given by `[model] unit` (an expression, or a family of `gflow.models.units.FAMILIES` written
out as one), and

    R    = 1/2 E_x (f - f*)^2,           r = f - f*,
    V(u) = E_x[r(x) phi(x; u)] + lam |u|^2 / 2,
    grad V(u) = E_x[r(x) grad_u phi(x; u)] + lam u,

with grad_u phi the exact symbolic derivatives of the expression (`gflow.expr`), never a
difference quotient (the mean-field PDE of Mei, Montanari and Nguyen, PNAS 2018, and of
Rotskoff and Vanden-Eijnden, CPAM 2022, whose Gaussian-RBF example is the family "gaussian").

Everything is evaluated on blocks of (neurons x data nodes): phi and its derivatives come from
one pass over the expression tree (`gflow.expr.evaluate_together`, shared subtrees computed
once), and the rows per block are sized so the tree's intermediate arrays stay near CHUNK_BYTES,
so memory is bounded for any number of neurons and data nodes, and no Python loop runs over
points or data. There is no fused numba kernel for a general unit: `kernel = "numba"` runs this
numpy path.

The grid path (`grid_operator`) is the separable one of `gflow.models.two_layer_grid` when the
unit is linear in its first axis, phi = a psi(x; v) (checked: d phi / da does not contain a, and
phi vanishes at a = 0); otherwise the general O(N M) evaluation of `gflow.models.unit_grid`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from gflow.errors import InputError
from gflow.expr import Expression, evaluate_together, node_count, parse_expression
from gflow.models.data import DataMeasure
from gflow.models.data_network import DataNetwork
from gflow.models.two_layer_case import TwoLayerSpec, input_names

#: bytes of the expression's intermediate arrays per block of (neurons x data nodes)
CHUNK_BYTES = 1 << 26
#: the most neurons in one block (as `gflow.models.two_layer.CHUNK`)
MAX_ROWS = 1 << 15
#: points of the separability check (an analytic phi(x; 0, v) that vanishes at this many
#: random points vanishes identically, almost surely)
CHECK_POINTS = 64


class UnitNetworkModel(DataNetwork):
    """V and its gradient for neurons on the unit's axes, with a fixed data measure."""

    def __init__(self, spec: TwoLayerSpec, data: DataMeasure, target: Callable[[np.ndarray], np.ndarray] | None,
                 weight_decay: float = 0.0, temperature: float = 0.0):
        super().__init__(spec, data, target, weight_decay, temperature)
        self.inputs = tuple(input_names(spec.input_dim))
        self.phi = parse_expression(spec.unit, [*self.inputs, *self.axes])
        #: d phi / d u_k for every axis k (exact)
        self.dphi = [self.phi.diff(name) for name in self.axes]
        self.separable = linear_in_first_axis(self.phi, self.dphi[0], self.axes, self.inputs)
        if self.separable:
            #: phi = a psi(x; v): psi = d phi / da and its derivatives d psi / d v_k (k >= 1)
            self.psi = self.dphi[0]
            self.dpsi = [self.psi.diff(name) for name in self.axes[1:]]
        self._nodes: dict[tuple[int, ...], int] = {}

    # ------------------------------------------------------------------ blocks of unit values
    def _rows(self, exprs: list[Expression], nodes: int) -> int:
        """Neurons per block: the tree's arrays (one per distinct node) of rows x nodes floats near CHUNK_BYTES."""
        key = tuple(id(e) for e in exprs)
        if key not in self._nodes:
            self._nodes[key] = max(1, node_count(exprs))
        return int(max(1, min(MAX_ROWS, CHUNK_BYTES // (8 * max(1, nodes) * self._nodes[key]))))

    def blocks(self, u: np.ndarray, exprs: list[Expression], x: np.ndarray | None = None
               ) -> Iterator[tuple[slice, list[np.ndarray]]]:
        """(rows, [e(x_m; u_j) for each expression e]) over blocks of the neurons u (n, D), each
        value of shape (rows, M) at the data nodes (or at x); read-only where broadcast."""
        x = self.x if x is None else x
        step = self._rows(exprs, len(x))
        columns = {name: x[:, i][None, :] for i, name in enumerate(self.inputs)}
        for s in range(0, len(u), step):
            block = u[s:s + step]
            env = dict(columns, **{name: block[:, k][:, None] for k, name in enumerate(self.axes)})
            shape = (len(block), len(x))
            yield slice(s, s + len(block)), [np.broadcast_to(v, shape) for v in evaluate_together(exprs, env)]

    def products(self, u: np.ndarray, exprs: list[Expression], c: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """E-like sums sum_m e(x_m; u_j) c_m for each expression e, shape (n, len(exprs))."""
        out = np.empty((len(u), len(exprs)))
        for rows, values in self.blocks(u, exprs, x):
            for k, v in enumerate(values):
                out[rows, k] = v @ c
        return out

    def matrix(self, u: np.ndarray, expr: Expression) -> np.ndarray:
        """e(x_m; u_j) for all neurons and data nodes, shape (n, M) (a grid operator's cached features)."""
        out = np.empty((len(u), len(self.x)))
        for rows, (v,) in self.blocks(u, [expr]):
            out[rows] = v
        return out

    # ------------------------------------------------------------------ the Model protocol
    def network(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """f(x) = sum_j q_j phi(x; u_j) at the data nodes (or at the given x)."""
        x = self.x if x is None else x
        f = np.zeros(len(x))
        for rows, (phi,) in self.blocks(u, [self.phi], x):
            f += q[rows] @ phi
        return f

    def risk(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> float:
        """R of the network of the weighted neurons (one numpy path, whatever `kernel`)."""
        return self.risk_from_residual(self.residual(u, q))

    def fused(self) -> bool:
        """No fused numba kernel serves a general unit (`kernel = "numba"` runs the numpy path)."""
        return False

    def potential(self, u: np.ndarray, r: np.ndarray) -> np.ndarray:
        """V at the points u, given the residual r of the current density."""
        V = self.products(u, [self.phi], self.p * r)[:, 0]
        return V + 0.5 * self.weight_decay * np.einsum("ij,ij->i", u, u)

    def potential_at(self, u: np.ndarray, q: np.ndarray, kernel: str = "numba") -> np.ndarray:
        """V(u_j; sum_k q_k delta_{u_k}) at the weighted points themselves (birth-death's rate,
        `gflow.solvers.birth_death`); every `kernel` runs the numpy path."""
        return self.potential(u, self.residual(u, q))

    def gradient(self, u: np.ndarray, r: np.ndarray, p: np.ndarray | None = None,
                 x: np.ndarray | None = None, axes: list[int] | None = None) -> np.ndarray:
        """grad V at the points u, shape (n, D): every axis, or only `axes` (the others 0).

        `p` and `x` replace the data weights and nodes (a minibatch, say); r must match them.
        """
        p = self.p if p is None else p
        axes = list(range(self.ndim)) if axes is None else axes
        grad = np.zeros_like(u, dtype=float)
        if axes:
            grad[:, axes] = self.products(u, [self.dphi[k] for k in axes], p * r, x)
        grad[:, axes] += self.weight_decay * u[:, axes]
        return grad

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, kernel: str = "numba",
                 out: np.ndarray | None = None) -> np.ndarray:
        """-grad V(u_j; sum_j q_j delta_{u_j}), frozen axes held still (and not computed).

        `batch` = (x, p, y) replaces the data measure (SGD). Every `kernel` runs this numpy
        path (a general unit has no fused kernel). `out` may receive the result.
        """
        trained = [k for k in range(self.ndim) if self.trained[k]]
        if batch is None:
            grad = self.gradient(u, self.residual(u, q), axes=trained)
        else:
            x, p, y = batch
            grad = self.gradient(u, self.network(u, q, x) - y, p, x, axes=trained)
        if out is None:
            return np.negative(grad, out=grad)
        np.negative(grad, out=out)
        return out

    def initial_bias(self, u: np.ndarray, q: np.ndarray) -> float:
        """m (E[R_m(0)] - R(0)) = (1/2) E_x Var_{rho0} phi(x; u) for m i.i.d. neurons from the law
        the quadrature (u, q) integrates (`two_layer_fluctuation.initial_bias`), in two passes."""
        q = q / q.sum()
        mean = self.network(u, q)
        var = np.zeros(len(self.x))
        for rows, (phi,) in self.blocks(u, [self.phi]):
            var += q[rows] @ (phi - mean) ** 2
        return 0.5 * float(self.p @ var)

    def risk_weight_gradient(self, path, steps, q):
        raise InputError("fluctuation = true: the finite-width prediction's adjoint is derived for sigma(w.x + b) "
                         "units only (`activation`), not for `unit`")

    # ------------------------------------------------------------------ grids
    def separable_features(self, coords: list[np.ndarray], axis: int | None = None) -> np.ndarray:
        """psi(x; v) (axis None) or d psi / d v_axis on the product of `coords` (one 1-D array per
        axis 1..D-1) at the data nodes, shape (N_v, M): the separable grid path's features
        (`TwoLayerGridOperator`) of a unit phi = a psi(x; v)."""
        mesh = np.meshgrid(*coords, indexing="ij")
        # psi and its derivatives do not contain a: any value serves for the first column
        v = np.column_stack([np.zeros(mesh[0].size), *(m.ravel() for m in mesh)])
        return self.matrix(v, self.psi if axis is None else self.dpsi[axis - 1])

    def grid_operator(self, grid, threads: int = 1):
        """The separable evaluation when phi = a psi(x; v), else the general O(N M) one."""
        if self.separable:
            from gflow.models.two_layer_grid import TwoLayerGridOperator
            return TwoLayerGridOperator(self, grid)
        from gflow.models.unit_grid import UnitGridOperator
        return UnitGridOperator(self, grid)


def linear_in_first_axis(phi: Expression, dphi_da: Expression, axes: tuple[str, ...], inputs: tuple[str, ...],
                         seed: int = 0) -> bool:
    """Whether phi = a psi(x; v) in its first axis a: d phi / da does not contain a (so phi is
    affine in a, exactly) and phi(x; 0, v) = 0 at CHECK_POINTS random (x, v) where psi is finite
    (exactly 0: a phi that is a psi plus a tiny term is not separable)."""
    if dphi_da.uses(axes[0]) or len(axes) < 2:
        return False
    rng = np.random.default_rng(seed)
    env = {name: rng.normal(scale=2.0, size=CHECK_POINTS) for name in (*inputs, *axes)}
    env[axes[0]] = np.zeros(CHECK_POINTS)
    at_zero, psi = (np.broadcast_to(v, (CHECK_POINTS,)) for v in evaluate_together([phi, dphi_da], env))
    finite = np.isfinite(psi)
    return bool(finite.any() and np.all(at_zero[finite] == 0.0))
