"""The `gflow` command line: run, sweep, info, check (compare and plot are in gflow/app/commands.py).

Exit status: 0 success, 2 bad input (case file, arguments, unreadable snapshot), 1 other
failure. Bad input prints one line, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from gflow.app.commands import REGISTER as COMMANDS
from gflow.errors import InputError, RunError


def _parser() -> argparse.ArgumentParser:
    from gflow.version import __version__

    parser = argparse.ArgumentParser(
        prog="gflow",
        description="Wasserstein gradient flows of wide networks. Documentation: README.md and docs/ of the "
                    "gflow repository (the Python API, the same work from scripts: docs/api.md); "
                    "`gflow COMMAND -h` for each command.")
    parser.add_argument("--version", action="version", version=f"gflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a case file with its solvers",
                         epilog="Case-file keys: docs/case_files.md of the repository (or the docs site); "
                                "`gflow template` prints a commented case to start from.")
    run.add_argument("case", help="case file (TOML)")
    run.add_argument("-o", "--output", help="output directory (default: the case's [output].dir)")
    run.add_argument("--solver", help="run only these solver kinds, comma-separated")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a case key (dotted path; value parsed as TOML); repeatable")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: only on a terminal)")
    run.add_argument("--force", action="store_true", help="overwrite existing runs in the output directory")
    run.add_argument("--resume", action="store_true",
                     help="continue stopped runs from their last snapshot (complete ones are kept)")
    run.add_argument("-v", "--verbose", action="store_true", help="print a line as each snapshot is written")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="run a case over the product of lists of values (on Dask), see docs/sweeps.md")
    sweep.add_argument("case", help="case file (TOML)")
    sweep.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of one key (dotted path, values parsed as TOML); repeatable: every combination "
                            "runs (with the case's [sweep] table)")
    sweep.add_argument("-o", "--output", help="sweep directory (default: [output].dir/sweep)")
    sweep.add_argument("--solver", help="run only these solver kinds, comma-separated")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a case key in every run; repeatable")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786 "
                                                              "(default: a local cluster)")
    sweep.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    sweep.add_argument("--reference", metavar="RUN.h5",
                       help="measure every run against this run (default: each group's finest run)")
    sweep.add_argument("--force", action="store_true", help="rerun every run, overwriting complete ones")
    sweep.set_defaults(func=cmd_sweep)

    info = sub.add_parser("info", help="summarise a snapshot file")
    info.add_argument("run", help="snapshot file (.h5)")
    info.set_defaults(func=cmd_info)

    check = sub.add_parser("check", help="check snapshot files against the snapshot file layout")
    check.add_argument("runs", nargs="+", metavar="RUN.h5", help="snapshot files (.h5)")
    check.set_defaults(func=cmd_check)

    template = sub.add_parser("template", help="print a commented case file to start from (docs/case_files.md "
                                               "lists every key)")
    template.add_argument("kind", nargs="?", default="two_layer", help="which case (default: two_layer); "
                          "--list shows them")
    template.add_argument("--list", action="store_true", help="list the templates")
    template.set_defaults(func=cmd_template)

    for register in COMMANDS:
        register(sub)
    return parser


def cmd_run(args) -> int:
    from gflow.case import load_case
    from gflow.app.execute import run_case

    kinds = [k.strip() for k in args.solver.split(",")] if args.solver is not None else None
    case = load_case(args.case, args.set, kinds)
    out_dir = Path(args.output) if args.output else case.output_dir

    def log_snapshot(index, t, obs):
        print(f"snapshot {index + 1}/{case.snapshots}: t = {t:.6g}, risk = {obs.risk:.6g}", flush=True)

    # a multi-solver run reports itself (compare.txt, compare.png): those files are checked with
    # the run files before any work, and overwritten only with --force (or --resume, which
    # continues the very runs they compare)
    report = []
    if len(case.solvers) > 1:
        from gflow.postprocess.report import REPORT_FILES
        report = [out_dir / name for name in REPORT_FILES]
    if args.resume and args.watched:
        status = _resumable([out_dir / f"{spec.kind}.h5" for spec in case.solvers])
        if status:
            return status
    failure = None
    try:
        results = run_case(case, out_dir, force=args.force, resume=args.resume, progress=args.progress,
                           on_snapshot=log_snapshot if args.verbose else None, also=report)
    except (InputError, RunError) as exc:
        # a solver failed: the files of those that finished are still reported and compared
        if not getattr(exc, "finished", None):
            raise
        results, failure = exc.finished, exc
    written = [r.path for r in results]
    for path in written:
        print(f"wrote {path}")
    if len(written) > 1:
        # the runs are reported as written even if the report then cannot be
        from gflow.app.outputs import save_figure, write_text
        from gflow.postprocess.report import build_report
        text, figure = build_report(written)
        print(f"wrote {write_text(report[0], text)}")
        print(f"wrote {save_figure(figure, report[1])}")
    if failure is not None:
        raise failure
    return 0


def cmd_template(args) -> int:
    from gflow.case_keys import TEMPLATES, template

    if args.list:
        width = max(map(len, TEMPLATES))
        print("\n".join(f"{name:<{width}}  {text}" for name, text in TEMPLATES.items()))
        return 0
    if args.kind not in TEMPLATES:
        raise InputError(f"template: unknown template {args.kind!r} (expected one of: {', '.join(TEMPLATES)})")
    sys.stdout.write(template(args.kind))
    return 0


def cmd_sweep(args) -> int:
    from gflow.app.sweep import run_sweep

    if args.scheduler and args.workers is not None:
        raise InputError("--workers sizes the local cluster; with --scheduler the cluster's own workers run the sweep")
    kinds = [k.strip() for k in args.solver.split(",")] if args.solver is not None else None
    result = run_sweep(args.case, vary=args.vary, overrides=args.set, solver_kinds=kinds, out_dir=args.output,
                       scheduler=args.scheduler, workers=args.workers, reference=args.reference, force=args.force,
                       echo=lambda line: print(line, flush=True))
    if any(row.get("risk_error", "") != "" for row in result.rows):
        print(f"plot it with: gflow plot {result.csv_path}")
    return 1 if result.failed else 0


def cmd_info(args) -> int:
    """A summary of a run file; every text from the file goes through `printable` (a hostile
    file's ANSI escapes or carriage returns never reach the terminal)."""
    from gflow.run_file import printable
    from gflow.snapshots import open_run

    run = open_run(args.run)
    shape = " x ".join(str(len(c)) for c in run.coordinates)
    print(f"file     {run.path}")
    print(f"solver   {printable(run.solver)}   gflow {printable(run.attrs.get('gflow_version', '?'), 40)}   "
          f"format {printable(run.attrs.get('format_version', '?'), 40)}")
    name = (run.document or {}).get("name", "?")
    print(f"case     {printable(name, 80)}")
    bounds = ", ".join(f"{a} in [{c[0]:.4g}, {c[-1]:.4g}]" for a, c in zip(run.axes, run.coordinates))
    print(f"grid     {shape} cells; {printable(bounds, 2000)} (centres)")
    if run.has_particles:
        print(f"particles {len(run.weights)}" + (", weights per snapshot (snapshot_weights)" if run.varying_weights else ""))
    if run.solver_options is not None:
        options = ", ".join(f"{k} = {v!r}" for k, v in sorted(run.solver_options.items()))
        print(f"options  {printable(options, 2000)}")
    if len(run.time) == 0:
        print("times    none written")
        return 0
    print(f"times    {len(run.time)} snapshots, t = {run.time[0]:.6g} .. {run.time[-1]:.6g}")
    print(f"risk     {run.risk[0]:.6g} -> {run.risk[-1]:.6g}")
    print(f"energy   {run.energy[0]:.6g} -> {run.energy[-1]:.6g}")
    print(f"mass     {run.mass[0]:.15g} -> {run.mass[-1]:.15g}")
    if run.wall_time is not None:
        print(f"wall     {run.wall_time[-1]:.3g} s to t = {run.time[-1]:.6g}")
    return 0


def cmd_check(args) -> int:
    """One `PATH: ok` line per valid file; one `gflow: PATH: problem` line (stderr) per other file."""
    from gflow.snapshot_check import first_problem

    status = 0
    for path in args.runs:
        problem = first_problem(path)
        if problem is None:
            print(f"{path}: ok", flush=True)
        else:
            print(f"gflow: {path}: {_one_line(problem)}", file=sys.stderr, flush=True)
            status = 2
    return status


def _one_line(exc: Exception) -> str:
    """Errors are one line, whatever user text (a key, a --set value) they echo."""
    return " ".join(str(exc).split("\n"))


#: commands whose inputs are run files: a damaged one must not hang them (`gflow.app.watchdog`)
WATCHED = {"info", "check", "compare", "plot"}


def main(argv: list[str] | None = None) -> int:
    """The command line: `argv` (default: sys.argv). Called with the process's own arguments
    (argv None, the `gflow` command), commands reading run files run under the watchdog; a
    Python caller passing `argv` gets them in its own process."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.watched = argv is None
    if args.watched and args.command in WATCHED:
        from gflow.app.watchdog import supervised

        return supervised(lambda: _dispatch(lambda: args.func(args)))
    return _dispatch(lambda: args.func(args))


def _dispatch(command) -> int:
    """`command()`'s exit status, its errors as one line on stderr (2: bad input, 1: a failed run)."""
    try:
        # floating-point trouble is found by the run's own checks (non-finite risk, mass) and
        # reported in one line; numpy's warnings would print before it
        with np.errstate(all="ignore"):
            return command()
    except InputError as exc:
        print(f"gflow: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"gflow: run stopped: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gflow: interrupted; snapshots written so far are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (gflow compare ... | head): stop quietly, like any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _resumable(paths) -> int:
    """0 when every existing run file of `paths` reads (what --resume reads: the metadata, the
    last snapshot, the solver state), else the one-line refusal's status. Each is read in a
    watched child first: a damaged file hangs the child, never the run (`gflow.app.watchdog`)."""
    from gflow.app.watchdog import supervised
    from gflow.snapshots import open_run

    def read(path) -> int:
        run = open_run(path)
        if len(run.time):
            run.snapshot(len(run.time) - 1)
            run.restart()
        return 0

    for path in paths:
        if path.is_file():
            status = supervised(lambda: _dispatch(lambda: read(path)))
            if status:
                return status
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
