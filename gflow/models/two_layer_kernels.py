"""Fused numba kernel: the particle velocity -grad V(u_j; rho_m) of the two-layer model.

For m particles u_j = (a_j, w_j[, b_j]) with weights q_j and M data nodes x_i (weights p_i,
targets y_i) one velocity evaluation is two passes (`gflow.models.two_layer` holds the maths):

    pass 1 (reduce over particles):  f(x_i) = sum_j q_j a_j sigma(w_j.x_i + b_j),  r_i = f(x_i) - y_i
    pass 2 (per particle, over data): dV/da_j = sum_i p_i r_i sigma(z_ji),
                                      dV/dw_j = a_j sum_i p_i r_i sigma'(z_ji) x_i,
                                      dV/db_j = a_j sum_i p_i r_i sigma'(z_ji),

plus lam u_j (weight decay), frozen axes zeroed. The numpy path (`TwoLayerModel.gradient`)
makes about ten passes over (chunk, M) temporaries and evaluates tanh three times per
(particle, datum) pair; this kernel keeps one row of M values in L1 and evaluates sigma once
per pair and pass (twice in all: storing it between the passes would cost an m x M array,
512 MB at m = 10^6, M = 64, and streaming it back is slower here than recomputing it).

tanh is the expensive part: glibc's scalar tanh costs ~40 ns here and numpy's ~14 ns, so the
kernel uses its own branch-free form, which LLVM vectorises (AVX2, ~1.8 ns on one core):
tanh z = e / (e + 2) with e = expm1(2 z), expm1 from its Taylor series on 2z / 128 followed by
seven doublings expm1(2y) = expm1(y) (expm1(y) + 2). It is accurate to ~1e-15 relative for
every z (no cancellation near 0, unlike 1 - 2 / (exp(2z) + 1)); |z| is clamped at 20, where
tanh is 1 to double precision, and the clamp lets NaN through so blow-ups stay visible.

Threads: `numba.prange` over fixed chunks of particles (their number depends on m only, not
on the thread count), each chunk summing its share of f into its own row, the rows summed
in order afterwards, so results are bitwise reproducible whatever the thread count.
fastmath allows only contraction, reassociation and signed zeros (which vectorise the sums):
never 'nnan' / 'ninf'. Tested against the numpy path to round-off (tests/test_particle_kernel.py).
"""
from __future__ import annotations

import math
import types
import weakref

import numpy as np

from gflow.models.units import UNITS

try:
    import numba
except ImportError:  # pragma: no cover - the numpy path serves without numba
    numba = None

#: activation name -> code the kernel branches on (outside its inner loops), from the unit registry
ACTIVATION_CODES = {name: u.kernel_code for name, u in UNITS.items() if u.kernel_code is not None}
#: particles per chunk: at most this many, at least MIN_CHUNK, about m / 32 between
MAX_CHUNK = 4096
MIN_CHUNK = 128
#: particles per block inside a chunk of the network pass (its columns stay in L1)
BLOCK = 256
#: below this many (particle, datum) pairs the kernels run on one thread: starting the
#: threads costs more than they save, and far more when another process holds a core
PARALLEL_PAIRS = 1 << 15

_FASTMATH = {"contract", "reassoc", "nsz"}


#: 1.5 * 2^52: adding it rounds a double below 2^51 to an integer held in the low mantissa bits
_MAGIC = 6755399441055744.0
_INV_LN2 = 1.4426950408889634
#: ln 2 split (Cody and Waite) so that k ln 2 is exact in its first part
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


def _as_int(x):  # pragma: no cover - replaced by a numba intrinsic
    raise NotImplementedError


def _as_float(k):  # pragma: no cover - replaced by a numba intrinsic
    raise NotImplementedError


def _tanh(z):
    """tanh z = e / (e + 2), e = expm1(2 z), to ~1e-15 relative for every z, branch-free.

    expm1(x) = 2^k (1 + p(r)) - 1 with x = k ln 2 + r, |r| <= ln2 / 2, p the degree-12 Taylor
    polynomial of expm1; for k = 0 that is p(r) itself, so there is no cancellation near 0.
    2^k is built in the exponent bits; the rounding of x / ln 2 to k uses the 1.5 * 2^52 trick,
    which is why this function is compiled without 'reassoc' ((y + C) - C must not fold to y).
    """
    x = 2.0 * z
    # clamp written so that NaN passes through (comparisons with NaN are false); tanh(20) = 1
    x = 40.0 if x > 40.0 else x
    x = -40.0 if x < -40.0 else x
    kf = x * _INV_LN2 + _MAGIC
    k = kf - _MAGIC
    r = x - k * _LN2_HI
    r = r - k * _LN2_LO
    # Horner in two halves joined by r^6: a shorter dependency chain than one Horner sweep
    lo = 1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720)))))
    hi = 1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
        1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600)))))
    r2 = r * r
    p = r * (lo + (r2 * r2 * r2) * hi)
    s = _as_float((_as_int(kf) + 1023) << 52)       # 2^k
    em1 = s * p + (s - 1.0)
    return em1 / (em1 + 2.0)


def _dot_sigma(act, c, base, w, x, n):
    """sum_j c_j sigma(base_j + w_j x) over j < n; the branch on act sits outside the loops."""
    acc = 0.0
    if act == 0:
        for j in range(n):
            acc += c[j] * _tanh(base[j] + w[j] * x)
    elif act == 1:
        for j in range(n):
            acc += c[j] * max(base[j] + w[j] * x, 0.0)
    elif act == 2:
        for j in range(n):
            acc += c[j] * (0.5 * (1.0 + _tanh(0.5 * (base[j] + w[j] * x))))
    elif act == 3:
        for j in range(n):
            acc += c[j] * (base[j] + w[j] * x)
    else:
        for j in range(n):
            acc += c[j] * math.cos(base[j] + w[j] * x)
    return acc


def _network(u, q, xt, bias, act, chunk, parts, f):
    """f_i = sum_j q_j a_j sigma(w_j.x_i + b_j): each chunk of particles into its row of
    `parts` (in blocks of BLOCK particles, so the block's columns stay in L1), then the rows
    summed in order."""
    m, D = u.shape
    d, M = xt.shape
    nchunk = parts.shape[0]
    for c in numba.prange(nchunk):
        row = parts[c]
        row[:] = 0.0
        wt = np.empty((d, BLOCK))
        coef = np.empty(BLOCK)
        bb = np.empty(BLOCK)
        base = np.empty(BLOCK)
        stop = min(m, (c + 1) * chunk)
        for start in range(c * chunk, stop, BLOCK):
            n = min(BLOCK, stop - start)
            for j in range(n):
                coef[j] = q[start + j] * u[start + j, 0]
                bb[j] = u[start + j, D - 1] if bias else 0.0
                for k in range(d):
                    wt[k, j] = u[start + j, 1 + k]
            for i in range(M):
                # base = b + the first d - 1 terms of w.x; the last one is fused into the sum
                if d == 1:
                    row[i] += _dot_sigma(act, coef, bb, wt[0], xt[0, i], n)
                else:
                    for j in range(n):
                        base[j] = bb[j] + wt[0, j] * xt[0, i]
                    for k in range(1, d - 1):
                        xk = xt[k, i]
                        for j in range(n):
                            base[j] += wt[k, j] * xk
                    row[i] += _dot_sigma(act, coef, base, wt[d - 1], xt[d - 1, i], n)
    f[:] = 0.0
    for c in range(nchunk):
        for i in range(M):
            f[i] += parts[c, i]


def _moments1(act, w, b, bias, x, pr, prx):
    """For one input coordinate: (sum_i pr_i sigma(z_i), sum_i prx_i sigma'(z_i), sum_i pr_i sigma'(z_i)),
    z_i = w x_i + b, in one pass (the last sum only with a bias, for tanh)."""
    M = x.size
    g = 0.0
    sw = 0.0
    sb = 0.0
    if act == 0 and not bias:
        for i in range(M):
            t = _tanh(w * x[i])
            g += pr[i] * t
            sw += prx[i] * (1.0 - t * t)
    elif act == 0:
        for i in range(M):
            t = _tanh(w * x[i] + b)
            ds = 1.0 - t * t
            g += pr[i] * t
            sw += prx[i] * ds
            sb += pr[i] * ds
    elif act == 1:
        for i in range(M):
            z = w * x[i] + b
            on = z > 0.0
            g += pr[i] * z if on else 0.0
            sw += prx[i] if on else 0.0
            sb += pr[i] if on else 0.0
    elif act == 2:
        for i in range(M):
            s = 0.5 * (1.0 + _tanh(0.5 * (w * x[i] + b)))
            ds = s * (1.0 - s)
            g += pr[i] * s
            sw += prx[i] * ds
            sb += pr[i] * ds
    elif act == 3:
        for i in range(M):
            g += pr[i] * (w * x[i] + b)
            sw += prx[i]
            sb += pr[i]
    else:
        for i in range(M):
            z = w * x[i] + b
            ds = -math.sin(z)
            g += pr[i] * math.cos(z)
            sw += prx[i] * ds
            sb += pr[i] * ds
    return g, sw, sb


def _moments(act, z, pr, e):
    """sum_i pr_i sigma(z_i), and e_i = pr_i sigma'(z_i)."""
    M = z.size
    g = 0.0
    if act == 0:
        for i in range(M):
            t = _tanh(z[i])
            g += pr[i] * t
            e[i] = pr[i] * (1.0 - t * t)
    elif act == 1:
        for i in range(M):
            on = z[i] > 0.0
            g += pr[i] * z[i] if on else 0.0
            e[i] = pr[i] if on else 0.0
    elif act == 2:
        for i in range(M):
            s = 0.5 * (1.0 + _tanh(0.5 * z[i]))
            g += pr[i] * s
            e[i] = pr[i] * (s * (1.0 - s))
    elif act == 3:
        for i in range(M):
            g += pr[i] * z[i]
            e[i] = pr[i]
    else:
        for i in range(M):
            g += pr[i] * math.cos(z[i])
            e[i] = -pr[i] * math.sin(z[i])
    return g


def _velocity(u, xt, pr, bias, act, chunk, lam, trained, v):
    """v_j = -(grad V(u_j) + lam u_j) on trained axes, 0 on frozen ones, given pr_i = p_i r_i.

    One input coordinate: one fused pass over the data per particle; more: z and
    e_i = pr_i sigma'(z_i) in two rows of M, then one short reduction per coordinate.
    """
    m, D = u.shape
    d, M = xt.shape
    nchunk = (m + chunk - 1) // chunk
    prx = pr * xt[0]
    for c in numba.prange(nchunk):
        z = np.empty(M)
        e = np.empty(M)
        for j in range(c * chunk, min(m, (c + 1) * chunk)):
            a = u[j, 0]
            b = u[j, D - 1] if bias else 0.0
            if d == 1:
                g, sw, sb = _moments1(act, u[j, 1], b, bias, xt[0], pr, prx)
                v[j, 1] = -(a * sw + lam * u[j, 1]) * trained[1]
            else:
                for i in range(M):
                    z[i] = b
                for k in range(d):
                    w = u[j, 1 + k]
                    for i in range(M):
                        z[i] += w * xt[k, i]
                g = _moments(act, z, pr, e)
                for k in range(d):
                    s = 0.0
                    for i in range(M):
                        s += xt[k, i] * e[i]
                    v[j, 1 + k] = -(a * s + lam * u[j, 1 + k]) * trained[1 + k]
                sb = 0.0
                if bias:
                    for i in range(M):
                        sb += e[i]
            v[j, 0] = -(g + lam * a) * trained[0]
            if bias:
                v[j, D - 1] = -(a * sb + lam * b) * trained[D - 1]


def _renamed(function, name: str):
    """A copy of `function` under another name (and so another numba cache entry)."""
    copy = types.FunctionType(function.__code__.replace(co_name=name, co_qualname=name), function.__globals__,
                              name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    return copy


if numba is not None:
    from llvmlite import ir
    from numba.core import types as nb_types
    from numba.extending import intrinsic

    @intrinsic
    def _as_int(typingctx, x):  # noqa: F811 - the bits of a double as an int64
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(64))
        return nb_types.int64(nb_types.float64), codegen

    @intrinsic
    def _as_float(typingctx, k):  # noqa: F811 - an int64's bits as a double
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return nb_types.float64(nb_types.int64), codegen

    _opts = dict(fastmath=_FASTMATH, error_model="numpy", boundscheck=False)
    # compiled on its own with 'contract' only; LLVM inlines it with those flags kept
    _tanh = numba.njit(fastmath={"contract"}, error_model="numpy")(_tanh)
    _dot_sigma = numba.njit(inline="always", **_opts)(_dot_sigma)
    _moments1 = numba.njit(inline="always", **_opts)(_moments1)
    _moments = numba.njit(inline="always", **_opts)(_moments)
    network_kernel = numba.njit(cache=True, parallel=True, **_opts)(_network)
    velocity_kernel = numba.njit(cache=True, parallel=True, **_opts)(_velocity)
    # the same loops on one thread, for small problems (prange runs as range); renamed copies,
    # since numba's cache keys on the function's name and line, not on `parallel`: under one
    # name the two variants would overwrite each other's cache entry
    network_serial = numba.njit(cache=True, **_opts)(_renamed(_network, "_network_serial"))
    velocity_serial = numba.njit(cache=True, **_opts)(_renamed(_velocity, "_velocity_serial"))
else:  # pragma: no cover
    network_kernel = velocity_kernel = network_serial = velocity_serial = None


def chunk_size(m: int) -> int:
    """Particles per chunk: about m / 32 (both cores busy at small m), within [MIN_CHUNK, MAX_CHUNK]."""
    return max(MIN_CHUNK, min(MAX_CHUNK, -(-m // 32)))


class ParticleKernel:
    """The compiled network and velocity of one `TwoLayerModel` (its data, activation, bias).

    Same interface as the model's numpy methods it replaces: `network(u, q, x=None)`,
    `velocity(u, q, batch=None)` with batch = (x, p, y) a minibatch (SGD).
    """

    def __init__(self, model):
        if network_kernel is None:  # pragma: no cover
            raise RuntimeError("numba is not installed: use kernel = \"numpy\"")
        self.act = ACTIVATION_CODES[model.spec.activation]
        self.bias = bool(model.bias)
        self.lam = float(model.weight_decay)
        self.trained = model.trained.astype(float)
        self.xt = np.ascontiguousarray(model.x.T, dtype=float)
        self.p = np.ascontiguousarray(model.p, dtype=float)
        self.y = np.ascontiguousarray(model.y, dtype=float)
        #: the residual from the network's values at the nodes, where it is not f - y (a model
        #: reduced by rotations averages over its cosine nodes first: `two_layer_symmetry`)
        self.project = getattr(model, "project", None)
        self._parts = np.empty((0, 0))

    def _parts_for(self, m: int, M: int) -> tuple[int, np.ndarray]:
        chunk = chunk_size(m)
        n = -(-m // chunk)
        if self._parts.shape != (n, M):
            self._parts = np.empty((n, M))
        return chunk, self._parts

    def network(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """f at the data nodes (or at the points x, shape (n, d))."""
        xt = self.xt if x is None else np.ascontiguousarray(np.asarray(x, dtype=float).T)
        u = np.ascontiguousarray(u, dtype=float)
        chunk, parts = self._parts_for(len(u), xt.shape[1])
        f = np.empty(xt.shape[1])
        network = network_kernel if len(u) * xt.shape[1] >= PARALLEL_PAIRS else network_serial
        network(u, np.ascontiguousarray(q, dtype=float), xt, self.bias, self.act, chunk, parts, f)
        return f

    def residual(self, u: np.ndarray, q: np.ndarray) -> np.ndarray:
        f = self.network(u, q)
        return f - self.y if self.project is None else self.project(f)

    def velocity(self, u: np.ndarray, q: np.ndarray, batch=None, out: np.ndarray | None = None) -> np.ndarray:
        """-grad V(u_j; sum_j q_j delta_{u_j}), frozen axes held still (into `out` if given:
        a buffer reused step after step spares the page faults of a fresh m x D array)."""
        u = np.ascontiguousarray(u, dtype=float)
        if batch is None:
            xt, p, y = self.xt, self.p, self.y
        else:
            x, p, y = batch
            xt = np.ascontiguousarray(np.asarray(x, dtype=float).T)
        chunk, parts = self._parts_for(len(u), xt.shape[1])
        parallel = len(u) * xt.shape[1] >= PARALLEL_PAIRS
        f = np.empty(xt.shape[1])
        (network_kernel if parallel else network_serial)(
            u, np.ascontiguousarray(q, dtype=float), xt, self.bias, self.act, chunk, parts, f)
        r = f - y if self.project is None or batch is not None else self.project(f)
        pr = np.ascontiguousarray(p * r, dtype=float)
        v = np.empty_like(u) if out is None else out
        (velocity_kernel if parallel else velocity_serial)(
            u, xt, pr, self.bias, self.act, chunk, self.lam, self.trained, v)
        return v


_KERNELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def has_kernel(activation: str) -> bool:
    """Whether the fused kernel serves this unit (numba installed, a kernel code registered)."""
    return network_kernel is not None and activation in ACTIVATION_CODES


def kernel_for(model) -> ParticleKernel:
    """The (cached) compiled kernel of a two-layer model."""
    kernel = _KERNELS.get(model)
    if kernel is None:
        kernel = _KERNELS[model] = ParticleKernel(model)
    return kernel
