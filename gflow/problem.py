"""From a checked `Case` to the objects solvers use: model, grid, initial density or particles.

This is the one place where the case's names become numbers; solvers see only a `Problem`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gflow.case import Case, TargetSpec, case_from_text
from gflow.models.units import ACTIVATIONS
from gflow.models.data import build_data
from gflow.errors import InputError
from gflow.expr import parse_expression
from gflow.models.potential import PotentialGridOperator, PotentialModel
from gflow.models.two_layer import TwoLayerModel
from gflow.models.two_layer_grid import TwoLayerGridOperator
from gflow.grids import CartesianGrid, gaussian_cell_average, mixture_cell_average, uniform_cell_average


def target_function(spec: TargetSpec, activation: str, input_dim: int):
    """f*(x) for x of shape (n, d): a sum of teacher neurons or an expression, or None."""
    if spec.expression is not None:
        names = ["x"] if input_dim == 1 else [f"x{i + 1}" for i in range(input_dim)]
        expr = parse_expression(spec.expression, names)
        return lambda x: np.broadcast_to(expr(*[x[:, i] for i in range(input_dim)]), (len(x),)).astype(float)
    if not spec.neurons:
        return None
    sigma = ACTIVATIONS[activation][0]
    a = np.array([n["a"] for n in spec.neurons])
    w = np.array([n["w"] for n in spec.neurons])
    b = np.array([n["b"] for n in spec.neurons])
    return lambda x: sigma(x @ w.T + b) @ a


@dataclass
class Problem:
    case: Case
    model: TwoLayerModel | PotentialModel

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
        """The model evaluated on `grid` (the case grid by default)."""
        grid = grid or self.grid
        if isinstance(self.model, TwoLayerModel):
            return TwoLayerGridOperator(self.model, grid)
        return PotentialGridOperator(self.model, grid, threads)

    def initial_density(self, grid: CartesianGrid | None = None) -> np.ndarray:
        """Cell averages of the initial distribution, mass 1 on the box."""
        grid = grid or self.grid
        init = self.case.initial
        try:
            if init.distribution == "uniform":
                return uniform_cell_average(grid)
            weights, means, stds = zip(*init.components)
            if init.distribution == "gaussian":
                return gaussian_cell_average(grid, means[0], stds[0])
            return mixture_cell_average(grid, weights, means, stds)
        except ValueError as exc:
            raise InputError(f"{self.case.source}: initial: {exc}") from None

    def sample_initial(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """m i.i.d. draws from the initial distribution, shape (m, D)."""
        init = self.case.initial
        if init.distribution == "uniform":
            lo, hi = np.array(self.case.bounds).T
            return rng.uniform(lo, hi, size=(m, len(lo)))
        weights, means, stds = (np.array(v) for v in zip(*init.components))
        which = rng.choice(len(weights), size=m, p=weights) if len(weights) > 1 else np.zeros(m, int)
        return means[which] + stds[which] * rng.standard_normal((m, len(self.axes)))


def build_problem(case: Case) -> Problem:
    spec = case.model
    if spec.kind == "potential":
        return Problem(case, PotentialModel(spec, case.weight_decay, case.temperature))
    data = build_data(case.data, spec.input_dim, case.source)
    target = target_function(case.target, spec.activation, spec.input_dim)
    if target is None and data.y is None:
        raise InputError(f"{case.source}: target: no target and the data file has no y column")
    model = TwoLayerModel(spec, data, target, case.weight_decay, case.temperature)
    return Problem(case, model)


def problem_from_text(text: str, source: str = "<snapshot>") -> Problem:
    """Rebuild a run's problem from the case text stored in its snapshot file."""
    return build_problem(case_from_text(text, source))
