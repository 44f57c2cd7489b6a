"""Measure gflow on this machine in one run: `python -m benchmarks [--quick] [--only NAME ...]`.

Every ratio is taken against a baseline measured in the same run (the copy bandwidth, numpy's
FFT, FiPy, PyTorch, particles), so results from different machines compare. Prints a table
and writes runs/benchmarks/latest.json (untracked); `--save` writes the committed
benchmarks/results/latest.json instead, `--output FILE` any other file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks.allocator import keep_freed_memory
from benchmarks.calibration import calibrate, run_calibrated, typical
from benchmarks.goals import format_value, verdict

ROOT = Path(__file__).resolve().parents[1]
#: where a run's results go by default: outside the tracked files (runs/ is ignored)
SCRATCH = ROOT / "runs" / "benchmarks" / "latest.json"
#: the committed results that docs/performance.md quotes (`--save`)
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"

def _measures(quick: bool):
    """name -> zero-argument function returning a dict of results (imported lazily)."""
    def stream():
        from benchmarks.timing import stream_gbps
        return {"stream_gbps": stream_gbps(repeats=5 if quick else 11)}

    def fv(key):
        def run():
            from benchmarks.fv_floor import measure_in_processes
            # about a second of steps at each size: a 2 ms step at 512^2 needs hundreds for its
            # median to hold still (30 gave 3.1 and 4.3 in two runs)
            steps = {"512": (50, 300), "128cubed": (10, 40), "256cubed": (5, 5)}[key][0 if quick else 1]
            return measure_in_processes(ROOT, key, steps, 1 if quick else 3)
        return run

    def fft():
        from benchmarks.fft_pair import measure
        return measure(50 if quick else 300)

    def fipy():
        from benchmarks.accuracy import fv_vs_fipy
        return fv_vs_fipy(ROOT, quick)

    def spectral():
        from benchmarks.spectral_cost import measure
        return measure(ROOT, quick)

    def resnet():
        from benchmarks.resnet_cost import measure
        return measure(ROOT, quick)

    def fluctuation():
        from benchmarks.fluctuation_cost import measure
        return measure(ROOT, quick)

    def symmetry():
        from benchmarks.symmetry_cost import measure
        return measure(ROOT, quick)

    measures = {"stream": stream, "fv512": fv("512"), "fv128cubed": fv("128cubed"),
                "fv256cubed": fv("256cubed"), "fft": fft,
                "fipy": fipy, "spectral": spectral, "resnet": resnet, "symmetry": symmetry, "fluctuation": fluctuation}
    try:
        from benchmarks import particles
    except ImportError:
        pass
    else:
        measures.update(particles.measures(ROOT, quick, results))
    return measures


results: dict = {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a look in under 3 minutes (fewer repeats and rounds, smaller studies, no t = 10)")
    parser.add_argument("--only", nargs="*", help="run only these measures (stream always runs)")
    parser.add_argument("--output", type=Path, help=f"results file (default: {SCRATCH.relative_to(ROOT)})")
    parser.add_argument("--save", action="store_true", help=f"write the committed {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--retries", type=int, default=None,
                        help="times a measure runs again when the machine calibration around it was slow "
                             "(default 1; 0 with --quick)")
    args = parser.parse_args(argv)
    if args.save and args.output:
        parser.error("--save writes the committed results file; --output names another: give one")
    args.output = RESULTS if args.save else (args.output or SCRATCH)
    measures = _measures(args.quick)
    chosen = ["stream"] + [m for m in measures if m != "stream" and (not args.only or m in args.only)]
    retries = (0 if args.quick else 1) if args.retries is None else max(0, args.retries)
    allocator = keep_freed_memory()   # before anything is allocated that a timing reuses
    started = time.perf_counter()
    seen = {k: [v] for k, v in calibrate().items()}    # every calibration's figures
    calibration = {}
    for name in chosen:
        t0 = time.perf_counter()
        try:
            out, calibration[name] = run_calibrated(measures[name], seen, retries)
            results.update(out)
        except Exception as exc:  # noqa: BLE001 - one failed measure must not lose the others
            results[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        tries = len(calibration.get(name, [None]))
        print(f"  [{name}: {time.perf_counter() - t0:.1f} s" + (f", {tries} attempts" if tries > 1 else "") + "]",
              file=sys.stderr, flush=True)
    results["calibration"] = {"typical": typical(seen), "sections": calibration}
    results["machine"] = {"platform": platform.platform(), "processor": platform.processor(),
                          "cores": os.cpu_count(), "python": platform.python_version(),
                          "quick": args.quick, "allocator": allocator, "wall_s": time.perf_counter() - started,
                          "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    width = max(len(k) for k in results)
    for key, value in results.items():
        if isinstance(value, dict):
            continue
        print(f"{key:<{width}}  {format_value(value):>24}  {verdict(key, value)}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.output}")
    if args.save:   # the committed results and the page that quotes them move together
        from benchmarks import report
        report.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
