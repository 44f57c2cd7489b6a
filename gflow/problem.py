"""From a checked `Case` to the objects solvers use: model, grid, initial density or particles.

This is the one place where the case's names become numbers; solvers see only a `Problem`.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from gflow.case import Case, case_from_text
from gflow.errors import InputError
from gflow.grids import (CartesianGrid, gaussian_cell_average, mixture_cell_average, product_cell_average,
                         shell_cell_average, uniform_cell_average)
from gflow.grids.draws import cell_draws, product_draws, sphere_draws
from gflow.grids.initial import points_cell_average, remapped_cell_average
from gflow.grids.regrid import cell_volumes
from gflow.models import Model, build_model


@dataclass
class Problem:
    case: Case
    model: Model

    @cached_property
    def grid(self) -> CartesianGrid:
        return CartesianGrid(self.case.bounds, self.case.cells)

    @property
    def axes(self) -> tuple[str, ...]:
        return self.case.axes

    @property
    def temperature(self) -> float:
        return self.case.temperature

    def grid_operator(self, grid: CartesianGrid | None = None, threads: int = 1):
        """The model evaluated on `grid` (the case grid by default).

        The potential V of the initial density must be finite on the grid: an expression that
        overflows there (exp(1000*x)) or leaves its domain (log(x) across 0) is a bad case,
        refused in one line, not a RuntimeWarning followed by a blow-up at t = 0."""
        grid = grid or self.grid
        with quiet():
            operator = self.model.grid_operator(grid, threads)
            V = np.asarray(operator.potential(self.initial_density(grid)))
        bad = ~np.isfinite(V)
        if bad.any():
            where = ", ".join(f"{a} = {c[i]:.4g}" for a, c, i in
                              zip(self.axes, grid.centres, np.unravel_index(np.argmax(bad), V.shape)))
            raise InputError(f"{self.case.source}: model: the potential V is {V[bad].flat[0]} at the cell centre "
                             f"{where}: an expression of the model overflows or leaves its domain on the box")
        return operator

    # ------------------------------------------------------------------ layers (resnet)
    @property
    def layers(self) -> int | None:
        """L for a layered model, whose grid and particles carry the frozen layer axis first."""
        return self.case.layers

    @property
    def parameter_grid(self) -> CartesianGrid:
        """The grid of one layer's parameters (the case grid itself for an unlayered model)."""
        grid = self.grid
        return CartesianGrid(grid.bounds[1:], grid.cells[1:]) if self.layers else grid

    def layer_initials(self) -> list:
        """Each layer's initial law: `[initial]`, or its Gaussian moved to the layer's mean."""
        init = self.case.initial
        if not init.layer_means:
            return [init] * (self.layers or 1)
        (_, _, std), = init.components
        return [replace(init, components=((1.0, mean, std),), layer_means=()) for mean in init.layer_means]

    def replicate(self, nodes: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A rule (nodes (n, D), weights (n,)) for `[initial]` as the layered rule: layer l's copy
        moved by its mean's offset (a Gaussian moved is the moved Gaussian) behind the coordinate
        tau_l, joint weights w / L; unchanged for an unlayered model."""
        L = self.layers
        if not L:
            return nodes, weights
        init = self.case.initial
        base = np.array(init.components[0][1]) if init.layer_means else 0.0
        offsets = np.array(init.layer_means) - base if init.layer_means else np.zeros((L, nodes.shape[1]))
        taus = self.grid.centres[0]
        layered = [np.column_stack([np.full(len(nodes), tau), nodes + offset]) for tau, offset in zip(taus, offsets)]
        return np.concatenate(layered), np.tile(weights, L) / L

    def initial_points(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The point masses of the initial law (positions, joint weights): `distribution =
        "points"` (inline or from a file) and the snapshot of a run with particles, which the
        particle and blob solvers start from as given; else None."""
        init = self._loaded(self.case.initial)
        if init.distribution not in ("points", "snapshot") or not len(init.points):
            return None
        return self.replicate(np.array(init.points, dtype=float), np.array(init.point_weights, dtype=float))

    @property
    def initial_grid(self) -> CartesianGrid:
        """The grid the initial law is given on: a grid run's snapshot's own grid (so the midpoint
        rule of quadrature particles puts one particle at each of its cell centres, with the cell's
        mass), else the case's (one layer's) grid."""
        init = self._loaded(self.case.initial)
        if init.grid_density is None:
            return self.parameter_grid
        return CartesianGrid(tuple((f[0], f[-1]) for f in init.grid_faces), tuple(len(f) - 1 for f in init.grid_faces))

    def _loaded(self, init):
        """`init`, once a snapshot law holds its run's arrays (`gflow.initial_snapshot`)."""
        if not init.loaded:
            raise InputError(f"{self.case.source}: initial.snapshot: {init.snapshot} is read when the run starts; "
                             "build the problem from gflow.initial_snapshot.load_initial(case)")
        return init

    @property
    def initial_mass(self) -> float:
        """M, the initial total mass: `[initial] mass` of Wasserstein-Fisher-Rao dynamics (docs/wfr.md),
        else 1; the initial density and the initial particles' weights carry it."""
        return self.case.initial.mass

    def initial_density(self, grid: CartesianGrid | None = None) -> np.ndarray:
        """Cell averages of the initial distribution, mass 1 on the box (on each layer's box for a
        layered model, whose cells then hold each layer's density), or `initial_mass` (WFR)."""
        grid = grid or self.grid
        with quiet():
            if not self.layers:
                return self.initial_mass * self.law_density(grid, self.case.initial)
            one = CartesianGrid(grid.bounds[1:], grid.cells[1:])
            laws = self.layer_initials()
            if not self.case.initial.layer_means:
                return np.repeat(self.law_density(one, laws[0])[None], len(laws), axis=0)
            return np.stack([self.law_density(one, law) for law in laws])

    def law_density(self, grid: CartesianGrid, init) -> np.ndarray:
        """Cell averages of the law `init` on `grid`, mass 1 on the box: point masses (inline, from
        a file or a particle run) deposited by cloud-in-cell, a grid run's density remapped
        conservatively, the sphere as a shell of its `width`, the rest integrated exactly."""
        init = self._loaded(init)
        dist = init.distribution
        try:
            if len(init.points):
                return points_cell_average(grid, np.array(init.points, dtype=float),
                                           np.array(init.point_weights, dtype=float))
            if dist == "snapshot":
                return remapped_cell_average(grid, init.grid_faces, init.grid_density)
            if dist == "sphere":
                if init.width is None:
                    raise InputError(f"{self.case.source}: initial.width: a grid holds the sphere as a shell of this "
                                     f"width (a radial Gaussian about the radius): give it, e.g. width = "
                                     f"{2 * float(grid.spacing.max()):.3g}")
                return shell_cell_average(grid, init.center, init.radius, init.width)
            if dist == "product":
                return product_cell_average(grid, init.factors)
            if dist == "uniform":
                return uniform_cell_average(grid)
            weights, means, stds = zip(*init.components)
            if init.distribution == "gaussian":
                return gaussian_cell_average(grid, means[0], stds[0], self.radial_axes)
            return mixture_cell_average(grid, weights, means, stds, self.radial_axes)
        except ValueError as exc:
            raise InputError(f"{self.case.source}: initial: {exc}") from None

    def sample_initial(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """m i.i.d. draws from the initial distribution, shape (m, D); for a layered model m per
        layer, layer by layer behind their depth coordinate, shape (L m, 1 + D)."""
        if not self.layers:
            return self._sample(self.case.initial, self.grid.bounds, m, rng, self.radial_axes)
        taus, bounds = self.grid.centres[0], self.grid.bounds[1:]
        return np.concatenate([np.column_stack([np.full(m, tau), self._sample(law, bounds, m, rng)])
                               for tau, law in zip(taus, self.layer_initials())])

    def _sample(self, init, bounds, m: int, rng: np.random.Generator, radial: dict[int, int] | None = None) -> np.ndarray:
        init = self._loaded(init)
        if len(init.points):            # i.i.d. draws of the point masses (solvers take them as given)
            return np.array(init.points, dtype=float)[rng.choice(len(init.points), size=m, p=init.point_weights)]
        if init.distribution == "snapshot":   # the grid run's piecewise-constant density
            masses = np.maximum(init.grid_density, 0.0) * cell_volumes(init.grid_faces)
            return cell_draws(rng, m, init.grid_faces, masses)
        if init.distribution == "sphere":
            return sphere_draws(rng, m, init.center, init.radius)
        if init.distribution == "product":
            return product_draws(rng, m, init.factors)
        if init.distribution == "uniform":
            lo, hi = np.array(bounds).T
            return rng.uniform(lo, hi, size=(m, len(lo)))
        weights, means, stds = (np.array(v) for v in zip(*init.components))
        which = rng.choice(len(weights), size=m, p=weights) if len(weights) > 1 else np.zeros(m, int)
        u = means[which] + stds[which] * rng.standard_normal((m, means.shape[1]))
        for axis, k in (radial or {}).items():
            # the norm of a centred N(0, std^2 I_k) vector (its mean is 0: `gflow.case`)
            u[:, axis] = stds[which, axis] * np.sqrt(rng.chisquare(k, size=m))
        return u

    # ------------------------------------------------------------------ invariant axes
    @property
    def radial_axes(self) -> dict[int, int]:
        """Case axes that are the norm of an isotropic k-vector (axis -> k), e.g. the w_perp of a
        model reduced by rotations (`gflow.models.two_layer_symmetry`); none for most models."""
        return getattr(self.case.model, "radial_axes", {})

    @property
    def lifted(self) -> bool:
        """Whether the model's particles live in more coordinates than the case's axes (the full
        R^d model of isotropic data), seen through `case_coordinates` and drawn through `lift`."""
        return hasattr(self.model, "case_coordinates")

    def case_coordinates(self, u: np.ndarray) -> np.ndarray:
        """Particles as the case's axes see them (binning, snapshots): the model's invariants."""
        return self.model.case_coordinates(u) if self.lifted else u

    def lift(self, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Particles drawn on the case's axes as the model's own (a uniform direction each)."""
        return self.model.lift(u, rng) if self.lifted else u


@contextmanager
def quiet():
    """numpy's floating-point warnings off while a case becomes numbers: a bad case gets one
    line (the refusals here, or the run's own divergence check), never a RuntimeWarning first."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def build_problem(case: Case) -> Problem:
    """The model of `case` built (its data measure and targets); targets that are not finite
    at a data node (an expression overflowing there) are refused in one line."""
    with quiet():
        model = build_model(case)
    data = getattr(model, "data", None)
    if data is not None and data.y is not None:
        bad = ~np.isfinite(data.y)
        if bad.any():
            i = int(np.argmax(bad))
            x = ", ".join(f"{v:.4g}" for v in data.x[i])
            raise InputError(f"{case.source}: target: the target is {data.y[i]} at the data node x = ({x}): "
                             "its expression overflows or leaves its domain there")
    return Problem(case, model)


def problem_from_text(text: str, source: str = "<snapshot>") -> Problem:
    """Rebuild a run's problem from the case text stored in its snapshot file."""
    return build_problem(case_from_text(text, source, memory=False))   # the run may come from a larger machine
