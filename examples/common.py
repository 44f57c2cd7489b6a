"""What the literature examples share: running `gflow` commands, a case's sweep, fits, figures.

Every run of an example is an ordinary `gflow run` command, executed in this process by the
command line's own `gflow.app.cli.main` and echoed as `$ gflow ...`, so the printed lines are the
exact commands that made the files. A study over several values (particle counts, seeds, batch
sizes) runs the case's `[sweep]` table the way `gflow sweep` would, one run after another: each
run goes to `OUT/<name>/<kind>.h5` with the name `gflow sweep` gives it (docs/sweeps.md), so
`gflow sweep CASE --solver particle -o OUT` writes the same files. Cases are read and runs
opened with the Python API (`gflow.load_case`, `gflow.open_run`, docs/api.md).
"""
from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gflow import load_case, open_run
from gflow.app import cli
from gflow.snapshots import Run
from gflow.app.sweep import expand, parse_vary, sweep_axes
from gflow.postprocess.plot import save
from gflow.postprocess.runs import faces, marginal
from gflow.postprocess.sweep_plot import fit_slope

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
#: gallery pictures are small: this resolution keeps each PNG under ~150 KB
DPI = 80


def _shown(arg) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    text = str(arg)
    if isinstance(arg, Path):
        try:
            text = os.path.relpath(arg)
        except ValueError:
            pass
        text = text if not text.startswith("..") else str(arg)
    return text


def gflow(*args, check: bool = True) -> int:
    """Run one `gflow` command line in this process, echoed first; its exit status.

    With `check`, a non-zero status stops the example (exit 1 is a failed run, 2 bad input).
    """
    argv = [_shown(a) for a in args]
    print("$ gflow " + shlex.join(argv), flush=True)
    code = cli.main(argv)
    if check and code != 0:
        raise SystemExit(f"gflow {argv[0]} stopped with exit status {code}")
    return code


def sets(overrides) -> list[str]:
    """`--set KEY=VALUE` arguments for each override."""
    return [arg for item in overrides for arg in ("--set", item)]


def run(case: Path, out: Path, overrides=(), solver: str | None = None, check: bool = True) -> Path:
    """`gflow run CASE [--solver KIND] --set ... -o OUT --force`; the path of its (first) file."""
    chosen = ["--solver", solver] if solver else []
    gflow("run", case, *chosen, *sets(overrides), "-o", out, "--force", check=check)
    kind = solver.split(",")[0] if solver else load_case(case, list(overrides)).solvers[0].kind
    return out / f"{kind}.h5"


@dataclass
class StudyRun:
    """One run of a study: its varied values, its file, and whether `gflow run` finished it."""

    values: dict
    path: Path
    finished: bool

    def read(self) -> Run:
        return open_run(self.path)


def sweep(case: Path, out: Path, overrides=(), vary=(), solver: str = "particle") -> list[StudyRun]:
    """Run every combination of the case's `[sweep]` table (with `--vary`-style replacements).

    A run that stops (a divergence: exit status 1) is kept with the snapshots it wrote.
    """
    axes = sweep_axes(load_case(case, list(overrides)), parse_vary(vary))
    runs = []
    for combo in expand(axes):
        code = gflow("run", case, "--solver", solver, *sets([*overrides, *combo.overrides]),
                     "-o", out / combo.name, "--force", check=False)
        if code == 2:
            raise SystemExit(f"{case}: bad input for {combo.name}")
        runs.append(StudyRun(dict(combo.assignments), out / combo.name / f"{solver}.h5", code == 0))
    return runs


def group(runs: list[StudyRun], key: str) -> dict:
    """Runs by the value of one varied key, in sweep order."""
    groups: dict = {}
    for r in runs:
        groups.setdefault(r.values[key], []).append(r)
    return groups


def slope(x, y) -> float:
    """Least-squares slope of log y against log x (postprocess.sweep_plot.fit_slope)."""
    fit = fit_slope(np.asarray(x, float), np.asarray(y, float))
    return float("nan") if fit is None else fit[0]


def marginal_w1(run_a: Run, i: int, run_b: Run, j: int, axis: int) -> float:
    """W1 between the 1D marginals on `axis` of two densities on the same grid.

    In 1D, W1 = int |F_A - F_B| du for the cumulative distributions. Both densities are
    piecewise constant on the same cells, so F_A - F_B is piecewise linear and the trapezoid
    rule is exact in every cell where it keeps its sign.
    """
    f = faces(run_a)
    h = np.diff(f[axis])
    diff = (marginal(run_a.density(i), f, (axis,)) - marginal(run_b.density(j), f, (axis,))) * h
    cdf = np.concatenate([[0.0], np.cumsum(diff)])
    return float(np.sum(0.5 * (np.abs(cdf[1:]) + np.abs(cdf[:-1])) * h))


def figure(width: float, height: float) -> Figure:
    """A gallery figure: pyplot-free (Agg canvas), constrained layout, gallery resolution."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write(fig: Figure, path) -> None:
    """Save the figure and say where it went."""
    print(f"wrote {save(fig, path)}")


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """The examples' common options: picture, run directory, overrides for every run."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("-o", "--output", default=f"{name}.png", help="the picture (default: %(default)s)")
    p.add_argument("--runs", default=f"runs/examples/{name}", help="where the runs go (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a case key in every run, as for gflow run (e.g. grid.cells=[48,32])")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="replace the values of a key of the case's [sweep] table")
    return p


def run_study(doc: str, name: str, study, report, draw, argv=None) -> int:
    """An example's command line: run the study, print its headline, draw its picture."""
    args = parser(doc, name).parse_args(argv)
    result = study(Path(args.runs), args.set, args.vary)
    report(result)
    draw(result, args.output)
    return 0
