"""An initial law from another run's snapshot: `[initial] snapshot = "runs/x/fv.h5"`.

Continue a run with another solver: snapshot `snapshot_index` (-1: the last) of that run file,
read through the one reader (`gflow.run_file.open_run` and its checks), becomes the case's
initial law. A run with particles (particle, blob) gives its positions and weights: point
masses with the weights of that snapshot (`Snapshot.weights`: a birth-death or Fisher-Rao run's
`snapshot_weights` row, normalised to sum 1), which particle and blob solvers start from as
given and grid solvers deposit (cloud-in-cell). A grid run gives its density on its own faces,
which grid solvers remap conservatively onto theirs (`gflow.grids.regrid`) and particle solvers draw from (init =
"random") or take one particle per cell centre with the cell's mass (init = "quadrature").
The run's axes must be the case's.

The case reader reads no run file (run files are read a layer above the case-file contract:
tests/test_import_rules.py), so the arrays come in here when a run starts:
`gflow.app.execute.run_case` builds its problem from `load_initial(case)`.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from gflow.errors import InputError
from gflow.run_file import open_run

KEY = "initial.snapshot"


def load_initial(case):
    """`case` with its snapshot law's arrays read (the case itself for any other law)."""
    init = case.initial
    if init.loaded:
        return case

    def refuse(problem: str) -> InputError:
        return InputError(f"{case.source}: {KEY}: {problem}")

    try:
        run = open_run(init.snapshot, require_snapshots=True)
    except InputError as exc:
        raise refuse(str(exc)) from None
    if run.layers:
        raise refuse(f"{init.snapshot} is a layered run (resnet): it cannot start another run")
    if tuple(run.axes) != tuple(case.parameter_axes):
        raise refuse(f"the run's axes ({', '.join(run.axes)}) are not the case's ({', '.join(case.parameter_axes)}): "
                     "a snapshot starts a run of the same model's axes")
    count, index = len(run.time), init.snapshot_index
    if not -count <= index < count:
        raise InputError(f"{case.source}: initial.snapshot_index: {index}, but {init.snapshot} holds {count} "
                         f"snapshots (0 .. {count - 1}; -1 is the last)")
    try:
        snap = run.snapshot(index)
    except InputError as exc:
        raise refuse(str(exc)) from None
    if snap.positions is not None:
        # the weights of that snapshot (birth-death, Fisher-Rao: its row of snapshot_weights), normalised
        q = np.asarray(snap.weights, dtype=float)
        if not (np.all(np.isfinite(q)) and np.all(q >= 0) and q.sum() > 0):
            raise refuse(f"{init.snapshot}: the particles' weights are not finite, non-negative and not all zero")
        loaded = replace(init, points=_frozen(snap.positions), point_weights=_frozen(q / q.sum()))
    else:
        if not np.any(snap.density > 0):
            raise refuse(f"{init.snapshot}: snapshot {index} has no positive density")
        loaded = replace(init, grid_faces=run.faces(), grid_density=_frozen(snap.density))
    return replace(case, initial=loaded)


def _frozen(values: np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=float)
    out.flags.writeable = False
    return out
