"""Aggregation steady states: the semicircle in 1D and the uniform disk in 2D.

Runs cases/semicircle.toml and cases/aggregation_disk.toml (fv). Both have the kernel
W(r) = r^2/2 - log r (attraction plus Newtonian repulsion) and no external potential; the
steady states are the semicircle (1/pi) sqrt(2 - (x - c)^2) in 1D and the uniform density 1/pi
on the unit disk around c in 2D, c the centre of mass, which the flow conserves (Carrillo,
Chertock, Huang, Commun. Comput. Phys. 17, 2015, section 4). Prints the L1 distance between the
final density and the exact cell averages of the steady state, centred at the run's own centre
of mass.

    python examples/aggregation.py -o aggregation.png [--runs DIR] [--set KEY=VALUE]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.patches import Circle

from common import CASES, figure, parser, run, write
from gflow.snapshots import open_run
from gflow.postprocess.plot import density_panel
from gflow.postprocess.regrid import cell_volumes
from gflow.postprocess.runs import faces

#: sub-cells per axis for the exact cell averages (the disk's edge cuts cells)
SUBCELLS = 16


def steady_state(name: str, u: list, centre: np.ndarray) -> np.ndarray:
    """The exact steady state at the points u (one array per axis)."""
    r2 = sum((ui - ci) ** 2 for ui, ci in zip(u, centre))
    if name == "semicircle":
        return np.sqrt(np.clip(2.0 - r2, 0.0, None)) / np.pi
    return (r2 < 1.0) / np.pi


def cell_averages(name: str, cell_faces, centre) -> np.ndarray:
    """Cell averages of the steady state, by the midpoint rule on SUBCELLS^D sub-cells per cell."""
    offsets = (np.arange(SUBCELLS) + 0.5) / SUBCELLS
    axes = [(f[:-1, None] + offsets * np.diff(f)[:, None]).ravel() for f in cell_faces]
    fine = steady_state(name, np.meshgrid(*axes, indexing="ij"), centre)
    shape = [n for f in cell_faces for n in (len(f) - 1, SUBCELLS)]
    return fine.reshape(shape).mean(axis=tuple(range(1, 2 * len(cell_faces), 2)))


def centre_of_mass(r) -> np.ndarray:
    f = faces(r)
    masses = r.density(0) * cell_volumes(f)
    mesh = np.meshgrid(*[0.5 * (fk[1:] + fk[:-1]) for fk in f], indexing="ij")
    return np.array([np.sum(masses * m) for m in mesh]) / masses.sum()


def study(out: Path, overrides=(), cases=("semicircle", "aggregation_disk")) -> dict:
    """Per case: {"run", "exact" (cell averages), "L1" (final), "L1_in_time", "centre"}."""
    result = {}
    for name in cases:
        r = open_run(run(CASES / f"{name}.toml", out / name, overrides))
        f, volumes = faces(r), cell_volumes(faces(r))
        centre = centre_of_mass(r)
        exact = cell_averages(name, f, centre)
        l1 = np.array([np.sum(np.abs(r.density(i) - exact) * volumes) for i in range(len(r.time))])
        result[name] = {"run": r, "exact": exact, "L1": float(l1[-1]), "L1_in_time": l1, "centre": centre}
    return result


def report(result: dict) -> None:
    print("\nL1 distance of the final density from the exact steady state:")
    for name, r in result.items():
        cells = " x ".join(str(len(c)) for c in r["run"].coordinates)
        print(f"  {name}: {r['L1']:.3g} at t = {r['run'].time[-1]:g} on {cells} cells "
              f"(from {r['L1_in_time'][0]:.3g} at t = 0), centre of mass {np.round(r['centre'], 6).tolist()}")


def draw(result: dict, path) -> None:
    fig = figure(13.0, 3.4)
    axes = fig.subplots(1, 4)
    semi, disk = result.get("semicircle"), result.get("aggregation_disk")
    if semi:
        r, f = semi["run"], faces(semi["run"])
        x = 0.5 * (f[0][1:] + f[0][:-1])
        axes[0].plot(x, r.density(0), color="0.6", label="t = 0")
        axes[0].plot(x, r.density(len(r.time) - 1), color="C0", lw=2, label=f"fv, t = {r.time[-1]:g}")
        axes[0].plot(x, semi["exact"], "k:", lw=1.5, label="(1/pi) sqrt(2 - (x - c)^2)")
        axes[0].set(xlabel="x", ylabel="density", title=f"1D: semicircle, L1 = {semi['L1']:.2g}")
        axes[0].legend(fontsize="small")
    if disk:
        r = disk["run"]
        density_panel(axes[1], r, r.snapshot(len(r.time) - 1))
        centre = disk["centre"]
        axes[1].add_patch(Circle(centre, 1.0, fill=False, ec="white", ls="--", lw=1))
        f = faces(r)
        mesh = np.meshgrid(*[0.5 * (fk[1:] + fk[:-1]) for fk in f], indexing="ij")
        radius = np.sqrt((mesh[0] - centre[0]) ** 2 + (mesh[1] - centre[1]) ** 2)
        axes[2].plot(radius.ravel(), r.density(len(r.time) - 1).ravel(), ".", ms=2, color="C0", label="fv cells")
        rs = np.linspace(0, radius.max(), 400)
        axes[2].plot(rs, (rs < 1) / np.pi, "k:", lw=1.5, label="1/pi on |u - c| < 1")
        axes[2].set(xlabel="|u - c|", ylabel="density", title=f"2D: uniform disk, L1 = {disk['L1']:.2g}")
        axes[2].legend(fontsize="small")
    for k, (name, r) in enumerate(result.items()):
        axes[3].plot(r["run"].time, r["L1_in_time"], marker=".", color=f"C{k}", label=name)
    axes[3].set(yscale="log", xlabel="t", ylabel="L1 to the steady state", title="convergence")
    axes[3].legend(fontsize="small")
    write(fig, path)


def main(argv=None) -> int:
    args = parser(__doc__, "aggregation").parse_args(argv)
    result = study(Path(args.runs), args.set)
    report(result)
    draw(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
