"""The `compare` and `plot` subcommands over gflow.postprocess; `gflow.app.cli` adds each `register(subparsers)` in REGISTER.

Each command returns an exit status; bad input (an unreadable run, an unknown image type)
is an `InputError`, which the CLI prints as one line with exit status 2.

Every output (JSON, CSV, figures, movies) is checked before any work and written atomically
by `gflow.app.outputs`: an existing file is overwritten only with `--force`, a symbolic link,
a directory or one of the inputs at an output's name is refused, and an unusable directory
(missing and not creatable, read-only, a file) is one line.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gflow.app.outputs import check_outputs, replacing, save_figure, write_text
from gflow.errors import InputError


def _register_ensemble(sub) -> None:
    from gflow.app.ensemble import register_ensemble      # its imports (the sweep's Dask) load on use
    register_ensemble(sub)


def register_compare(sub) -> None:
    p = sub.add_parser("compare", help="distances between two runs at their common snapshot times")
    p.add_argument("a", help="first snapshot file (.h5)")
    p.add_argument("b", help="second snapshot file (.h5)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the comparison as JSON to FILE (stdout without FILE, instead of the table)")
    p.add_argument("--csv", nargs="?", const="-", metavar="FILE",
                   help="write the rows as CSV to FILE (stdout without FILE, instead of the table)")
    p.add_argument("--plot", metavar="FILE", help="write a comparison figure (risk, W against time, final densities)")
    _figure_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=cmd_compare)


def _figure_options(p) -> None:
    """The drawing options that `gflow plot` and `gflow compare --plot` share."""
    p.add_argument("--own-scale", action="store_true",
                   help="give every density panel and movie frame its own colour scale (default: one scale, "
                        "so that amplitudes compare)")
    p.add_argument("--no-particles", action="store_true", help="draw no particles over the binned density")


def register_plot(sub) -> None:
    p = sub.add_parser("plot", help="figure of a run: densities, f(x) against the target, risk and energy")
    p.add_argument("run", help="snapshot file (.h5), or a sweep.csv (error against resolution and wall time)")
    p.add_argument("-o", "--output", metavar="FILE", help="figure file (default: RUN with .png)")
    p.add_argument("--movie", metavar="FILE", help="also write an animation of the density (.gif or .mp4)")
    p.add_argument("--columns", type=int, default=4, help="snapshot times shown (default 4)")
    p.add_argument("--dpi", type=float, default=100, help="resolution of the figure and movie (default 100)")
    _figure_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing figure or movie")
    p.set_defaults(func=cmd_plot)


def _emit(text: str, target: str, note) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    note(f"wrote {write_text(target, text)}")


def cmd_compare(args) -> int:
    from gflow.postprocess.compare import compare_runs, table, to_csv, to_json
    from gflow.snapshots import open_run

    if args.json == "-" and args.csv == "-":
        raise InputError("--json and --csv cannot both write to stdout; give one a FILE")
    if args.plot:
        from gflow.postprocess.plot import check_image_path
        check_image_path(args.plot)
    files = [None if target == "-" else target for target in (args.json, args.csv)] + [args.plot]
    check_outputs(files, args.force, inputs=(args.a, args.b))
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
        from gflow.postprocess.plot import comparison_figure
        note(f"wrote {save_figure(comparison_figure([run_a, run_b], [comparison], **_drawing(args)), args.plot)}")
    return 0


def _drawing(args) -> dict:
    return {"shared_scale": not args.own_scale, "particles": not args.no_particles}


def cmd_plot(args) -> int:
    if Path(args.run).suffix.lower() == ".csv":
        return _plot_sweep(args)
    from gflow.postprocess.plot import check_image_path, movie_writer, run_figure, write_movie
    from gflow.snapshots import open_run

    if args.columns < 1:
        raise InputError(f"--columns {args.columns}: must be at least 1")
    output = check_image_path(args.output or Path(args.run).with_suffix(".png"))
    if args.movie:
        movie_writer(args.movie, 1)   # refuse an unknown movie type before any work
    check_outputs([output, args.movie], args.force, inputs=(args.run,))
    run = open_run(args.run, require_snapshots=True)
    print(f"wrote {save_figure(run_figure(run, args.columns, args.dpi, **_drawing(args)), output)}")
    if args.movie:
        with replacing(args.movie) as tmp:
            write_movie(run, tmp, dpi=args.dpi, **_drawing(args))
        print(f"wrote {args.movie}")
    return 0


def _plot_sweep(args) -> int:
    """`gflow plot sweep.csv [-o FILE]`: the figure of `postprocess.sweep_plot`, and the fitted slopes printed."""
    from gflow.postprocess.plot import check_image_path
    from gflow.postprocess.sweep_plot import sweep_figure

    if args.movie:
        raise InputError(f"--movie: a sweep.csv has no density to animate ({args.run})")
    output = check_image_path(args.output or Path(args.run).with_suffix(".png"))
    check_outputs([output], args.force, inputs=(args.run,))
    fig, slopes = sweep_figure(args.run, args.dpi)
    for (group, error, what), p in slopes.items():
        print(f"slope of {error} against {what}: {p:.3f}  ({group})")
    print(f"wrote {save_figure(fig, output)}")
    return 0


REGISTER = [register_compare, register_plot, _register_ensemble]
