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
  particles (positions, weights) where sizes allow. L1, L2 and marginals use densities, so a particle run
  enters them through its binned `density` dataset.
- 1D: W_p exactly, through quantile functions, for any size.
- D > 1: exact optimal transport (POT's network simplex, `ot.emd2`) when the two supports
  are small enough (n_A n_B <= PAIR_MAX): two grid runs on their common grid (so equal
  densities are exactly 0 apart); a particle run as its particles beside the other run;
  failing that, both runs as densities (a particle run's binned one) coarsened conservatively,
  halving the cells, down to MIN_CELLS on their longest axis if that is what it takes. Beyond
  that, the sliced Wasserstein distance (Bonneel et al., J. Math. Imaging Vis. 51, 2015, eq. 4),
  a lower bound of W_p, over PROJECTIONS fixed random directions.
- cell masses sit at cell centres; moving each cell's mass there moves W by at most half the
  cell diagonal per run, and the output states this bound.
- marginal W1 (JSON and CSV) is exact on each axis from the same representation as W.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
import ot

from gflow.errors import InputError
from gflow.snapshots import Run
from gflow.postprocess.regrid import cell_volumes, coarsen_faces, common_grid, regrid
from gflow.postprocess.runs import faces, grid_label, grid_points, marginal

#: largest n_A * n_B solved exactly (~0.1-0.5 s per distance)
PAIR_MAX = 1 << 20
#: exact transport coarsens a grid no further than this many cells on its longest axis
MIN_CELLS = 16
#: sliced transport coarsens grids to at most this many cells
SLICED_POINTS = 1 << 16
PROJECTIONS = 128
#: cells lighter than this fraction of the heaviest carry no transport (W changes by < 1e-12)
NEGLIGIBLE = 1e-12


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

    @property
    def axes(self) -> tuple[str, ...]:
        return self.runs[0].axes


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
        shared = _coarsened(runs, [common_grid(faces(run_a), faces(run_b))] * 2, PAIR_MAX, MIN_CELLS)[0]
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
            "sliced": f"sliced Wasserstein, {PROJECTIONS} random directions (a lower bound of W_p)"}[method]
    sides = " and ".join(_describe(r, g, n) for r, g, n in zip(runs, grids, "AB"))
    # a cell's mass moved to its centre travels at most half the cell diagonal (triangle inequality)
    resolution = sum(0.5 * float(np.linalg.norm([np.diff(f).max() for f in g])) for g in grids if g is not None)
    text = f"{what} between {sides}"
    if resolution:
        text += f"; cell centres stand for the cells, which moves W by at most {resolution:.3g}"
    return Transport(method, grids, text, resolution)


def transport_measure(run: Run, snap, grid) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, D) and masses (n,) summing to 1 that stand for the density in W."""
    if grid is None:
        points, masses = snap.positions, np.asarray(run.weights, dtype=float)
    else:
        masses = (regrid(snap.density, faces(run), grid) * cell_volumes(grid)).ravel()
        points = grid_points(grid)
        keep = masses > NEGLIGIBLE * masses.max()
        points, masses = points[keep], masses[keep]
    total = masses.sum()
    if not total > 0:
        raise InputError(f"{run.path}: snapshot at t = {snap.time:.6g} has no mass")
    return points, masses / total


def _sliced(xa, ma, xb, mb, p: int) -> float:
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((xa.shape[1], PROJECTIONS))
    directions /= np.linalg.norm(directions, axis=0)
    total = 0.0
    for s in range(0, PROJECTIONS, 16):
        d = directions[:, s:s + 16]
        total += float(np.sum(ot.wasserstein_1d(xa @ d, xb @ d, ma, mb, p=p) ** p))
    return (total / PROJECTIONS) ** (1.0 / p)


def wasserstein(xa, ma, xb, mb, method: str) -> tuple[float, float]:
    """(W1, W2) between the weighted point sets (xa, ma) and (xb, mb) by `method`."""
    if method == "quantile":
        return (float(ot.wasserstein_1d(xa[:, 0], xb[:, 0], ma, mb, p=1)),
                float(np.sqrt(ot.wasserstein_1d(xa[:, 0], xb[:, 0], ma, mb, p=2))))
    if method == "sliced":
        return _sliced(xa, ma, xb, mb, 1), _sliced(xa, ma, xb, mb, 2)
    # from differences, not |x|^2 + |y|^2 - 2 x.y: equal points must cost exactly 0
    squared = np.sum((xa[:, None, :] - xb[None, :, :]) ** 2, axis=-1)
    w1 = ot.emd2(ma, mb, np.sqrt(squared), numItermax=10**7)
    w2 = ot.emd2(ma, mb, squared, numItermax=10**7)
    return float(w1), float(np.sqrt(max(w2, 0.0)))


def compare_runs(run_a: Run, run_b: Run) -> Comparison:
    """All distances at every common snapshot time."""
    if tuple(run_a.axes) != tuple(run_b.axes):
        raise InputError(f"{run_b.path}: axes {list(run_b.axes)} differ from {run_a.path}'s {list(run_a.axes)}")
    pairs = common_times(run_a.time, run_b.time)
    if not pairs:
        raise InputError(f"{run_b.path}: no snapshot time in common with {run_a.path}")
    transport = plan_transport(run_a, run_b)
    fa, fb = faces(run_a), faces(run_b)
    common = common_grid(fa, fb)
    volumes = cell_volumes(common)
    l_grid = f"common grid of {' x '.join(str(len(f) - 1) for f in common)} cells (union box, coarser spacing)"
    result = Comparison((run_a, run_b), transport, l_grid)
    for i, j in pairs:
        sa, sb = run_a.snapshot(i), run_b.snapshot(j)
        xa, ma = transport_measure(run_a, sa, transport.grids[0])
        xb, mb = transport_measure(run_b, sb, transport.grids[1])
        w1, w2 = wasserstein(xa, ma, xb, mb, transport.method)
        ra, rb = regrid(sa.density, fa, common), regrid(sb.density, fb, common)
        diff = ra - rb
        row = {"time": sa.time, "risk_a": float(run_a.risk[i]), "risk_b": float(run_b.risk[j]),
               "risk_diff": float(run_a.risk[i] - run_b.risk[j]), "W1": w1, "W2": w2,
               "L1": float(np.sum(np.abs(diff) * volumes)), "L2": float(np.sqrt(np.sum(diff * diff * volumes)))}
        for k, name in enumerate(run_a.axes):
            dm = marginal(diff, common, (k,))
            row[f"marginal_L1_{name}"] = float(np.sum(np.abs(dm) * np.diff(common[k])))
        for k, name in enumerate(run_a.axes):
            row[f"marginal_W1_{name}"] = float(ot.wasserstein_1d(xa[:, k], xb[:, k], ma, mb, p=1))
        result.rows.append(row)
    return result


# ----------------------------------------------------------------------------- output

def header(c: Comparison) -> list[str]:
    a, b = c.runs
    return [f"A: {a.path}  ({a.solver}, {grid_label(a)})",
            f"B: {b.path}  ({b.solver}, {grid_label(b)})",
            f"W1, W2: {c.transport.description}",
            f"L1, L2: densities regridded conservatively onto the {c.l_grid}",
            f"L1[axis]: L1 norm of the difference of the 1D marginals on that axis"]


def table(c: Comparison) -> str:
    """The aligned terminal table, with the header that says what each number is."""
    names = ["time", "risk_a", "risk_b", "risk_diff", "W1", "W2", "L1", "L2",
             *(f"marginal_L1_{a}" for a in c.axes)]
    titles = ["t", "risk A", "risk B", "A - B", "W1", "W2", "L1", "L2", *(f"L1[{a}]" for a in c.axes)]
    cells = [[f"{row['time']:.4g}", *(f"{row[n]:.3e}" for n in names[1:])] for row in c.rows]
    widths = [max(len(t), *(len(r[k]) for r in cells)) for k, t in enumerate(titles)]
    lines = ["  ".join(t.rjust(w) for t, w in zip(titles, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join([*header(c), "", *lines])


def to_json(c: Comparison) -> dict:
    a, b = c.runs
    return {"a": {"path": str(a.path), "solver": a.solver, "representation": grid_label(a)},
            "b": {"path": str(b.path), "solver": b.solver, "representation": grid_label(b)},
            "axes": list(c.axes),
            "methods": {"W": c.transport.method, "W_description": c.transport.description,
                        "W_resolution": c.transport.resolution,
                        "L": c.l_grid, "marginals": "L1 of marginal differences; W1 of marginals, exact"},
            "rows": c.rows}


def to_csv(c: Comparison) -> str:
    out = io.StringIO()
    names = list(c.rows[0])
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*names, "W_method"])
    for row in c.rows:
        writer.writerow([repr(row[n]) for n in names] + [c.transport.method])
    return out.getvalue()
