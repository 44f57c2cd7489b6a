"""From a checked `Case` to the objects solvers use: model, grid, initial density or particles.

This is the one place where the case's names become numbers; solvers see only a `Problem`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gflow.case import Case, case_from_text
from gflow.errors import InputError
from gflow.grids import CartesianGrid, gaussian_cell_average, mixture_cell_average, uniform_cell_average
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
        """The model evaluated on `grid` (the case grid by default)."""
        return self.model.grid_operator(grid or self.grid, threads)

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
    return Problem(case, build_model(case))


def problem_from_text(text: str, source: str = "<snapshot>") -> Problem:
    """Rebuild a run's problem from the case text stored in its snapshot file."""
    return build_problem(case_from_text(text, source, memory=False))   # the run may come from a larger machine
