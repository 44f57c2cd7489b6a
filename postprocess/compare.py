"""Distances between two runs at their common snapshot times (`gflow compare`).

For each common time: both risks and their difference; the Wasserstein distances

    W_p(rho_A, rho_B) = ( min_{pi in Pi(rho_A, rho_B)} int |u - v|^p dpi(u, v) )^(1/p),  p = 1, 2,

between the two densities normalised to mass 1 (Villani, *Optimal Transport*, 2009, Def. 6.1);
the L1 and L2 norms of rho_A - rho_B after both are regridded conservatively onto one grid
(the union of both boxes at the coarser spacing, `postprocess.regrid.common_grid`: a finer
run enters through its exact cell averages on the coarser run's cells); and the L1 norm of
the difference of each 1D marginal.

Which representation each number uses, the output states once:
- a grid run is transported as its cell masses at the cell centres; a particle run as its
  particles (positions, and the weights of that snapshot: `Snapshot.weights`, which change in a
  birth-death or Fisher-Rao run, `snapshot_weights`) where sizes allow. L1, L2 and marginals use densities, so a particle run
  enters them through its binned `density` dataset.
- 1D: W_p exactly, through quantile functions, for any size.
- D > 1: exact optimal transport (POT's network simplex, `ot.emd2`) when the two supports
  are small enough (n_A n_B <= PAIR_MAX): two grid runs on their common grid (so equal
  densities are exactly 0 apart); a particle run as its particles beside the other run;
  failing that, both runs as densities (a particle run's binned one) coarsened conservatively,
  halving the cells, down to MIN_CELLS on their longest axis if that is what it takes. Beyond
  that, lower bounds from 1D projections (`_sliced`): D times the sliced W2^2 (Bonneel et al.,
  J. Math. Imaging Vis. 51, 2015, eq. 4) over fixed random orthonormal bases, and for W1 the
  largest projected W1 or the distance of the means; both are exact for a translation.
- cell masses sit at cell centres; moving each cell's mass there moves W by at most
  sqrt(sum_k h_k^2 / 12) per run on its own cells (uniform in each) and half the cell diagonal
  on cells it was regridded onto (`_quantisation`), and the output states the sum.
- marginal W1 (the table's W1[axis], JSON and CSV) is exact on each axis between the runs' own
  densities (piecewise constant on their cells) or particles, at any size: a lower bound of W1
  that needs no transport grid.
- the table marks with `*` each W below its stated bound (`W_bound` in JSON and CSV): the
  transport grid does not resolve it.

The common grid holds at most `regrid.MAX_COMMON_CELLS` cells (the largest grid a case may
have): two runs on far-apart boxes or of very different spacings, whose union box at the
coarser spacing would be larger, are refused in one line before anything is allocated.

Layered runs (`Run.layers` = L, the `resnet` kind: one density rho_l per depth tau_l = l/L,
which no flow moves between layers) compare layer by layer over the parameter axes: every
distance above between rho_l^A and rho_l^B, with one transport plan for all layers (they share
their grids and particle counts), and no distance along "layer" (the depth is a label, not a
position: a layer's cell is not mass spread over [tau - 1/(2L), tau + 1/(2L)]). Overall
is the distance between the joint measures mu = sum_l (1/L) delta_{tau_l} x rho_l when no
mass may change layer: a plan then splits into one plan per layer, so

    W_p(mu_A, mu_B)^p = (1/L) sum_l W_p(rho_l^A, rho_l^B)^p,

the mean over layers of W1 and the root mean square of W2; likewise L1 (and each marginal's
L1 and W1) is the mean over layers and L2 the root mean square (`overall`). The risks are the
runs' own, as for any run.
"""
from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import ot

from gflow.errors import InputError
from gflow.run_file import printable
from gflow.snapshots import Run
from gflow.postprocess.layers import check_same_layers, depths, layer_snapshots, layer_view
from gflow.postprocess.regrid import cell_volumes, coarsen_faces, common_grid, regrid
from gflow.postprocess.runs import faces, grid_label, grid_points, marginal

#: largest n_A * n_B solved exactly (~0.1-0.5 s per distance)
PAIR_MAX = 1 << 20
#: exact transport coarsens a grid no further than this many cells on its longest axis
MIN_CELLS = 16
#: sliced transport coarsens grids to at most this many cells
SLICED_POINTS = 1 << 16
PROJECTIONS = 128
#: after this many seconds, `compare_runs` reports each finished time on stderr
PROGRESS_AFTER = 5.0
#: cells lighter than this fraction of the heaviest carry no transport (W changes by < 1e-12)
NEGLIGIBLE = 1e-12
#: per-layer distances that combine over layers as a root mean square (the others: a mean)
SQUARED = ("W2", "L2")
#: snapshot times shown as columns of the per-layer W1 table (JSON and CSV hold all)
LAYER_TIME_COLUMNS = 8


@dataclass
class Transport:
    """How the two densities enter W: `method`, and per run the faces it is binned on (None: particles)."""

    method: str                   # "quantile" | "emd" | "sliced"
    grids: list                   # per run: tuple of faces, or None for particles
    description: str = ""
    #: bound on |W computed - W of the piecewise-constant densities| from the cell-centre representation
    resolution: float = 0.0


@dataclass
class Comparison:
    runs: tuple[Run, Run]
    transport: Transport
    l_grid: str
    rows: list[dict] = field(default_factory=list)
    #: L for layered runs: each row then holds the overall distances and, under "layers", one
    #: dict per layer (its index, depth and distances)
    layers: int | None = None

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes the distances are over: a layered run's parameter axes (no "layer")."""
        return self.runs[0].axes[1:] if self.layers else self.runs[0].axes


def common_times(ta: np.ndarray, tb: np.ndarray) -> list[tuple[int, int]]:
    """Index pairs (i, j) with ta[i] == tb[j] up to round-off."""
    scale = max(1.0, float(np.max(np.abs(np.concatenate([ta, tb])))))
    j = np.searchsorted(tb, ta).clip(0, len(tb) - 1)
    pairs = []
    for i, t in enumerate(ta):
        near = [k for k in (j[i] - 1, j[i]) if 0 <= k < len(tb) and abs(tb[k] - t) <= 1e-9 * scale]
        if near:
            pairs.append((i, near[0]))
    return pairs


def run_common_grid(run_a: Run, run_b: Run) -> tuple[np.ndarray, ...]:
    """`regrid.common_grid` of two runs' faces; one beyond MAX_COMMON_CELLS is an `InputError`."""
    try:
        return common_grid(faces(run_a), faces(run_b))
    except ValueError as exc:
        raise InputError(f"{run_b.path}: cannot be compared with {run_a.path}: {exc}") from None


def _support(run: Run, grid) -> int:
    return len(run.weights) if grid is None else math.prod(len(f) - 1 for f in grid)


def _describe(run: Run, grid, name: str) -> str:
    if grid is None:
        return f"{name}'s {len(run.weights)} particles"
    native = tuple(len(c) for c in run.coordinates)
    cells = tuple(len(f) - 1 for f in grid)
    what = "binned particle density" if run.has_particles else "cell masses"
    text = f"{name}'s {what} on {' x '.join(map(str, cells))} cells"
    return text + (f" (coarsened from {' x '.join(map(str, native))})" if cells != native else "")


def _coarsened(runs, grids, limit: int, min_cells: int) -> list:
    """Halve the grids' cells (together when they are one grid) until n_A n_B <= limit or
    no grid may be coarsened further."""
    grids = list(grids)
    while _support(runs[0], grids[0]) * _support(runs[1], grids[1]) > limit:
        coarsenable = [k for k in (0, 1) if grids[k] is not None and max(len(f) - 1 for f in grids[k]) > min_cells]
        if not coarsenable:
            break
        if grids[0] is grids[1]:
            grids = [tuple(coarsen_faces(f) for f in grids[0])] * 2
            continue
        k = max(coarsenable, key=lambda k: _support(runs[k], grids[k]))
        grids[k] = tuple(coarsen_faces(f) for f in grids[k])
    return grids


def _coarsened_to(grid, limit: int):
    while grid is not None and math.prod(len(f) - 1 for f in grid) > limit:
        grid = tuple(coarsen_faces(f) for f in grid)
    return grid


def plan_transport(run_a: Run, run_b: Run) -> Transport:
    """Choose the W method and each run's representation from the sizes (see the module text)."""
    runs = (run_a, run_b)
    as_points = [None if r.has_particles else faces(r) for r in runs]
    if len(run_a.axes) == 1:
        method, grids = "quantile", as_points
    else:
        # particles as points beside grids at full resolution; failing that, every run as a
        # density on a coarsened grid: one coarse grid's centres against points would add its
        # whole quantisation error to W, where two coarse densities share it and it cancels
        # both on one grid: identical densities then give exactly W = 0, where two different
        # coarse grids would add their quantisation error even between equal runs
        shared = _coarsened(runs, [run_common_grid(run_a, run_b)] * 2, PAIR_MAX, MIN_CELLS)[0]
        grids = [shared, shared]
        both_grids = not (run_a.has_particles or run_b.has_particles)
        if not both_grids and _support(run_a, as_points[0]) * _support(run_b, as_points[1]) <= PAIR_MAX:
            method, grids = "emd", as_points
        elif _support(run_a, grids[0]) * _support(run_b, grids[1]) <= PAIR_MAX:
            method = "emd"
        else:
            method = "sliced"
            grids = [_coarsened_to(g, SLICED_POINTS) for g in as_points]
    what = {"quantile": "exact (1D quantile functions)",
            "emd": "exact optimal transport (POT emd)",
            "sliced": f"sliced Wasserstein over {PROJECTIONS} random directions in orthonormal bases"
                      " (lower bounds of W_p, exact for a translation)"}[method]
    sides = " and ".join(_describe(r, g, n) for r, g, n in zip(runs, grids, "AB"))
    resolution = sum(_quantisation(r, g) for r, g in zip(runs, grids) if g is not None)
    text = f"{what} between {sides}"
    if resolution:
        text += f"; cell centres stand for the cells, which moves W by at most {resolution:.3g}"
    return Transport(method, grids, text, resolution)


def _quantisation(run: Run, grid) -> float:
    """Bound on W_p (p = 1, 2) between a run's piecewise-constant density and its masses at the
    centres of `grid`; the computed W is within the sum of both runs' bounds (triangle inequality).

    On the run's own cells the density is uniform in each cell: W2 to the centres is exactly
    sqrt(sum_k h_k^2 / 12), and W1 <= W2. On cells it was regridded onto it may sit anywhere in
    a cell, so a cell's mass travels at most half the cell diagonal.
    """
    h = np.array([np.diff(f).max() for f in grid])
    own = faces(run)
    native = len(own) == len(grid) and all(len(a) == len(b) and np.allclose(a, b, rtol=0, atol=1e-12 * (1 + np.abs(a).max()))
                                           for a, b in zip(own, grid))
    return float(np.sqrt(np.sum(h * h) / 12.0)) if native else 0.5 * float(np.linalg.norm(h))


def marginal_measure(run: Run, snap, axis: int):
    """One axis's marginal: ("grid", faces, cell masses) of the density, or ("points", x, q) of the particles."""
    if run.has_particles:
        order = np.argsort(snap.positions[:, axis])
        q = snapshot_weights(run, snap)[order]
        return "points", snap.positions[order, axis], q / q.sum()
    f = faces(run)
    m = marginal(snap.density, f, (axis,)) * np.diff(f[axis])
    return "grid", f[axis], m / m.sum()


def _cdf(measure, x):
    """The CDF at the sorted points x, right-continuous value and left limit."""
    kind, where, mass = measure
    cum = np.concatenate([[0.0], np.cumsum(mass)])
    if kind == "grid":                       # uniform in each cell: piecewise linear and continuous
        value = np.interp(x, where, cum)
        return value, value
    return cum[np.searchsorted(where, x, side="right")], cum[np.searchsorted(where, x, side="left")]


def marginal_w1(a, b) -> float:
    """W1 between two 1D marginals, exact: int |F_A - F_B| (Villani 2009, Rem. 2.19).

    Between consecutive breakpoints (faces, particle positions) each CDF is linear (grids) or
    constant (particles), so F_A - F_B is linear there and |.| integrates in closed form.
    """
    x = np.unique(np.concatenate([a[1], b[1]]))
    ra, la = _cdf(a, x)
    rb, lb = _cdf(b, x)
    g0, g1, h = (ra - rb)[:-1], (la - lb)[1:], np.diff(x)
    s0, s1 = np.abs(g0), np.abs(g1)
    same = g0 * g1 >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(s0 + s1 > 0, (g0 * g0 + g1 * g1) / (2.0 * (s0 + s1)), 0.0)
    return float(np.sum(h * np.where(same, 0.5 * (s0 + s1), crossing)))


def snapshot_weights(run: Run, snap) -> np.ndarray:
    """The weights of the snapshot's particles: its own (`Snapshot.weights`, which change in a
    birth-death or Fisher-Rao run), else the run's fixed ones (a snapshot made without them)."""
    return np.asarray(run.weights if snap.weights is None else snap.weights, dtype=float)


def transport_measure(run: Run, snap, grid) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, D) and masses (n,) summing to 1 that stand for the density in W."""
    if grid is None:
        points, masses = snap.positions, snapshot_weights(run, snap)
    else:
        masses = (regrid(snap.density, faces(run), grid) * cell_volumes(grid)).ravel()
        points = grid_points(grid)
        keep = masses > NEGLIGIBLE * masses.max()
        points, masses = points[keep], masses[keep]
    total = masses.sum()
    if not total > 0:
        raise InputError(f"{run.path}: snapshot at t = {snap.time:.6g} has no mass")
    return points, masses / total


def projected_costs(pa, ma, pb, mb) -> tuple[np.ndarray, np.ndarray]:
    """W1 and W2^2 between the columns of pa (n_A, k) and pb (n_B, k), weights ma, mb summing to 1.

    W_p^p = int_0^1 |Q_A(t) - Q_B(t)|^p dt with the quantile functions Q (Villani 2009, Rem. 2.19);
    both p from one sort per column (POT's `wasserstein_1d` returns W_p^p, one p per sort). The
    levels of both CDFs merge in one stable sort of two sorted runs, A first on ties, so the
    count of each run's levels before a merged level is the index its quantile takes.
    """
    pa, pb = np.ascontiguousarray(pa.T), np.ascontiguousarray(pb.T)
    na, nb = pa.shape[1], pb.shape[1]
    w1, w2sq = np.empty(len(pa)), np.empty(len(pa))
    for c in range(len(pa)):
        oa, ob = np.argsort(pa[c]), np.argsort(pb[c])
        ca, cb = np.cumsum(ma[oa]), np.cumsum(mb[ob])
        ca[-1] = cb[-1] = 1.0
        levels = np.concatenate([ca, cb])
        order = np.argsort(levels, kind="stable")
        is_a = order < na
        a_before = np.cumsum(is_a) - is_a
        b_before = np.arange(na + nb) - a_before
        dq = np.diff(levels[order], prepend=0.0)
        d = pa[c][oa[np.minimum(a_before, na - 1)]] - pb[c][ob[np.minimum(b_before, nb - 1)]]
        w1[c], w2sq[c] = dq @ np.abs(d), dq @ (d * d)
    return w1, w2sq


def sliced_directions(ndim: int, count: int = PROJECTIONS) -> np.ndarray:
    """(ndim, n) unit directions: ceil(count / ndim) random orthonormal bases, side by side (fixed seed)."""
    rng = np.random.default_rng(0)
    bases = [np.linalg.qr(rng.standard_normal((ndim, ndim)))[0] for _ in range(-(-count // ndim))]
    return np.concatenate(bases, axis=1)


def _sliced(xa, ma, xb, mb) -> tuple[float, float]:
    """Lower bounds of (W1, W2) from 1D projections, both exact for a translation.

    For an orthonormal basis theta_1..theta_D and any plan pi, sum_i W2^2(theta_i# rho_A,
    theta_i# rho_B) <= int sum_i (theta_i.(u - v))^2 dpi = int |u - v|^2 dpi, so the mean over
    bases of that sum is at most W2^2 (the sliced distance of Bonneel et al. 2015, eq. 4, times
    D, which makes it exact for a shift s). W1 is at least every projected W1 and |mean_A -
    mean_B| (Kantorovich duality with the 1-Lipschitz u.e), exact for a shift; W2 >= W1.
    """
    D = xa.shape[1]
    directions = sliced_directions(D)
    w1_proj, w2sq_proj = [], []
    for s in range(0, directions.shape[1], 16 * D):   # whole bases per chunk
        d = directions[:, s:s + 16 * D]
        w1, w2sq = projected_costs(xa @ d, ma, xb @ d, mb)
        w1_proj.append(w1)
        w2sq_proj.append(w2sq)
    w1_proj, w2sq_proj = np.concatenate(w1_proj), np.concatenate(w2sq_proj)
    shift = float(np.linalg.norm(ma @ xa - mb @ xb))
    w1 = max(shift, float(w1_proj.max()))
    w2 = math.sqrt(max(0.0, D * float(w2sq_proj.mean())))
    return w1, max(w2, w1)


def wasserstein(xa, ma, xb, mb, method: str) -> tuple[float, float]:
    """(W1, W2) between the weighted point sets (xa, ma) and (xb, mb) by `method`."""
    if method == "quantile":
        return (float(ot.wasserstein_1d(xa[:, 0], xb[:, 0], ma, mb, p=1)),
                float(np.sqrt(ot.wasserstein_1d(xa[:, 0], xb[:, 0], ma, mb, p=2))))
    if method == "sliced":
        return _sliced(xa, ma, xb, mb)
    # from differences, not |x|^2 + |y|^2 - 2 x.y: equal points must cost exactly 0
    squared = np.sum((xa[:, None, :] - xb[None, :, :]) ** 2, axis=-1)
    w1 = ot.emd2(ma, mb, np.sqrt(squared), numItermax=10**7)
    w2 = ot.emd2(ma, mb, squared, numItermax=10**7)
    return float(w1), float(np.sqrt(max(w2, 0.0)))


def distances(run_a: Run, sa, run_b: Run, sb, transport: Transport, common, volumes) -> dict:
    """W1, W2, L1, L2 and every axis's marginal L1 and W1 between snapshots sa of run_a and sb
    of run_b (two unlayered runs, or one layer of each through `layers.layer_view`)."""
    xa, ma = transport_measure(run_a, sa, transport.grids[0])
    xb, mb = transport_measure(run_b, sb, transport.grids[1])
    w1, w2 = wasserstein(xa, ma, xb, mb, transport.method)
    ra, rb = regrid(sa.density, faces(run_a), common), regrid(sb.density, faces(run_b), common)
    diff = ra - rb
    row = {"W1": w1, "W2": w2,
           "L1": float(np.sum(np.abs(diff) * volumes)), "L2": float(np.sqrt(np.sum(diff * diff * volumes)))}
    for k, name in enumerate(run_a.axes):
        dm = marginal(diff, common, (k,))
        row[f"marginal_L1_{name}"] = float(np.sum(np.abs(dm) * np.diff(common[k])))
    for k, name in enumerate(run_a.axes):
        row[f"marginal_W1_{name}"] = marginal_w1(marginal_measure(run_a, sa, k), marginal_measure(run_b, sb, k))
    return row


def overall(per_layer: list[dict]) -> dict:
    """The distances between the joint measures of layered runs from the per-layer ones (module
    text): the root mean square over layers of W2 and L2 (`SQUARED`), the mean of the others."""
    out = {}
    for name in per_layer[0]:
        if name in ("layer", "depth", "W_bound"):
            continue
        v = np.array([row[name] for row in per_layer])
        out[name] = float(np.sqrt(np.mean(v * v))) if name in SQUARED else float(np.mean(v))
    return out


def compare_runs(run_a: Run, run_b: Run, progress=True, bar: bool | None = None) -> Comparison:
    """All distances at every common snapshot time.

    `progress` True: a tqdm bar over the common times on stderr where `bar` says so (None: when
    stderr is a terminal, the convention of `gflow run`), else, after PROGRESS_AFTER seconds, one
    line per finished time on stderr (a log keeps a readable record); a stream: those lines on
    it; None or False: nothing.

    Layered runs: per layer over the parameter axes, and overall (module text)."""
    if tuple(run_a.axes) != tuple(run_b.axes):
        raise InputError(f"{run_b.path}: axes {list(run_b.axes)} differ from {run_a.path}'s {list(run_a.axes)}")
    layered = bool(run_a.layers or run_b.layers)
    if layered:
        check_same_layers(run_a, run_b)
    pairs = common_times(run_a.time, run_b.time)
    if not pairs:
        raise InputError(f"{run_b.path}: no snapshot time in common with {run_a.path}")
    from tqdm import tqdm

    shown = progress is True and (sys.stderr.isatty() if bar is None else bool(bar))
    with tqdm(total=len(pairs), desc="gflow compare", unit="time", leave=False, file=sys.stderr,
              mininterval=0.5, disable=not shown) as times:
        return _compare(run_a, run_b, pairs, layered, None if shown else progress, times)


def _compare(run_a: Run, run_b: Run, pairs, layered: bool, progress, times) -> Comparison:
    """`compare_runs` after its checks: `progress` as there (lines), `times` a bar advanced per time."""
    # a layered run's distances are those of its layers, all on one layer's grid
    view_a, view_b = (layer_view(run_a), layer_view(run_b)) if layered else (run_a, run_b)
    common = run_common_grid(view_a, view_b)       # refused here, before any transport is planned
    transport = plan_transport(view_a, view_b)
    volumes = cell_volumes(common)
    l_grid = f"common grid of {' x '.join(str(len(f) - 1) for f in common)} cells (union box, coarser spacing)"
    if layered:
        transport.description = f"in each layer, {transport.description}"
        l_grid += " of each layer"
    result = Comparison((run_a, run_b), transport, l_grid, layers=run_a.layers)
    start = time.perf_counter()
    for n, (i, j) in enumerate(pairs):
        sa, sb = run_a.snapshot(i), run_b.snapshot(j)
        row = {"time": sa.time, "risk_a": float(run_a.risk[i]), "risk_b": float(run_b.risk[j]),
               "risk_diff": float(run_a.risk[i] - run_b.risk[j])}
        if layered:
            per_layer = [{"layer": l, "depth": float(tau),
                          **distances(view_a, la, view_b, lb, transport, common, volumes),
                          "W_bound": transport.resolution}
                         for l, (tau, la, lb) in enumerate(zip(depths(run_a), layer_snapshots(run_a, sa),
                                                               layer_snapshots(run_b, sb)))]
            row.update(overall(per_layer))
            row["W_bound"] = transport.resolution
            row["layers"] = per_layer
        else:
            row.update(distances(run_a, sa, run_b, sb, transport, common, volumes))
            row["W_bound"] = transport.resolution
        result.rows.append(row)
        times.update()
        elapsed = time.perf_counter() - start
        if progress and elapsed > PROGRESS_AFTER:
            print(f"gflow compare: t = {sa.time:.4g} ({n + 1} of {len(pairs)} times, {elapsed:.0f} s)",
                  file=sys.stderr if progress is True else progress, flush=True)
    return result


# ----------------------------------------------------------------------------- output

def header(c: Comparison) -> list[str]:
    a, b = c.runs
    # text from the files (the solver attribute) reaches a terminal: escaped (`printable`)
    lines = [f"A: {printable(a.path, 4096)}  ({printable(a.solver)}, {grid_label(a)})",
             f"B: {printable(b.path, 4096)}  ({printable(b.solver)}, {grid_label(b)})"]
    if c.layers:
        lines += [f"layers: {c.layers}, at depths {_depth_list(a)}; every distance is per layer over the "
                  f"parameter axes ({', '.join(c.axes)}), none along the depth",
                  "overall: the mean over the layers (W2 and L2: the root mean square), i.e. the distance between "
                  "the joint measures (each layer of mass 1/L) when no mass changes layer"]
    return lines + [f"W1, W2: {c.transport.description}",
                    f"L1, L2: densities regridded conservatively onto the {c.l_grid}",
                    "W1[axis]: W1 of the 1D marginals on that axis, exact (densities on their own cells, or particles)",
                    "L1[axis]: L1 norm of the difference of the 1D marginals on that axis"]


def _depth_list(run: Run) -> str:
    return ", ".join(f"{tau:.4g}" for tau in depths(run))


def _distance_names(c: Comparison) -> tuple[list[str], list[str]]:
    """Row keys and column titles of the distances, in table order."""
    names = ["W1", "W2", *(f"marginal_W1_{a}" for a in c.axes), "L1", "L2", *(f"marginal_L1_{a}" for a in c.axes)]
    titles = ["W1", "W2", *(f"W1[{a}]" for a in c.axes), "L1", "L2", *(f"L1[{a}]" for a in c.axes)]
    return names, titles


def _cell(row: dict, name: str) -> str:
    """One number of the table; W below its bound marked `*` (not resolved by the transport grid)."""
    unresolved = name in ("W1", "W2") and row[name] < row["W_bound"]
    return f"{row[name]:.3e}" + ("*" if unresolved else "")


def _aligned(titles: list[str], cells: list[list[str]]) -> list[str]:
    widths = [max(len(t), *(len(r[k]) for r in cells)) for k, t in enumerate(titles)]
    lines = ["  ".join(t.rjust(w) for t, w in zip(titles, widths))]
    return lines + ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]


def _shown_times(count: int) -> list[int]:
    """Up to LAYER_TIME_COLUMNS row indices, evenly spread, the first and last among them."""
    if count <= LAYER_TIME_COLUMNS:
        return list(range(count))
    return sorted(set(np.linspace(0, count - 1, LAYER_TIME_COLUMNS).round().astype(int).tolist()))


def _layer_tables(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """A layered comparison's per-layer part: W1 per layer and time, and every distance per
    layer at the last common time; and the cells shown."""
    shown = _shown_times(len(c.rows))
    first = c.rows[0]["layers"]
    ids = [[str(layer["layer"]), f"{layer['depth']:.4g}"] for layer in first]
    w1 = [[*ids[l], *(_cell(c.rows[k]["layers"][l], "W1") for k in shown)] for l in range(len(first))]
    title = "per layer: W1 (rows: layers, columns: times"
    title += ")" if len(shown) == len(c.rows) else f"; {len(shown)} of {len(c.rows)} times, JSON and CSV hold all)"
    lines = ["", title, *_aligned(["layer", "depth", *(f"t = {c.rows[k]['time']:.4g}" for k in shown)], w1)]
    names, titles = _distance_names(c)
    last = c.rows[-1]
    every = [[*ids[l], *(_cell(layer, n) for n in names)] for l, layer in enumerate(last["layers"])]
    lines += ["", f"per layer at t = {last['time']:.4g} (the last common time)",
              *_aligned(["layer", "depth", *titles], every)]
    return lines, w1 + every


def table(c: Comparison) -> str:
    """The aligned terminal table, with the header that says what each number is; for layered
    runs it holds the overall distances, then the per-layer tables (`_layer_tables`)."""
    distance_names, distance_titles = _distance_names(c)
    names = ["time", "risk_a", "risk_b", "risk_diff", *distance_names]
    titles = ["t", "risk A", "risk B", "A - B", *distance_titles]
    cells = [[f"{row['time']:.4g}", *(_cell(row, n) for n in names[1:])] for row in c.rows]
    lines = (["overall"] if c.layers else []) + _aligned(titles, cells)
    if c.layers:
        more, shown = _layer_tables(c)
        lines, cells = lines + more, cells + shown
    notes = []
    if any(r[-1] == "*" for row in cells for r in row):
        notes = [f"*: below the stated bound {c.transport.resolution:.3g}: the transport grid does not resolve it"
                 " (W1[axis] is exact and bounds W1 from below)"]
    return "\n".join([*header(c), "", *lines, *notes])


def to_json(c: Comparison) -> dict:
    a, b = c.runs
    out = {"a": {"path": str(a.path), "solver": a.solver, "representation": grid_label(a)},
           "b": {"path": str(b.path), "solver": b.solver, "representation": grid_label(b)},
           "axes": list(c.axes),
           "methods": {"W": c.transport.method, "W_description": c.transport.description,
                       "W_resolution": c.transport.resolution,
                       "L": c.l_grid, "marginals": "L1 of marginal differences; W1 of marginals, exact between the runs'"
                                        " own densities or particles"},
           "rows": c.rows}
    if c.layers:
        out["layers"] = {"count": c.layers, "depths": depths(a).tolist(),
                         "per_layer": "each row's 'layers': one dict per layer, its distances over the parameter axes",
                         "overall": "each row's distances: the mean over the layers, W2 and L2 the root mean square"}
    return out


def to_csv(c: Comparison) -> str:
    """One line per common time; for layered runs one per time and layer after each time's
    overall line (`layer` "overall"), the risks on the overall lines only."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if not c.layers:
        names = list(c.rows[0])
        writer.writerow([*names, "W_method"])
        for row in c.rows:
            writer.writerow([repr(row[n]) for n in names] + [c.transport.method])
        return out.getvalue()
    names = [n for n in c.rows[0] if n != "layers"]
    writer.writerow([names[0], "layer", "depth", *names[1:], "W_method"])
    for row in c.rows:
        writer.writerow([repr(row[names[0]]), "overall", "", *(repr(row[n]) for n in names[1:]), c.transport.method])
        for layer in row["layers"]:
            writer.writerow([repr(row[names[0]]), layer["layer"], repr(layer["depth"]),
                             *(repr(layer[n]) if n in layer else "" for n in names[1:]), c.transport.method])
    return out.getvalue()
