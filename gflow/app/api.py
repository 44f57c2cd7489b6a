"""The Python API: what the `gflow` command line does, as functions (docs/api.md).

Each function calls the code behind the matching subcommand, so a script and the command line
give the same files and numbers::

    gflow.load_case(path, overrides, solvers)    # gflow run CASE --set KEY=VALUE --solver KINDS
    gflow.run(case, output=...)                  # gflow run ... -o OUTPUT
    gflow.open_run(path)                         # what gflow info, compare and plot read
    gflow.compare(a, b)                          # gflow compare A B
    gflow.plot(run, path), gflow.movie(run, path)  # gflow plot RUN -o PATH --movie PATH
    gflow.check(path)                            # gflow check RUN

Bad input raises `gflow.errors.InputError` (one line naming the file and the key), a run
that had to stop `gflow.errors.RunError`, as the command line's exit statuses 2 and 1.
Solvers, matplotlib and the comparison code are imported on first use only.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from gflow.case import load_case as _load_case
from gflow.case import Case
from gflow.errors import InputError
from gflow.snapshots import Run, open_run

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from gflow.postprocess.compare import Comparison

__all__ = ["load_case", "run", "open_run", "compare", "plot", "movie", "check"]


def _kinds(solvers: str | Iterable[str] | None) -> list[str] | None:
    """Solver kinds as `--solver` takes them: a list, or one comma-separated string."""
    if solvers is None:
        return None
    if isinstance(solvers, str):
        solvers = solvers.split(",")
    return [kind.strip() for kind in solvers]


def load_case(path: str | Path, overrides: str | Iterable[str] = (), solvers: str | Iterable[str] | None = None
              ) -> Case:
    """Read and check a case file, as `gflow run` does before any work.

    Parameters
    ----------
    path : str or Path
        The case file (TOML), e.g. ``"cases/quickstart.toml"``.
    overrides : iterable of str, optional
        ``"KEY=VALUE"`` strings exactly as ``--set`` takes them: a dotted key and a TOML value,
        e.g. ``["grid.cells=[48,32]", "time.end=1"]``. A single string is one override.
    solvers : iterable of str, or str, optional
        Keep only these solver kinds, in this order (``--solver``): each takes its table from
        the case, or the kind's defaults. ``"fv,particle"`` is the same as ``["fv", "particle"]``.
        By default every solver the case lists.

    Returns
    -------
    gflow.case.Case
        The checked case (`name`, `solvers`, `cells`, `end`, `snapshots`, `output_dir`, ...).

    Raises
    ------
    gflow.errors.InputError
        An unreadable file, a bad key or value (the message names the file and the key), a bad
        override or an unknown solver kind.
    """
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    return _load_case(path, items, _kinds(solvers))


def _select(case: Case, kinds: list[str]) -> Case:
    """`case` with only the solvers of `kinds` (in that order), each as the case gives it."""
    chosen = []
    for kind in kinds:
        specs = [spec for spec in case.solvers if spec.kind == kind]
        if not specs:
            listed = ", ".join(spec.kind for spec in case.solvers)
            raise InputError(f"{case.source}: solver {kind!r} is not in this case (it has: {listed}); "
                             f"give solvers to load_case to add a kind with its defaults")
        chosen.extend(specs)
    return dataclasses.replace(case, solvers=tuple(chosen))


def _warn(text: str) -> None:
    warnings.warn(f"gflow: {text}", UserWarning, stacklevel=2)


def run(case: Case | str | Path, solvers: str | Iterable[str] | None = None, output: str | Path | None = None,
        *, force: bool = False, resume: bool = False, progress: bool = False,
        echo: Callable[[str], object] | None = None) -> list[Run]:
    """Run a case with each of its solvers, writing ``OUTPUT/<kind>.h5`` per solver (`gflow run`).

    Parameters
    ----------
    case : Case, str or Path
        A case from `load_case`, or the path of a case file (read with no overrides).
    solvers : iterable of str, or str, optional
        Run only these kinds, in this order. With a path they are chosen as by ``--solver``
        (kinds the file does not list run with their defaults); with a `Case` they must be
        among its solvers (load the case with ``solvers=`` to add one).
    output : str or Path, optional
        The output directory; by default the case's ``[output].dir``.
    force : bool, default False
        Overwrite runs already in `output` (otherwise they are refused with an `InputError`).
    resume : bool, default False
        Continue stopped runs from their last snapshot; complete ones are kept as they are.
    progress : bool, default False
        Show a progress bar on stderr.
    echo : callable, optional
        Receives the one-line summary of each solver (``print`` shows them as `gflow run`
        does); by default nothing is printed. Warnings of the run loop (mass at the box edge)
        are Python warnings (`UserWarning`).

    Returns
    -------
    list of gflow.snapshots.Run
        The written runs, opened, in solver order. Unlike `gflow run`, no compare report is
        written for several solvers: `compare` and `plot` make its parts.

    Raises
    ------
    gflow.errors.InputError
        Bad case or options, or a run already in `output` without `force` or `resume`.
    gflow.errors.RunError
        A run that had to stop (blow-up); the snapshots written before stay in its file. The
        other solvers of the case still run; the error's attribute `finished` lists those that
        finished (`gflow.app.execute.SolverRun`).
    """
    from gflow.app.execute import run_case

    kinds = _kinds(solvers)
    if not isinstance(case, Case):
        case = load_case(case, solvers=kinds)
    elif kinds is not None:
        case = _select(case, kinds)
    out_dir = Path(output) if output is not None else case.output_dir
    results = run_case(case, out_dir, force=force, resume=resume, progress=progress,
                       echo=echo if echo is not None else (lambda line: None), warn=_warn)
    return [open_run(result.path) for result in results]


def _as_run(run_or_path: Run | str | Path) -> Run:
    """An opened run holding at least one snapshot (what compare, plot and movie need)."""
    run = run_or_path if isinstance(run_or_path, Run) else open_run(run_or_path)
    return run.require_snapshots()


def compare(a: Run | str | Path, b: Run | str | Path) -> Comparison:
    """Distances between two runs at their common snapshot times (`gflow compare A B`).

    Parameters
    ----------
    a, b : Run, str or Path
        The two runs, opened or as snapshot file paths; they must have the same axes.

    Returns
    -------
    gflow.postprocess.compare.Comparison
        `rows`: one dict per common time with ``time``, ``risk_a``, ``risk_b``, ``risk_diff``,
        ``W1``, ``W2``, ``L1``, ``L2`` and per axis ``marginal_L1_<axis>``, ``marginal_W1_<axis>``;
        `transport` says how W was computed. ``gflow.postprocess.compare.table(c)`` is the
        command line's table, ``to_json(c)`` and ``to_csv(c)`` its ``--json`` and ``--csv``.

    Raises
    ------
    gflow.errors.InputError
        An unreadable run, different axes, or no snapshot time in common.
    """
    from gflow.postprocess.compare import compare_runs

    return compare_runs(_as_run(a), _as_run(b))


def plot(run: Run | str | Path, path: str | Path | None = None, columns: int = 4, dpi: float = 100) -> Figure:
    """The figure of `gflow plot`: densities at several times, f(x) against the target, risk, energy.

    Parameters
    ----------
    run : Run, str or Path
        A run, or a snapshot file's path; a ``sweep.csv`` path gives the sweep's figure (error
        against resolution and wall time) instead.
    path : str or Path, optional
        Save the figure there (its suffix picks the type: .png, .pdf, .svg, ...). By default
        it is only returned.
    columns : int, default 4
        Snapshot times shown.
    dpi : float, default 100
        Resolution.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (on the Agg canvas: no pyplot, no display needed; a notebook shows it).

    Raises
    ------
    gflow.errors.InputError
        An unreadable run, `columns` below 1, an unknown image type or an unwritable path (a
        symbolic link at `path` included: it is never written through).
    """
    from gflow.app.outputs import check_output, save_figure
    from gflow.postprocess.plot import check_image_path, run_figure

    if columns < 1:
        raise InputError(f"columns = {columns}: must be at least 1")
    if path is not None:
        # an unknown type or a link refused before any work; like savefig, a file is replaced
        check_output(check_image_path(path), force=True)
    if not isinstance(run, Run) and Path(run).suffix.lower() == ".csv":
        from gflow.postprocess.sweep_plot import sweep_figure
        fig, _ = sweep_figure(run, dpi)
    else:
        fig = run_figure(_as_run(run), columns, dpi)
    if path is not None:
        save_figure(fig, path)
    return fig


def movie(run: Run | str | Path, path: str | Path, dpi: float = 100) -> Path:
    """An animation of the density, one frame per snapshot (`gflow plot RUN --movie PATH`).

    Parameters
    ----------
    run : Run, str or Path
        A run, or a snapshot file's path. In 3D and above the frames show the marginal on the
        first two axes.
    path : str or Path
        A ``.gif`` file, or ``.mp4`` where ffmpeg is installed.
    dpi : float, default 100
        Resolution.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    gflow.errors.InputError
        An unreadable run, another movie type, .mp4 without ffmpeg, or an unwritable path.
    """
    from gflow.app.outputs import check_output, replacing
    from gflow.postprocess.plot import movie_writer, write_movie

    movie_writer(path, 1)   # refuse an unknown movie type before any work
    path = check_output(path, force=True)
    with replacing(path) as tmp:
        write_movie(_as_run(run), tmp, dpi=dpi)
    return path


def check(path: str | Path) -> list[str]:
    """Check a snapshot file against the layout SPEC.md fixes (`gflow check RUN.h5`).

    Parameters
    ----------
    path : str or Path
        The snapshot file.

    Returns
    -------
    list of str
        The problems found, most basic first, one line each; an empty list: a valid run.
        A missing or damaged file is a problem in the list, not an exception.

    Notes
    -----
    The file is read with h5py alone, not through `open_run`, so that a lenient reader cannot
    hide a writer's mistake (`gflow.snapshot_check`).
    """
    from gflow.snapshot_check import problems

    return problems(path)
