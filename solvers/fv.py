"""Explicit second-order finite volume (Carrillo, Chertock, Huang 2015) with SSP-RK3.

Mass is conserved to round-off (fluxes cancel in pairs, boundary faces carry none),
rho stays >= 0 under the step limit of `fv_flux.stable_dt` (scaled by `cfl`), and the
semi-discrete energy decreases. Third-order strong-stability-preserving Runge-Kutta
(Shu-Osher) keeps those properties for the full step, since each stage is a convex
combination of forward-Euler steps.
"""
from __future__ import annotations

import numpy as np

from solvers.base import Observation, Stepper
from solvers.fv_flux import fv_rhs, stable_dt


class FiniteVolumeStepper(Stepper):
    kind = "fv"

    def __init__(self, problem, options):
        super().__init__(problem, options)
        self.grid = problem.grid
        if self.grid.ndim > 3:
            raise ValueError(f"grid solvers handle 1 to 3 axes; this case has {self.grid.ndim}")
        self.operator = problem.grid_operator()
        self.rho = problem.initial_density()
        self.theta = options.get("theta", 2.0)
        self.cfl = options.get("cfl", 0.8)
        self.temperature = problem.temperature
        self.spacing = self.grid.spacing
        self.limited_steps = 0

    def rhs(self, rho: np.ndarray, velocities=None) -> np.ndarray:
        velocities = self.operator.face_velocities(rho) if velocities is None else velocities
        return fv_rhs(rho, velocities, self.spacing, self.theta, self.temperature)

    def step(self, dt_max: float) -> float:
        rho = self.rho
        velocities = self.operator.face_velocities(rho)
        dt = min(dt_max, self.cfl * stable_dt(velocities, self.spacing, self.temperature))
        if dt < dt_max:
            self.limited_steps += 1
        u1 = rho + dt * self.rhs(rho, velocities)
        u2 = 0.75 * rho + 0.25 * (u1 + dt * self.rhs(u1))
        self.rho = (rho + 2.0 * (u2 + dt * self.rhs(u2))) / 3.0
        return dt

    def observe(self) -> Observation:
        rho = self.rho
        risk = self.operator.risk(rho)
        return Observation(rho.copy(), risk, self.operator.energy(rho, risk), self.grid.mass(rho))
