"""The report `gflow run` writes when a case lists several solvers: compare.txt and compare.png.

The first run is the reference; every other run is compared with it at their common
snapshot times (`postprocess.compare`), and one figure shows the risk of all runs on one
axis, W1 and W2 to the reference against time, and the final densities side by side.
"""
from __future__ import annotations

from gflow.postprocess.compare import compare_runs, table
from gflow.postprocess.plot import comparison_figure, run_labels
from gflow.snapshots import open_run


#: the report's files, in the order `build_report` returns their contents
REPORT_FILES = ("compare.txt", "compare.png")


def build_report(paths):
    """The report of the runs in `paths` (the first is the reference): (compare.txt's text, the figure).

    Writing is the caller's: `gflow run` checks both files before any work and writes them
    atomically, never through a symbolic link (`gflow.app.outputs`).
    """
    runs = [open_run(p, require_snapshots=True) for p in paths]
    comparisons = [compare_runs(runs[0], other) for other in runs[1:]]
    labels = run_labels(runs)
    lines = [f"{len(runs)} runs; reference A = {labels[0]}",
             "final risk: " + ", ".join(f"{label} {r.risk[-1]:.6g} (t = {r.time[-1]:.4g})"
                                        for label, r in zip(labels, runs))]
    for label, c in zip(labels[1:], comparisons):
        lines += ["", f"== {labels[0]} (A) vs {label} (B)", table(c)]
    return "\n".join(lines) + "\n", comparison_figure(runs, comparisons)
