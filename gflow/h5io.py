"""Opening run files with h5py, safely beside a live writer.

HDF5's own file locks are non-blocking: a reader holding a file open made a writer's next
append fail, and a writer's append made readers fail. gflow's writer therefore opens its file
without HDF5's lock (it has its own run lock, `gflow.app.execute.output_lock`), and gflow's
readers open through `reading`.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import h5py


@contextlib.contextmanager
def reading(path: str | Path):
    """The run file at `path`, open read-only for the block."""
    with h5py.File(path, "r", locking=False) as f:
        yield f
