"""`gflow ensemble CASE --widths 25,50,100 --seeds S`: finite-width statistics against the PDE.

The case's particle solver runs S times (seeds 0..S-1) at each width m, as a sweep over
`solver.particles` and `solver.seed` (`gflow.app.sweep`: on Dask, every run written as `gflow
run` writes it, complete runs skipped when started again, stopped ones resumed):

    DIR/runs/solver.particles=<m>__solver.seed=<s>/particle.h5

The reference is the same case on quadrature particles (`init = "quadrature"`; `nodes` per
axis: --nodes, else the case's `nodes`, else 16; forward Euler at the case's `lr`; full batch),
with `fluctuation = true` (for minibatch runs it predicts the gradient-descent part of their
spread; noise, T > 0, is refused): DIR/reference/particle.h5 holds R(t) and the predicted sqrt(m) sd
(docs/fluctuations.md). `postprocess.ensemble` then tabulates over time, per width, the mean,
sd, sqrt(m) sd and m (mean - R) with their standard errors: DIR/ensemble.csv and
DIR/ensemble.png, and the table on stdout.
"""
from __future__ import annotations

import csv
from pathlib import Path

from gflow.app.execute import run_case
from gflow.app.outputs import check_dir, check_outputs, replacing, save_figure
from gflow.app.sweep import run_sweep
from gflow.case import load_case
from gflow.errors import InputError
from gflow.postprocess.ensemble import COLUMNS, ensemble_figure, ensemble_rows, ensemble_table

#: the reference's quadrature nodes per axis when neither --nodes nor the case's `nodes` gives them
DEFAULT_NODES = 16
#: at most this many runs in one ensemble (widths x seeds)
MAX_RUNS = 100_000


def parse_widths(text: str) -> list[int]:
    try:
        widths = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--widths {text!r}: give particle counts, comma-separated (e.g. 25,50,100)") from None
    if not widths or min(widths) < 1 or len(set(widths)) != len(widths):
        raise InputError(f"--widths {text!r}: give distinct particle counts of at least 1")
    return sorted(widths)


def run_ensemble(case_path, *, widths: list[int], seeds: int, overrides=(), out_dir=None, nodes: int | None = None,
                 scheduler=None, workers=None, force=False, echo=print) -> list[dict]:
    """Run the ensemble and its reference; write DIR/ensemble.csv and DIR/ensemble.png; return the rows.
    `nodes`: quadrature nodes per axis of the reference (default: the case's `nodes`, else 16)."""
    if seeds < 2:
        raise InputError(f"--seeds {seeds}: an ensemble needs at least 2 runs per width")
    if seeds * len(widths) > MAX_RUNS:
        raise InputError(f"--widths and --seeds: {seeds * len(widths)} runs, more than the {MAX_RUNS} allowed")
    case = load_case(case_path, list(overrides), ["particle"])
    spec = case.solvers[0]
    if spec.options["init"] != "random":
        raise InputError(f"{case_path}: the ensemble's runs draw random neurons: give init = \"random\" "
                         f"(the reference is made of quadrature particles)")
    if case.temperature > 0:
        raise InputError(f"{case_path}: regularization.temperature: gflow ensemble compares gradient descent "
                         "with its noise-free mean-field reference (quadrature particles); T must be 0")
    nodes = nodes if nodes is not None else (spec.options["nodes"] or DEFAULT_NODES)
    out = Path(out_dir) if out_dir else case.output_dir / "ensemble"
    check_dir(out)
    csv_path, png_path = check_outputs([out / "ensemble.csv", out / "ensemble.png"], force=True)

    # the reference: the mean-field flow (full batch) on quadrature particles, with the prediction
    # of the gradient-descent spread (minibatch runs add theirs to it)
    ref_overrides = [*overrides, 'solver.init="quadrature"', f"solver.nodes={nodes}", "solver.batch=0",
                     'solver.integrator="euler"', "solver.fluctuation=true"]
    reference_case = load_case(case_path, ref_overrides, ["particle"])
    reference = out / "reference" / "particle.h5"
    echo(f"reference: quadrature particles ({nodes} per axis), predicting the spread")
    # a complete reference of the same case is kept, as a sweep keeps its complete runs
    run_case(reference_case, out / "reference", force=force, resume=not force, progress=False, echo=echo)

    result = run_sweep(case_path, vary=[f"solver.particles={','.join(map(str, widths))}",
                                        f"solver.seed={','.join(map(str, range(seeds)))}"],
                       overrides=overrides, solver_kinds=["particle"], out_dir=out / "runs", scheduler=scheduler,
                       workers=workers, force=force, measure=False, echo=echo)
    if result.failed:
        raise InputError(f"{result.failed} of the ensemble's runs failed (see {result.csv_path}); "
                         "the statistics need them all")
    by_width: dict[int, list] = {m: [] for m in widths}
    for row in result.rows:
        by_width[int(row["solver.particles"])].append(row["path"])
    rows = ensemble_rows(by_width, reference, _initial_bias(reference_case, reference))
    with replacing(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    echo(ensemble_table(rows))
    echo(f"wrote {csv_path}")
    echo(f"wrote {save_figure(ensemble_figure(rows, f'{case.name}: {seeds} runs per width'), png_path)}")
    return rows


def _initial_bias(case, reference: Path) -> float:
    """m (E R_m(0) - R(0)), exact, from the reference's quadrature of the initial law: its first
    snapshot's particles and weights, as the run file holds them (NaN for a model without it)."""
    import math
    from gflow.problem import build_problem
    from gflow.snapshots import open_run
    model = build_problem(case).model
    if not hasattr(model, "initial_bias"):
        return math.nan
    run = open_run(reference)
    return model.initial_bias(run.positions(0), run.weights_at(0))


def register_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="S particle runs per width against the PDE's prediction, see docs/fluctuations.md")
    p.add_argument("case", help="case file (TOML) with a particle solver")
    p.add_argument("--widths", required=True, help="particle counts m, comma-separated (e.g. 25,50,100)")
    p.add_argument("--seeds", type=int, required=True, help="runs per width (seeds 0..S-1)")
    p.add_argument("--nodes", type=int, help="quadrature nodes per axis of the reference (default: the case's "
                                              "`nodes`, else 16)")
    p.add_argument("-o", "--output", help="ensemble directory (default: [output].dir/ensemble)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a case key; repeatable")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--force", action="store_true", help="rerun every run and the reference")
    p.set_defaults(func=cmd_ensemble)


def cmd_ensemble(args) -> int:
    if args.scheduler and args.workers is not None:
        raise InputError("--workers sizes the local cluster; with --scheduler the cluster's own workers run it")
    run_ensemble(args.case, widths=parse_widths(args.widths), seeds=args.seeds, overrides=args.set,
                 out_dir=args.output, nodes=args.nodes, scheduler=args.scheduler, workers=args.workers,
                 force=args.force, echo=lambda line: print(line, flush=True))
    return 0
