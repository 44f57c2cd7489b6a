"""The `compare` and `plot` subcommands over gflow.postprocess; `gflow.app.cli` adds each `register(subparsers)` in REGISTER.

Each command returns an exit status; bad input (an unreadable run, an unknown image type)
is an `InputError`, which the CLI prints as one line with exit status 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gflow.errors import InputError


def register_compare(sub) -> None:
    p = sub.add_parser("compare", help="distances between two runs at their common snapshot times")
    p.add_argument("a", help="first snapshot file (.h5)")
    p.add_argument("b", help="second snapshot file (.h5)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the comparison as JSON to FILE (stdout without FILE, instead of the table)")
    p.add_argument("--csv", nargs="?", const="-", metavar="FILE",
                   help="write the rows as CSV to FILE (stdout without FILE, instead of the table)")
    p.add_argument("--plot", metavar="FILE", help="write a comparison figure (risk, W against time, final densities)")
    p.set_defaults(func=cmd_compare)


def register_plot(sub) -> None:
    p = sub.add_parser("plot", help="figure of a run: densities, f(x) against the target, risk and energy")
    p.add_argument("run", help="snapshot file (.h5), or a sweep.csv (error against resolution and wall time)")
    p.add_argument("-o", "--output", metavar="FILE", help="figure file (default: RUN with .png)")
    p.add_argument("--movie", metavar="FILE", help="also write an animation of the density (.gif, or .mp4 with ffmpeg)")
    p.add_argument("--columns", type=int, default=4, help="snapshot times shown (default 4)")
    p.add_argument("--dpi", type=float, default=100, help="resolution of the figure and movie (default 100)")
    p.set_defaults(func=cmd_plot)


def _emit(text: str, target: str, note) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    try:
        Path(target).write_text(text)
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from None
    note(f"wrote {target}")


def cmd_compare(args) -> int:
    from gflow.postprocess.compare import compare_runs, table, to_csv, to_json
    from gflow.snapshots import open_run

    if args.json == "-" and args.csv == "-":
        raise InputError("--json and --csv cannot both write to stdout; give one a FILE")
    if args.plot:
        from gflow.postprocess.plot import check_image_path
        check_image_path(args.plot)
    run_a, run_b = open_run(args.a, require_snapshots=True), open_run(args.b, require_snapshots=True)
    comparison = compare_runs(run_a, run_b)
    machine = "-" in (args.json, args.csv)

    def note(line: str) -> None:
        # with JSON or CSV on stdout, stdout holds nothing else
        print(line, file=sys.stderr if machine else sys.stdout)

    if not machine:
        print(table(comparison))
    if args.json:
        _emit(json.dumps(to_json(comparison), indent=1) + "\n", args.json, note)
    if args.csv:
        _emit(to_csv(comparison), args.csv, note)
    if args.plot:
        from gflow.postprocess.plot import comparison_figure, save
        note(f"wrote {save(comparison_figure([run_a, run_b], [comparison]), args.plot)}")
    return 0


def cmd_plot(args) -> int:
    if Path(args.run).suffix.lower() == ".csv":
        from gflow.postprocess.sweep_plot import cmd_plot_sweep
        return cmd_plot_sweep(args)
    from gflow.postprocess.plot import check_image_path, movie_writer, run_figure, save, write_movie
    from gflow.snapshots import open_run

    if args.columns < 1:
        raise InputError(f"--columns {args.columns}: must be at least 1")
    output = check_image_path(args.output or Path(args.run).with_suffix(".png"))
    if args.movie:
        movie_writer(args.movie, 1)   # refuse an unknown movie type before any work
    run = open_run(args.run, require_snapshots=True)
    print(f"wrote {save(run_figure(run, args.columns, args.dpi), output)}")
    if args.movie:
        print(f"wrote {write_movie(run, args.movie, dpi=args.dpi)}")
    return 0


REGISTER = [register_compare, register_plot]
