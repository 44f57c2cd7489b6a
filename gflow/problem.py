"""From a checked `Case` to the objects solvers use: model, grid, initial density or particles.

This is the one place where the case's names become numbers; solvers see only a `Problem`.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
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

    def initial_density(self, grid: CartesianGrid | None = None) -> np.ndarray:
        """Cell averages of the initial distribution, mass 1 on the box."""
        grid = grid or self.grid
        init = self.case.initial
        with quiet():
            return self._initial_density(grid, init)

    def _initial_density(self, grid: CartesianGrid, init) -> np.ndarray:
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
