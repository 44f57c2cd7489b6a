"""The time integrators, written once: SSP-RK3, forward Euler, classical RK4, Dormand-Prince 5(4).

Each advances du/dt = F(u) by one step h, F being a stepper's right-hand side (a grid
density's flux divergence, or the particles' velocity). They are the steppers' only
integrators (`fv`, `blob`, `particle`; the spectral solver's integrating-factor RK4 acts on
Fourier coefficients and stays with it).

- SSP-RK3, the Shu-Osher form of the third-order strong-stability-preserving Runge-Kutta
  method (Gottlieb, Shu, Tadmor, SIAM Review 43 (2001), eq. 4.2): every stage is a convex
  combination of forward-Euler steps, so positivity and the discrete energy decay of the
  Euler step carry over under the same step limit.
- RK4: classical fourth-order Runge-Kutta.
- DP5(4): Dormand-Prince 5(4) with the standard step-size controller (Hairer, Norsett,
  Wanner, Solving ODEs I, section II.4), first same as last.

The floating-point operations are those each stepper used before they moved here, so runs
stay bitwise the same.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Rhs = Callable[[np.ndarray], np.ndarray]

#: SSP-RK3 (Shu-Osher) stages: u_stage_next = c0 u_n + c1 (u_stage + dt F(u_stage))
SSPRK3_STAGES = ((0.0, 1.0), (0.75, 0.25), (1.0 / 3.0, 2.0 / 3.0))


def ssprk3(u: np.ndarray, rhs: Rhs, dt: float, first: np.ndarray | None = None) -> np.ndarray:
    """One SSP-RK3 step from u; `first` = F(u) if the caller has it (it chose dt from it)."""
    f0 = rhs(u) if first is None else first
    u1 = u + dt * f0
    u2 = 0.75 * u + 0.25 * (u1 + dt * rhs(u1))
    return (u + 2.0 * (u2 + dt * rhs(u2))) / 3.0


def euler_in_place(u: np.ndarray, k: np.ndarray, h: float) -> None:
    """u <- u + h k, in place; k (F(u), often a reused buffer) is overwritten by h k."""
    k *= h
    u += k


def rk4_in_place(u: np.ndarray, rhs: Rhs, h: float, k1: np.ndarray) -> None:
    """One classical RK4 step of length h, in place; k1 = F(u)."""
    total = k1.copy()
    k = rhs(u + (0.5 * h) * k1)
    total += 2.0 * k
    k = rhs(u + (0.5 * h) * k)
    total += 2.0 * k
    k = rhs(u + h * k)
    total += k
    u += (h / 6.0) * total


#: Dormand-Prince 5(4) (autonomous, so no nodes c): stages a, 5th-order weights b, error weights b - b*
DP_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
]
DP_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
DP_E = np.array([71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40])


class StepTooSmall(Exception):
    """The controller's step fell below its floor: the tolerance cannot be met."""


class DormandPrince:
    """Adaptive DP5(4) steps with the standard controller; atol = rtol = `tolerance`.

    The error norm is the q-weighted RMS over the rows of u (particles),
    sqrt(sum_j q_j |e_j|^2 / (D sum_j q_j)): for particles, a bound on the W2 error of the
    step's empirical measure rather than on the worst particle.
    """

    def __init__(self, tolerance: float, first_step: float):
        self.tolerance = tolerance
        self.h_next = first_step
        self.rejected = 0

    def step(self, u: np.ndarray, rhs: Rhs, h_max: float, k0: np.ndarray, weights: np.ndarray,
             dt_max: float) -> tuple[np.ndarray, float, np.ndarray]:
        """One accepted step of at most h_max from u (k0 = F(u)): (new u, step taken, F(new u)).

        Rejected tries are retried smaller; `dt_max` (the time to the next snapshot) scales
        the floor below which `StepTooSmall` is raised.
        """
        tol = self.tolerance
        while True:
            h = min(self.h_next, h_max)
            ks = [k0]
            for i in range(1, 6):
                stage = u.copy()
                for a, k in zip(DP_A[i], ks):
                    stage += (h * a) * k
                ks.append(rhs(stage))
            new = u.copy()
            for b, k in zip(DP_B, ks):
                if b:
                    new += (h * b) * k
            ks.append(rhs(new))
            err_vec = sum((h * e) * k for e, k in zip(DP_E, ks) if e)
            scale = tol + tol * np.maximum(np.abs(u), np.abs(new))
            err = float(np.sqrt(weights @ np.mean((err_vec / scale) ** 2, axis=1) / weights.sum()))
            factor = 10.0 if err == 0 else min(10.0, max(0.2, 0.9 * err ** -0.2))
            if err <= 1.0:
                # a step cut short to land on a snapshot time says nothing against h_next
                self.h_next = max(self.h_next, h * factor) if h < self.h_next else h * factor
                return new, h, ks[-1]
            self.rejected += 1
            self.h_next = h * factor
            if not self.h_next > 1e-14 * max(1.0, dt_max):
                raise StepTooSmall(f"the adaptive step fell to {self.h_next:g} (tolerance {tol:g})")
