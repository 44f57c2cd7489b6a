"""Fused numba kernel: one SSP-RK stage of the finite-volume scheme for the two-layer model.

The plain numpy path (`fv_flux.fv_rhs`) makes about twenty passes over memory per stage;
this kernel makes one. It uses that the two-layer face velocities are separable
(`gflow.models.two_layer_grid`): on an (a, y, z) grid

    v_0(i+1/2, j, k) = -(G[j, k] + L0[i+1])                 (along a)
    v_1(i, j+1/2, k) = -(ac[i] H1[j+1, k] + L1[j+1])         (along the second axis)
    v_2(i, j, k+1/2) = -(ac[i] H2[j, k+1] + L2[k+1])         (along the third axis)

so velocities are formed on the fly from arrays of size N_wb, never stored on the grid;
T holds the temperature along each axis (zero along frozen ones).
A 2D (a, w) grid runs as shape (n_a, 1, n_w). The kernel writes
out = c0 u0 + c1 (u + dt L(u)) and, in the same pass, the a-moment of `out` that the next
stage's velocities need. It is tested against `fv_flux.fv_rhs` to round-off.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the numpy path serves without numba
    numba = None


def _minmod3(a, b, c):
    # branch-free, so the inner loops vectorise: lo if all > 0, hi if all < 0, else 0
    lo = min(a, min(b, c))
    hi = max(a, max(b, c))
    return max(lo, 0.0) + min(hi, 0.0)


def _slope(left, right, theta):
    return _minmod3(theta * left, 0.5 * (left + right), theta * right)


def _upwind(v, minus, plus):
    return max(v, 0.0) * minus + min(v, 0.0) * plus


def _stage(u, u0, out, m1, c0, c1, dt, G, L0, ac, H1, L1, H2, L2, h, theta, T):  # noqa: PLR0913
    n0, n1, n2 = u.shape
    r0, r1, r2 = 1.0 / h[0], 1.0 / h[1], 1.0 / h[2]
    d0, d1, d2 = T[0] * r0, T[1] * r1, T[2] * r2
    sx_cur = np.zeros((n1, n2))
    sx_next = np.zeros((n1, n2))
    fx_lo = np.zeros((n1, n2))
    fx_hi = np.zeros((n1, n2))
    fy = np.zeros((n1 + 1, n2))
    fz = np.zeros((n1, n2 + 1))
    sy = np.zeros((n1, n2))
    sz = np.zeros(n2)
    m1[:, :] = 0.0
    for i in range(n0):
        # limited slopes along axis 0 of plane i + 1 (zero in boundary cells)
        if i + 2 < n0:
            for j in range(n1):
                for k in range(n2):
                    sx_next[j, k] = _slope(u[i + 1, j, k] - u[i, j, k], u[i + 2, j, k] - u[i + 1, j, k], theta)
        else:
            sx_next[:, :] = 0.0
        # flux through the faces i + 1/2 (zero at the boundary face)
        if i + 1 < n0:
            lam_face = L0[i + 1]
            for j in range(n1):
                for k in range(n2):
                    v = -(G[j, k] + lam_face)
                    f = _upwind(v, u[i, j, k] + 0.5 * sx_cur[j, k], u[i + 1, j, k] - 0.5 * sx_next[j, k])
                    fx_hi[j, k] = f - d0 * (u[i + 1, j, k] - u[i, j, k])
        else:
            fx_hi[:, :] = 0.0
        a = ac[i]
        # axis 1: slopes (zero in the boundary rows, never written), then interior face fluxes
        for j in range(1, n1 - 1):
            for k in range(n2):
                sy[j, k] = _slope(u[i, j, k] - u[i, j - 1, k], u[i, j + 1, k] - u[i, j, k], theta)
        for j in range(n1 - 1):
            for k in range(n2):
                v = -(a * H1[j + 1, k] + L1[j + 1])
                f = _upwind(v, u[i, j, k] + 0.5 * sy[j, k], u[i, j + 1, k] - 0.5 * sy[j + 1, k])
                fy[j + 1, k] = f - d1 * (u[i, j + 1, k] - u[i, j, k])
        # axis 2, row by row, then the stage update
        for j in range(n1):
            for k in range(1, n2 - 1):
                sz[k] = _slope(u[i, j, k] - u[i, j, k - 1], u[i, j, k + 1] - u[i, j, k], theta)
            for k in range(n2 - 1):
                v = -(a * H2[j, k + 1] + L2[k + 1])
                f = _upwind(v, u[i, j, k] + 0.5 * sz[k], u[i, j, k + 1] - 0.5 * sz[k + 1])
                fz[j, k + 1] = f - d2 * (u[i, j, k + 1] - u[i, j, k])
            for k in range(n2):
                div = ((fx_hi[j, k] - fx_lo[j, k]) * r0 + (fy[j + 1, k] - fy[j, k]) * r1
                       + (fz[j, k + 1] - fz[j, k]) * r2)
                value = c0 * u0[i, j, k] + c1 * (u[i, j, k] - dt * div)
                out[i, j, k] = value
                m1[j, k] += a * value
        sx_cur, sx_next = sx_next, sx_cur
        fx_lo, fx_hi = fx_hi, fx_lo


def _a_moment(u, ac, m1):
    """sum_i ac[i] u[i, :, :], summed in the order `_stage` sums it, so that a run restored
    from a snapshot continues bitwise like one that never stopped."""
    m1[:, :] = 0.0
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            for k in range(u.shape[2]):
                m1[j, k] += ac[i] * u[i, j, k]


if numba is not None:
    _minmod3 = numba.njit(inline="always")(_minmod3)
    _slope = numba.njit(inline="always")(_slope)
    _upwind = numba.njit(inline="always")(_upwind)
    stage = numba.njit(cache=True, boundscheck=False)(_stage)
    a_moment = numba.njit(cache=True, boundscheck=False)(_a_moment)
else:  # pragma: no cover
    stage, a_moment = _stage, _a_moment
