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

Threads: `numba.prange` over blocks of planes i (`plane_blocks`, a function of the grid's
shape only). A block recomputes the slopes and the face flux at its lower edge by the same
formulas its neighbour uses, and keeps its own partial a-moment, summed over the blocks in
block order; so a stage gives the same bits on any number of threads (tested).
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the numpy path serves without numba
    numba = None

prange = range if numba is None else numba.prange


def _minmod3(a, b, c):
    # branch-free, so the inner loops vectorise: lo if all > 0, hi if all < 0, else 0
    lo = min(a, min(b, c))
    hi = max(a, max(b, c))
    return max(lo, 0.0) + min(hi, 0.0)


def _slope(left, right, theta):
    return _minmod3(theta * left, 0.5 * (left + right), theta * right)


def _upwind(v, minus, plus):
    return max(v, 0.0) * minus + min(v, 0.0) * plus


def _slope_plane(u, i, theta, out):
    """Limited slopes along axis 0 of plane i (zero in boundary planes)."""
    n0, n1, n2 = u.shape
    if 0 < i < n0 - 1:
        for j in range(n1):
            for k in range(n2):
                out[j, k] = _slope(u[i, j, k] - u[i - 1, j, k], u[i + 1, j, k] - u[i, j, k], theta)
    else:
        out[:, :] = 0.0


def _face_flux(u, i, s_lo, s_hi, G, L0, d0, out):
    """Flux through the face i + 1/2 along axis 0 (zero at the boundary faces), from the slopes
    of planes i and i + 1."""
    n0, n1, n2 = u.shape
    if 0 <= i < n0 - 1:
        lam_face = L0[i + 1]
        for j in range(n1):
            for k in range(n2):
                v = -(G[j, k] + lam_face)
                f = _upwind(v, u[i, j, k] + 0.5 * s_lo[j, k], u[i + 1, j, k] - 0.5 * s_hi[j, k])
                out[j, k] = f - d0 * (u[i + 1, j, k] - u[i, j, k])
    else:
        out[:, :] = 0.0


def _block(u, u0, out, m1, c0, c1, dt, G, L0, ac, H1, L1, H2, L2, r, d, theta, i0, i1):  # noqa: PLR0913
    """The stage on planes i0 <= i < i1, and their part of the a-moment into m1. The block
    starts from the slopes and the face flux below it, evaluated by the same formulas as its
    neighbour's, so every cell of `out` has the bits a single block would give."""
    n0, n1, n2 = u.shape
    r0, r1, r2 = r[0], r[1], r[2]
    d0, d1, d2 = d[0], d[1], d[2]
    sx_cur = np.zeros((n1, n2))
    sx_next = np.zeros((n1, n2))
    fx_lo = np.zeros((n1, n2))
    fx_hi = np.zeros((n1, n2))
    fy = np.zeros((n1 + 1, n2))
    fz = np.zeros((n1, n2 + 1))
    sy = np.zeros((n1, n2))
    sz = np.zeros(n2)
    m1[:, :] = 0.0
    _slope_plane(u, i0 - 1, theta, sx_next)
    _slope_plane(u, i0, theta, sx_cur)
    _face_flux(u, i0 - 1, sx_next, sx_cur, G, L0, d0, fx_lo)
    for i in range(i0, i1):
        _slope_plane(u, i + 1, theta, sx_next)
        _face_flux(u, i, sx_cur, sx_next, G, L0, d0, fx_hi)
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


def _sum_blocks(parts, m1):
    """m1 = the blocks' partial moments summed in block order (the order `a_moment` keeps)."""
    m1[:, :] = 0.0
    for t in range(parts.shape[0]):
        for j in range(m1.shape[0]):
            for k in range(m1.shape[1]):
                m1[j, k] += parts[t, j, k]


def _stage(u, u0, out, m1, c0, c1, dt, G, L0, ac, H1, L1, H2, L2, h, theta, T, blocks):  # noqa: PLR0913
    """out = c0 u0 + c1 (u + dt L(u)) and m1 = sum_i ac[i] out[i], one task per block of planes
    (`blocks`, from `plane_blocks`). The blocks depend on the grid's shape only, and each cell's
    value and each block's sum come out of the same operations in the same order on any number
    of threads, so the result is bitwise the one-thread result."""
    r = np.array([1.0 / h[0], 1.0 / h[1], 1.0 / h[2]])
    d = np.array([T[0] * r[0], T[1] * r[1], T[2] * r[2]])
    parts = np.empty((blocks.shape[0] - 1, m1.shape[0], m1.shape[1]))
    for t in prange(blocks.shape[0] - 1):
        _block(u, u0, out, parts[t], c0, c1, dt, G, L0, ac, H1, L1, H2, L2, r, d, theta,
               blocks[t], blocks[t + 1])
    _sum_blocks(parts, m1)


def _a_moment(u, ac, m1, blocks):
    """sum_i ac[i] u[i, :, :], summed in the order `_stage` sums it (within each block of planes,
    then over the blocks), so that a run restored from a snapshot continues bitwise like one
    that never stopped."""
    parts = np.zeros((blocks.shape[0] - 1, m1.shape[0], m1.shape[1]))
    for t in range(blocks.shape[0] - 1):
        for i in range(blocks[t], blocks[t + 1]):
            for j in range(u.shape[1]):
                for k in range(u.shape[2]):
                    parts[t, j, k] += ac[i] * u[i, j, k]
    _sum_blocks(parts, m1)


def _stiff_maxima(u0, u1, u2, chunk):
    """(max |u1 - u0|, max |4 u2 - 2 u0 - 2 u1|) over flat arrays, in one pass (numpy's
    `fv.stiff_dt` makes about ten); per-chunk maxima then their maximum, exact in any order."""
    n = u0.shape[0]
    nchunk = (n + chunk - 1) // chunk
    change = np.zeros(nchunk)
    curve = np.zeros(nchunk)
    for c in prange(nchunk):
        lo, hi = c * chunk, min(n, (c + 1) * chunk)
        a, b = 0.0, 0.0
        for q in range(lo, hi):
            a = max(a, abs(u1[q] - u0[q]))
            b = max(b, abs(4.0 * u2[q] - 2.0 * u0[q] - 2.0 * u1[q]))
        change[c], curve[c] = a, b
    return change.max(), curve.max()


#: about this many cells per block: a few blocks per core on a 512^2 grid
BLOCK_CELLS = 1 << 15
#: at least this many planes per block, so that the two halo planes a block recomputes
#: stay a small share of its work
MIN_PLANES = 16


def plane_blocks(shape: tuple[int, int, int], cells: int = BLOCK_CELLS, min_planes: int = MIN_PLANES) -> np.ndarray:
    """Boundaries i_0 = 0 < i_1 < ... = n_a of the blocks of planes `stage` hands to threads: a
    function of the grid's shape only, never of the thread count."""
    n0, n1, n2 = shape
    step = max(min_planes, -(-cells // (n1 * n2)))
    return np.unique(np.append(np.arange(0, n0, step), n0)).astype(np.int64)


if numba is not None:
    _minmod3 = numba.njit(inline="always")(_minmod3)
    _slope = numba.njit(inline="always")(_slope)
    _upwind = numba.njit(inline="always")(_upwind)
    _slope_plane = numba.njit(cache=True, boundscheck=False)(_slope_plane)
    _face_flux = numba.njit(cache=True, boundscheck=False)(_face_flux)
    _block = numba.njit(cache=True, boundscheck=False)(_block)
    _sum_blocks = numba.njit(cache=True, boundscheck=False)(_sum_blocks)
    stage = numba.njit(cache=True, boundscheck=False, parallel=True)(_stage)
    stiff_maxima = numba.njit(cache=True, boundscheck=False, parallel=True)(_stiff_maxima)
    # the same loops on one thread (prange is range without parallel=True), for work of one
    # block or chunk: waking the thread pool for it costs more than the work, and far more on a
    # busy machine (a 2 x 256 grid: 25 s for the threaded kernel against 0.7 s on numpy while
    # other processes shared the cores)
    stage_serial = numba.njit(cache=True, boundscheck=False)(_stage)
    stiff_maxima_serial = numba.njit(cache=True, boundscheck=False)(_stiff_maxima)
    a_moment = numba.njit(cache=True, boundscheck=False)(_a_moment)
else:  # pragma: no cover
    stage, a_moment, stiff_maxima = _stage, _a_moment, _stiff_maxima
    stage_serial, stiff_maxima_serial = _stage, _stiff_maxima
