"""The sweep table's format, `DIR/sweep.csv` (docs/sweeps.md): written by `gflow sweep`, read by plots.

One row per snapshot file of a sweep: `run`, `solver`, one column per varied key, then the
columns of COLUMNS (status, sizes, final risk, wall time and the distances to a reference).
Rows that differ only in a resolution key (`...cells`, `...particles`) form one group and share
a reference (`group_key`). Floats are written to full precision.
"""
from __future__ import annotations

import csv
from pathlib import Path

from gflow.errors import InputError
from gflow.solver_options import PARTICLE_KINDS

#: columns of sweep.csv; each varied key gets its own column after `solver`
COLUMNS = ("run", "solver", "status", "resolution", "particles", "cells", "final_time", "final_risk",
           "wall_time", "steps", "reference", "risk_error", "W1", "W2", "L1", "path", "note")


def resolution_keys(kind: str) -> tuple[str, ...]:
    """Last components of the keys that set a `kind` run's resolution."""
    return ("particles", "cells") if kind in PARTICLE_KINDS else ("cells",)


def group_key(row: dict, keys) -> tuple:
    """(solver, values of the other keys): rows that differ only in resolution share a group and a reference."""
    kind = row.get("solver")
    return (kind,) + tuple(row.get(k, "") for k in keys if k.rsplit(".", 1)[-1] not in resolution_keys(kind))


def write_csv(rows: list[dict], keys, path: Path, base: Path | None = None) -> Path:
    """sweep.csv: run, solver, one column per varied key, then COLUMNS, written to `path` (the app
    writes to a fresh temporary file and moves it over the table: `gflow.app.outputs.replacing`).

    Floats are written to full precision; paths inside the sweep directory (`base`, by default
    `path`'s folder) relative to it.
    """
    base = path.parent if base is None else base
    columns = ["run", "solver", *keys, *COLUMNS[2:]]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            cells = {c: repr(v) if isinstance(v, float) else v for c, v in row.items()}
            for c in ("path", "reference"):
                if cells.get(c) not in (None, "", "self"):
                    cells[c] = _relative(cells[c], base)
            writer.writerow(cells)
    return path


def _relative(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def read_csv(path, required=("run", "solver", "status")) -> tuple[list[dict], list[str]]:
    """The rows of a sweep.csv and its varied keys (the columns that are not COLUMNS)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    missing = [c for c in required if c not in fields]
    if missing:
        raise InputError(f"{path}: not a gflow sweep.csv (no column {missing[0]!r})")
    return rows, [f for f in fields if f not in COLUMNS]
