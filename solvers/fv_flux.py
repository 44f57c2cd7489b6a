"""The finite-volume right-hand side of d_t rho = div(rho grad V) + T lap rho, in plain numpy.

Carrillo, Chertock, Huang, Commun. Comput. Phys. 17 (2015), section 2: along each axis,
piecewise-linear reconstruction with the generalised minmod limiter (eq. 2.8; theta in
[1, 2], theta = 2 least diffusive and still positivity-preserving), upwind flux
F = v^+ rho^- + v^- rho^+ at interior faces (eq. 2.5), zero flux at the boundary faces, and
the diffusion as a separate central flux -T (rho_{i+1} - rho_i) / h, which dissipates the
discrete entropy as well.
"""
from __future__ import annotations

import numpy as np


def limited_slopes(rho: np.ndarray, theta: float) -> np.ndarray:
    """Per-cell limited increments along axis 0 (zero in the boundary cells)."""
    d = np.diff(rho, axis=0)
    left, right = d[:-1], d[1:]
    a, b, c = theta * left, 0.5 * (left + right), theta * right
    lo = np.minimum(np.minimum(a, b), c)
    hi = np.maximum(np.maximum(a, b), c)
    slopes = np.zeros_like(rho)
    slopes[1:-1] = np.where(lo > 0, lo, np.where(hi < 0, hi, 0.0))
    return slopes


def axis_flux(rho: np.ndarray, v: np.ndarray | None, h: float, theta: float, temperature: float) -> np.ndarray:
    """Flux through the interior faces along axis 0 (shape n - 1 along it)."""
    flux = np.zeros((rho.shape[0] - 1, *rho.shape[1:]))
    if v is not None:
        s = limited_slopes(rho, theta)
        minus = rho[:-1] + 0.5 * s[:-1]
        plus = rho[1:] - 0.5 * s[1:]
        vi = v[1:-1]
        flux += np.maximum(vi, 0.0) * minus + np.minimum(vi, 0.0) * plus
    if temperature > 0:
        flux -= (temperature / h) * np.diff(rho, axis=0)
    return flux


def fv_rhs(rho: np.ndarray, velocities: list, spacing, theta: float, temperature) -> np.ndarray:
    """-div(flux): the time derivative of the cell averages.

    `temperature` is a number or one per axis (frozen axes of a two-layer model neither
    drift nor diffuse).
    """
    out = np.zeros_like(rho)
    temperatures = np.broadcast_to(temperature, (rho.ndim,))
    for axis, v in enumerate(velocities):
        if v is None and temperatures[axis] == 0:
            continue
        r = np.moveaxis(rho, axis, 0)
        vv = None if v is None else np.moveaxis(v, axis, 0)
        flux = axis_flux(r, vv, spacing[axis], theta, temperatures[axis]) / spacing[axis]
        o = np.moveaxis(out, axis, 0)
        o[:-1] -= flux
        o[1:] += flux
    return out


def stable_dt(velocities: list, spacing, temperature) -> float:
    """The forward-Euler positivity limit: dt * sum_k (2 max|v_k| / h_k + 2 T_k / h_k^2) <= 1."""
    rate = 0.0
    temperatures = np.broadcast_to(temperature, (len(velocities),))
    for axis, v in enumerate(velocities):
        h = spacing[axis]
        if v is not None:
            rate += 2.0 * float(np.abs(v).max()) / h
        rate += 2.0 * temperatures[axis] / (h * h)
    return np.inf if rate == 0 else 1.0 / rate
