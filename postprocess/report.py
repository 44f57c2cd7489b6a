"""The report `gflow run` writes when a case lists several solvers: compare.txt and compare.png.

The first run is the reference; every other run is compared with it at their common
snapshot times (`postprocess.compare`), and one figure shows the risk of all runs on one
axis, W1 and W2 to the reference against time, and the final densities side by side.
"""
from __future__ import annotations

from pathlib import Path

from gflow.postprocess.compare import compare_runs, table
from gflow.postprocess.plot import comparison_figure, run_labels, save
from gflow.snapshots import open_run


def write_report(paths, out_dir) -> list[Path]:
    """Compare the runs in `paths` (the first is the reference); return the files written."""
    runs = [open_run(p, require_snapshots=True) for p in paths]
    comparisons = [compare_runs(runs[0], other) for other in runs[1:]]
    labels = run_labels(runs)
    out_dir = Path(out_dir)
    lines = [f"{len(runs)} runs; reference A = {labels[0]}",
             "final risk: " + ", ".join(f"{label} {r.risk[-1]:.6g} (t = {r.time[-1]:.4g})"
                                        for label, r in zip(labels, runs))]
    for label, c in zip(labels[1:], comparisons):
        lines += ["", f"== {labels[0]} (A) vs {label} (B)", table(c)]
    text_path = out_dir / "compare.txt"
    text_path.write_text("\n".join(lines) + "\n")
    figure_path = save(comparison_figure(runs, comparisons), out_dir / "compare.png")
    return [text_path, figure_path]
