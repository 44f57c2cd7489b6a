"""Fused numba kernel: the particle velocity -grad V(u_j; rho_m) of the two-layer model.

For m particles u_j = (a_j, w_j[, b_j]) with weights q_j and M data nodes x_i (weights p_i,
targets y_i) one velocity evaluation is two passes (`gflow.models.two_layer` holds the maths):

    pass 1 (reduce over particles):  f(x_i) = sum_j q_j a_j sigma(w_j.x_i + b_j),  r_i = f(x_i) - y_i
    pass 2 (per particle, over data): dV/da_j = sum_i p_i r_i sigma(z_ji),
                                      dV/dw_j = a_j sum_i p_i r_i sigma'(z_ji) x_i,
                                      dV/db_j = a_j sum_i p_i r_i sigma'(z_ji),

plus lam u_j (weight decay), frozen axes zeroed. The numpy path (`TwoLayerModel.gradient`)
makes about ten passes over (chunk, M) temporaries and evaluates tanh three times per
(particle, datum) pair; this kernel evaluates sigma once per pair and pass (twice in all:
storing it between the passes would cost an m x M array, 512 MB at m = 10^6, M = 64, and
streaming it back is slower here than recomputing it). Both passes work on blocks of BLOCK
particles whose columns (structure of arrays: w_k, b, and pass 2's sums) sit in L1, with the
data in the outer loop, so the inner loop runs along the particles and LLVM vectorises it
(AVX2: 4 float64 or 8 float32 lanes; checked with `inspect_asm`, ymm throughout).

tanh is the expensive part: glibc's scalar tanh costs ~40 ns here and numpy's ~14 ns, so the
kernel uses its own branch-free form (`_tanh`): z = k ln2 / 2 + h, 2^k built in the exponent
bits, tanh h from a [2/2] minimax rational, combined in one division; 4e-16 relative for every
z (no cancellation near 0), |z| clamped at 20 (tanh = 1 there) with NaN let through.

precision = "float32" (`ParticleKernel(model, "float32")`) runs the same loops on float32
(`F`, the kernels copied per precision by `_build`) with `_tanh32`, a [4/4] minimax rational
on |z| <= 9 (3e-7 relative); u, q, the chunk rows of f, the residual and v stay float64.

Flops per (particle, datum) pair and step, one input coordinate without a bias (the
quickstart; FMA = 2, divisions and compares as 1 and 0): `_tanh` 24, `_tanh32` 19; pass 1
z = b + w x (2) and the sum (2); pass 2 z = w x (1), g += p t (2), 1 - t^2 (2), sw += px (.) (2):
2 x 24 + 11 = 59 in float64, 2 x 19 + 11 = 49 in float32 (`FLOPS_PER_PAIR`). Per-particle
and per-datum work (packing a block, the velocity's assembly) is O(m + M) and left out.

Profile (2 vCPUs, AMD EPYC Zen 3, AVX2 + FMA, no AVX-512; no hardware counters in the VM, so
by experiment): one core sustains 2 ymm FMAs per cycle (7.7 per ns measured, 61 GFLOPS in
float64), the two vCPUs together 1.4-1.5x that when the host is quiet. The step runs ~34
GFLOPS in float64 and ~68 in float32 (1.75 and 0.72 ns per pair, m = 10^6, M = 64), ~40% of
that measured peak. Not the limit: the division (dropping it saves ~10% in float64, nothing
in float32), memory (the blocks sit in L1; BLOCK = 256..1024 makes no difference; u is read
once per pass, 0.25 byte per pair), vectorisation (ymm throughout, `inspect_asm`). The limit
is the tanh's dependency chain (~55 cycles in float64) against the out-of-order window with
16 ymm registers: a pass takes ~16 cycles per 4 lanes where the FMA ports need ~8; two
chains per iteration made pass 2 25% faster (`_moments1`), four spill and run slower.

Threads: `numba.prange` over fixed chunks of particles (their number depends on m only, not
on the thread count), each chunk summing its share of f into its own row, the rows summed
in order afterwards, and each particle's sums over the data run in order, so results are
bitwise reproducible whatever the thread count. fastmath allows only contraction,
reassociation and signed zeros (which vectorise the sums): never 'nnan' / 'ninf'. Tested
against the numpy path to round-off, float32 to float32 round-off (tests/test_particle_kernel.py).
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
#: particles per block inside a chunk, in both passes (its columns and sums stay in L1)
BLOCK = 256
#: below this many (particle, datum) pairs the kernels run on one thread: starting the
#: threads costs more than they save, and far more when another process holds a core
PARALLEL_PAIRS = 1 << 15

_FASTMATH = {"contract", "reassoc", "nsz"}
#: flops per (particle, datum) pair and step of the quickstart's loops (module docstring)
FLOPS_PER_PAIR = {"float64": 59, "float32": 49}


#: 1.5 * 2^52: adding it rounds a double below 2^51 to an integer held in the low mantissa bits
_MAGIC = 6755399441055744.0
#: 2 / ln 2 and ln2 / 2: z = k ln2 / 2 + h, so 2z = k ln2 + 2h
_TWO_OVER_LN2 = 2.8853900817779268
_HALF_LN2 = 0.34657359027997264
#: tanh h = h P(h^2) / Q(h^2) on |h| <= ln2 / 4: relative minimax [2/2] (of tanh(r/2) on
#: |r| <= ln2 / 2, rescaled to h = r / 2), error 4.8e-18
_P0, _P1, _P2 = 1.0, 0.11109907048570229, 0.0010573989522752365
_Q1, _Q2 = 0.44443240381902754, 0.01586820022743854
#: float32: tanh z = z P(z^2) / Q(z^2) on |z| <= 9 (tanh 9 = 1 in float32), relative minimax
#: [4/4], error 2.9e-8 (a quarter of float32's ulp); the coefficients rounded to float32
_CLAMP32 = np.float32(9.0)
_A = tuple(np.float32(c) for c in (1.0, 0.1338791698217392, 0.0035036562476307154, 2.0735524230985902e-05,
                                   1.3514826591176643e-08))
_B = tuple(np.float32(c) for c in (1.0, 0.46721234917640686, 0.02590799704194069, 0.0003298577503301203,
                                   7.845451364119072e-07))
_A0, _A1, _A2, _A3, _A4 = _A
_B0, _B1, _B2, _B3, _B4 = _B


def _as_int(x):  # pragma: no cover - replaced by a numba intrinsic
    raise NotImplementedError


def _as_float(k):  # pragma: no cover - replaced by a numba intrinsic
    raise NotImplementedError


def _tanh(z):
    """tanh z to 4e-16 relative for every z, branch-free, one division (float64).

    z = k ln2 / 2 + h, |h| <= ln2 / 4, s = 2^k (built in the exponent bits), T = tanh h =
    N / D with N = h P(h^2), D = Q(h^2) (minimax [2/2]). Then e^(2z) = s (1 + T) / (1 - T) and

        tanh z = ((s - 1) D + (s + 1) N) / ((s + 1) D + (s - 1) N),

    which for k = 0 is N / D itself, so there is no cancellation near 0; s - 1 and s + 1 are
    exact. h takes one FMA with ln2 / 2 rounded: its error k 1e-17 reaches tanh damped by
    sech^2 z ~ 4 / 2^k. The rounding of z 2 / ln2 to k uses the 1.5 * 2^52 trick, which is
    why this function is compiled without 'reassoc' ((y + C) - C must not fold to y).
    24 flops (FMA = 2): 4 multiplies, 8 FMAs, 3 adds, 1 division; plus 2 clamps, 2 integer ops.
    """
    # clamp written so that NaN passes through (comparisons with NaN are false); tanh(20) = 1
    z = 20.0 if z > 20.0 else z
    z = -20.0 if z < -20.0 else z
    kf = z * _TWO_OVER_LN2 + _MAGIC
    k = kf - _MAGIC
    h = z - k * _HALF_LN2
    u = h * h
    n = h * (_P0 + u * (_P1 + u * _P2))
    d = 1.0 + u * (_Q1 + u * _Q2)
    s = _as_float((_as_int(kf) + 1023) << 52)       # 2^k
    sm = s - 1.0
    sp = s + 1.0
    return (sm * d + sp * n) / (sp * d + sm * n)


def _tanh32(z):
    """tanh z in float32 to ~1e-7 relative (a few ulp), branch-free: the minimax [4/4]
    z P(z^2) / Q(z^2) on |z| <= 9 (|z| clamped there, NaN passing through). 10 FMA-pipe
    operations (2 multiplies, 8 FMAs), 2 compares and 1 division, on 8 lanes of AVX2."""
    z = _CLAMP32 if z > _CLAMP32 else z
    z = -_CLAMP32 if z < -_CLAMP32 else z
    u = z * z
    p = z * (_A0 + u * (_A1 + u * (_A2 + u * (_A3 + u * _A4))))
    q = _B0 + u * (_B1 + u * (_B2 + u * (_B3 + u * _B4)))
    return p / q


# The kernels below are written once for both precisions: `F` is the float type of the pair
# work (np.float64 or np.float32; every constant is F(...), since a bare Python float would
# promote float32 to float64) and `_th` its tanh. `_variant` makes a copy of each under its
# own name and globals per precision. Sums over blocks of particles and over the data for
# one particle run in F; the chunk rows of f, the residual and the velocities stay float64.
F = np.float64
_th = _tanh


def _dot_sigma(act, c, base, w, x, n):
    """sum_j c_j sigma(base_j + w_j x) over j < n; the branch on act sits outside the loops."""
    acc = F(0.0)
    if act == 0:
        for j in range(n):
            acc += c[j] * _th(base[j] + w[j] * x)
    elif act == 1:
        for j in range(n):
            acc += c[j] * max(base[j] + w[j] * x, F(0.0))
    elif act == 2:
        for j in range(n):
            acc += c[j] * (F(0.5) * (F(1.0) + _th(F(0.5) * (base[j] + w[j] * x))))
    elif act == 3:
        for j in range(n):
            acc += c[j] * (base[j] + w[j] * x)
    else:
        for j in range(n):
            acc += c[j] * math.cos(base[j] + w[j] * x)
    return acc


def _pack(u, start, n, bias, wt, bb):
    """Columns of a block of particles in L1, in F: w (d, n) and b (n; 0 without a bias)."""
    D = u.shape[1]
    d = wt.shape[0]
    for j in range(n):
        bb[j] = F(u[start + j, D - 1]) if bias else F(0.0)
        for k in range(d):
            wt[k, j] = F(u[start + j, 1 + k])


def _partial_base(wt, bb, xt, i, n, base):
    """base_j = b_j + the first d - 1 terms of w_j.x_i (the last one is fused into the sums)."""
    d = wt.shape[0]
    for j in range(n):
        base[j] = bb[j] + wt[0, j] * xt[0, i]
    for k in range(1, d - 1):
        xk = xt[k, i]
        for j in range(n):
            base[j] += wt[k, j] * xk


def _network(u, q, xt, bias, act, chunk, parts, f):
    """f_i = sum_j q_j a_j sigma(w_j.x_i + b_j): each chunk of particles into its row of
    `parts` (float64; in blocks of BLOCK particles, so the block's columns stay in L1, each
    block's sum in F), then the rows summed in order."""
    m, D = u.shape
    d, M = xt.shape
    nchunk = parts.shape[0]
    for c in numba.prange(nchunk):
        row = parts[c]
        row[:] = 0.0
        wt = np.empty((d, BLOCK), F)
        coef = np.empty(BLOCK, F)
        bb = np.empty(BLOCK, F)
        base = np.empty(BLOCK, F)
        stop = min(m, (c + 1) * chunk)
        for start in range(c * chunk, stop, BLOCK):
            n = min(BLOCK, stop - start)
            _pack(u, start, n, bias, wt, bb)
            for j in range(n):
                coef[j] = F(q[start + j] * u[start + j, 0])
            for i in range(M):
                if d == 1:
                    row[i] += _dot_sigma(act, coef, bb, wt[0], xt[0, i], n)
                else:
                    _partial_base(wt, bb, xt, i, n, base)
                    row[i] += _dot_sigma(act, coef, base, wt[d - 1], xt[d - 1, i], n)
    f[:] = 0.0
    for c in range(nchunk):
        for i in range(M):
            f[i] += parts[c, i]


def _moments1(act, bias, n, b, w, x, p, px, g, sw, sb):
    """One datum (x, p = p_i r_i, px = p x) into a block's sums, one input coordinate:
    g_j += p sigma(z_j), sw_j += px sigma'(z_j), sb_j += p sigma'(z_j) (with a bias), z_j = w_j x + b_j."""
    # tanh: the block's two halves side by side, two independent chains per iteration (the
    # tanh's dependency chain, not its arithmetic, bounds one chain: measured 1.5 against 2.0
    # ns per pair on one core); an odd n leaves its last particle to the second loop
    h = n // 2
    if act == 0 and not bias:
        for j in range(h):
            t = _th(w[j] * x)
            t2 = _th(w[j + h] * x)
            g[j] += p * t
            sw[j] += px * (F(1.0) - t * t)
            g[j + h] += p * t2
            sw[j + h] += px * (F(1.0) - t2 * t2)
        for j in range(2 * h, n):
            t = _th(w[j] * x)
            g[j] += p * t
            sw[j] += px * (F(1.0) - t * t)
    elif act == 0:
        for j in range(h):
            t = _th(w[j] * x + b[j])
            t2 = _th(w[j + h] * x + b[j + h])
            ds = F(1.0) - t * t
            ds2 = F(1.0) - t2 * t2
            g[j] += p * t
            sw[j] += px * ds
            sb[j] += p * ds
            g[j + h] += p * t2
            sw[j + h] += px * ds2
            sb[j + h] += p * ds2
        for j in range(2 * h, n):
            t = _th(w[j] * x + b[j])
            ds = F(1.0) - t * t
            g[j] += p * t
            sw[j] += px * ds
            sb[j] += p * ds
    elif act == 1:
        for j in range(n):
            z = w[j] * x + b[j]
            on = z > F(0.0)
            g[j] += p * z if on else F(0.0)
            sw[j] += px if on else F(0.0)
            sb[j] += p if on else F(0.0)
    elif act == 2:
        for j in range(n):
            s = F(0.5) * (F(1.0) + _th(F(0.5) * (w[j] * x + b[j])))
            ds = s * (F(1.0) - s)
            g[j] += p * s
            sw[j] += px * ds
            sb[j] += p * ds
    elif act == 3:
        for j in range(n):
            g[j] += p * (w[j] * x + b[j])
            sw[j] += px
            sb[j] += p
    else:
        for j in range(n):
            z = w[j] * x + b[j]
            ds = -math.sin(z)
            g[j] += p * math.cos(z)
            sw[j] += px * ds
            sb[j] += p * ds


def _moments(act, n, base, w, x, p, g, e):
    """One datum into a block's sums, several input coordinates: g_j += p sigma(z_j) and
    e_j = p sigma'(z_j), z_j = base_j + w_j x (x the datum's last coordinate)."""
    if act == 0:
        h = n // 2                # two chains per iteration, as in `_moments1`
        for j in range(h):
            t = _th(base[j] + w[j] * x)
            t2 = _th(base[j + h] + w[j + h] * x)
            g[j] += p * t
            e[j] = p * (F(1.0) - t * t)
            g[j + h] += p * t2
            e[j + h] = p * (F(1.0) - t2 * t2)
        for j in range(2 * h, n):
            t = _th(base[j] + w[j] * x)
            g[j] += p * t
            e[j] = p * (F(1.0) - t * t)
    elif act == 1:
        for j in range(n):
            z = base[j] + w[j] * x
            on = z > F(0.0)
            g[j] += p * z if on else F(0.0)
            e[j] = p if on else F(0.0)
    elif act == 2:
        for j in range(n):
            s = F(0.5) * (F(1.0) + _th(F(0.5) * (base[j] + w[j] * x)))
            g[j] += p * s
            e[j] = p * (s * (F(1.0) - s))
    elif act == 3:
        for j in range(n):
            g[j] += p * (base[j] + w[j] * x)
            e[j] = p
    else:
        for j in range(n):
            z = base[j] + w[j] * x
            g[j] += p * math.cos(z)
            e[j] = -p * math.sin(z)


def _velocity(u, xt, pr, bias, act, chunk, lam, trained, v):
    """v_j = -(grad V(u_j) + lam u_j) on trained axes, 0 on frozen ones, given pr_i = p_i r_i.

    Like the network pass, blocks of BLOCK particles in L1 and the data in the outer loop, so
    the inner loop runs along the particles (vectorised across them) and each particle's sums
    over the data run in order: g_j = sum_i pr_i sigma(z_ji), sw_kj = sum_i pr_i x_ki sigma'(z_ji),
    sb_j = sum_i pr_i sigma'(z_ji). One input coordinate: one fused loop per datum; more:
    e_j = pr_i sigma'(z_ji) in a row of the block, then one short loop per coordinate.
    """
    m, D = u.shape
    d, M = xt.shape
    nchunk = (m + chunk - 1) // chunk
    prx = pr * xt[0]
    for c in numba.prange(nchunk):
        wt = np.empty((d, BLOCK), F)
        bb = np.empty(BLOCK, F)
        base = np.empty(BLOCK, F)
        e = np.empty(BLOCK, F)
        g = np.empty(BLOCK, F)
        sw = np.empty((d, BLOCK), F)
        sb = np.empty(BLOCK, F)
        stop = min(m, (c + 1) * chunk)
        for start in range(c * chunk, stop, BLOCK):
            n = min(BLOCK, stop - start)
            _pack(u, start, n, bias, wt, bb)
            g[:] = F(0.0)
            sw[:] = F(0.0)
            sb[:] = F(0.0)
            for i in range(M):
                if d == 1:
                    _moments1(act, bias, n, bb, wt[0], xt[0, i], pr[i], prx[i], g, sw[0], sb)
                else:
                    _partial_base(wt, bb, xt, i, n, base)
                    _moments(act, n, base, wt[d - 1], xt[d - 1, i], pr[i], g, e)
                    for k in range(d):
                        xk = xt[k, i]
                        swk = sw[k]
                        for j in range(n):
                            swk[j] += xk * e[j]
                    if bias:
                        for j in range(n):
                            sb[j] += e[j]
            for j in range(n):
                jj = start + j
                a = u[jj, 0]
                v[jj, 0] = -(np.float64(g[j]) + lam * a) * trained[0]
                for k in range(d):
                    v[jj, 1 + k] = -(a * np.float64(sw[k, j]) + lam * u[jj, 1 + k]) * trained[1 + k]
                if bias:
                    v[jj, D - 1] = -(a * np.float64(sb[j]) + lam * u[jj, D - 1]) * trained[D - 1]


def _variant(function, name: str, namespace: dict | None = None):
    """A copy of `function` under another name (and so another numba cache entry), resolving
    its globals in `namespace` (default: this module's)."""
    namespace = function.__globals__ if namespace is None else namespace
    copy = types.FunctionType(function.__code__.replace(co_name=name, co_qualname=name), namespace,
                              name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    return copy


#: precision -> the kernels' float type
DTYPES = {"float64": np.float64, "float32": np.float32}
#: precision -> {"network": (threaded, one-thread), "velocity": (threaded, one-thread)}
KERNELS: dict[str, dict[str, tuple]] = {}

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
    # compiled on their own with 'contract' only; LLVM inlines them with those flags kept
    _tanh = numba.njit(fastmath={"contract"}, error_model="numpy")(_tanh)
    _tanh32 = numba.njit(fastmath={"contract"}, error_model="numpy")(_tanh32)
    _HELPERS = (_dot_sigma, _pack, _partial_base, _moments1, _moments)

    def _build(precision: str) -> None:
        """The kernels of one precision: helpers and kernels copied into a namespace of their
        own (F, _th and the helpers resolved there), each under a name of its own, since
        numba's cache keys on the function's name and line, not on its globals or `parallel`."""
        suffix = "" if precision == "float64" else "_f32"
        namespace = dict(globals(), F=DTYPES[precision], _th=_tanh if precision == "float64" else _tanh32)
        for helper in _HELPERS:
            namespace[helper.__name__] = numba.njit(inline="always", **_opts)(
                _variant(helper, helper.__name__ + suffix, namespace))
        built = {}
        for name, function in (("network", _network), ("velocity", _velocity)):
            threaded = numba.njit(cache=True, parallel=True, **_opts)(
                _variant(function, f"_{name}{suffix}", namespace))
            # the same loops on one thread, for small problems (prange runs as range)
            serial = numba.njit(cache=True, **_opts)(_variant(function, f"_{name}_serial{suffix}", namespace))
            built[name] = (threaded, serial)
        KERNELS[precision] = built

    for _precision in DTYPES:
        _build(_precision)
    (network_kernel, network_serial), (velocity_kernel, velocity_serial) = KERNELS["float64"].values()
else:  # pragma: no cover
    network_kernel = velocity_kernel = network_serial = velocity_serial = None


def chunk_size(m: int) -> int:
    """Particles per chunk: about m / 32 (both cores busy at small m), within [MIN_CHUNK, MAX_CHUNK]."""
    return max(MIN_CHUNK, min(MAX_CHUNK, -(-m // 32)))


class ParticleKernel:
    """The compiled network and velocity of one `TwoLayerModel` (its data, activation, bias).

    Same interface as the model's numpy methods it replaces: `network(u, q, x=None)`,
    `velocity(u, q, batch=None)` with batch = (x, p, y) a minibatch (SGD). `precision` is the
    float type of the pair work ("float64" or "float32"); u, q, f, the residual and the
    velocities are float64 either way (float32 kernels convert u and q as they load a block).
    """

    def __init__(self, model, precision: str = "float64"):
        if network_kernel is None:  # pragma: no cover
            raise RuntimeError("numba is not installed: use kernel = \"numpy\"")
        self.precision = precision
        self.dtype = DTYPES[precision]
        self._network_pair = KERNELS[precision]["network"]
        self._velocity_pair = KERNELS[precision]["velocity"]
        self.act = ACTIVATION_CODES[model.spec.activation]
        self.bias = bool(model.bias)
        self.lam = float(model.weight_decay)
        self.trained = model.trained.astype(float)
        self.xt = np.ascontiguousarray(model.x.T, dtype=self.dtype)
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

    def _points(self, x) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(x, dtype=float).T, dtype=self.dtype)

    def _f(self, u: np.ndarray, q: np.ndarray, xt: np.ndarray) -> np.ndarray:
        chunk, parts = self._parts_for(len(u), xt.shape[1])
        f = np.empty(xt.shape[1])
        threaded, serial = self._network_pair
        network = threaded if len(u) * xt.shape[1] >= PARALLEL_PAIRS else serial
        network(u, np.ascontiguousarray(q, dtype=float), xt, self.bias, self.act, chunk, parts, f)
        return f

    def network(self, u: np.ndarray, q: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """f at the data nodes (or at the points x, shape (n, d))."""
        xt = self.xt if x is None else self._points(x)
        return self._f(np.ascontiguousarray(u, dtype=float), q, xt)

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
            xt = self._points(x)
        f = self._f(u, q, xt)
        r = f - y if self.project is None or batch is not None else self.project(f)
        pr = np.ascontiguousarray(p * r, dtype=self.dtype)
        v = np.empty_like(u) if out is None else out
        threaded, serial = self._velocity_pair
        velocity = threaded if len(u) * xt.shape[1] >= PARALLEL_PAIRS else serial
        velocity(u, xt, pr, self.bias, self.act, chunk_size(len(u)), self.lam, self.trained, v)
        return v

    def potential(self, u: np.ndarray, q: np.ndarray) -> np.ndarray:
        """V(u_j) = a_j g(w_j, b_j) + lam |u_j|^2 / 2 at the points themselves (birth-death): g from
        the velocity pass run with lam = 0 and only the a axis moving, whose v_a = -dV/da = -g."""
        u = np.ascontiguousarray(u, dtype=float)
        pr = np.ascontiguousarray(self.p * self.residual(u, q), dtype=self.dtype)
        only_a = np.zeros_like(self.trained)
        only_a[0] = 1.0
        v = np.empty_like(u)
        threaded, serial = self._velocity_pair
        velocity = threaded if len(u) * self.xt.shape[1] >= PARALLEL_PAIRS else serial
        velocity(u, self.xt, pr, self.bias, self.act, chunk_size(len(u)), 0.0, only_a, v)
        return -u[:, 0] * v[:, 0] + 0.5 * self.lam * np.einsum("ij,ij->i", u, u)


_KERNELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def has_kernel(activation: str) -> bool:
    """Whether the fused kernel serves this unit (numba installed, a kernel code registered)."""
    return network_kernel is not None and activation in ACTIVATION_CODES


def kernel_for(model, precision: str = "float64") -> ParticleKernel:
    """The (cached) compiled kernel of a two-layer model in one precision."""
    kernels = _KERNELS.setdefault(model, {})
    if precision not in kernels:
        kernels[precision] = ParticleKernel(model, precision)
    return kernels[precision]
