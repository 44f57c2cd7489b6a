"""Compare two benchmark results: `python -m benchmarks.compare A.json B.json [--tolerance 0.2] [--ratios]`.

Prints every numeric key the two files share with the ratio B / A, and flags (`!!`) those more
than the tolerance apart (|B / A - 1| > tol, in either direction). Exit status 1 when any key is
flagged, 2 when a file cannot be read, so that "two consecutive full runs within 20%" is one
command. `--ratios` keeps only the ratios (`is_ratio`: the goals, speed-ups, cost advantages and
step-over-baseline figures), which is what that criterion is about: raw milliseconds, wall
times and the min/max of a range move with the machine's load, a ratio to a baseline measured
in the same run much less.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def numeric(results: dict) -> dict[str, float]:
    """The scalar numbers of a results file, lists flattened to key[i] (booleans left out)."""
    out = {}
    for key, value in results.items():
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[key if len(values) == 1 and not isinstance(value, list) else f"{key}[{i}]"] = float(v)
    return out


def is_ratio(key: str) -> bool:
    """Whether a results key holds a ratio to a baseline of the same run (not a time, a count or a range)."""
    from benchmarks.goals import GOALS

    base = key.split("[")[0]
    if base.endswith(("_range", "_quartiles", "_processes")) or "_is_" in base:
        return False
    return base in GOALS or any(word in base for word in ("_over_", "speedup", "advantage"))


def differences(a: dict, b: dict, tolerance: float, ratios: bool = False) -> list[tuple[str, float, float, float, bool]]:
    """(key, a, b, b / a, flagged) for the shared numeric keys, in a's order."""
    na, nb = numeric(a), numeric(b)
    rows = []
    for key, va in na.items():
        if key not in nb or (ratios and not is_ratio(key)):
            continue
        vb = nb[key]
        if va == vb:
            ratio = 1.0
        elif va == 0:
            ratio = float("inf")
        else:
            ratio = vb / va
        rows.append((key, va, vb, ratio, not (abs(ratio - 1.0) <= tolerance)))
    return rows


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read benchmark results: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: not a benchmark results file (expected a JSON object)")
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.2, help="relative difference to flag (default 0.2)")
    parser.add_argument("--ratios", action="store_true", help="compare only the ratios (goals, speed-ups, advantages)")
    args = parser.parse_args(argv)
    try:
        a, b = _load(args.first), _load(args.second)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = differences(a, b, args.tolerance, args.ratios)
    width = max((len(r[0]) for r in rows), default=10)
    for key, va, vb, ratio, flagged in rows:
        print(f"{'!!' if flagged else '  '} {key:<{width}}  {va:>12.4g}  {vb:>12.4g}  {ratio:>8.3f}")
    flagged = [r[0] for r in rows if r[4]]
    print(f"{len(flagged)} of {len(rows)} shared numbers differ by more than {args.tolerance:.0%}"
          + (": " + ", ".join(flagged) if flagged else ""))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
