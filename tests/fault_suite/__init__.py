"""gflow's own fault and fuzz suite: hostile inputs in classes, each run through the installed
`gflow` command in a subprocess, every outcome counted against the reliability contract.

Run it from the repository root::

    python -m tests.fault_suite [--full] [--seed N] [--workers K] [--only CLASS,...]
    python tests/fault_suite [--full] ...          (the same)

The default size (32 inputs) is what CI runs (tests/test_fault_suite.py); ``--full`` runs
about 870. A totals table is printed at the end; every failure (class, input, command, outcome,
last stderr line) is written to ``.fault_suite/failures-<seed>[-full].json``. Exit status 0 when
no input broke the contract, 1 otherwise.

The contract: bad input gets one line on stderr and exit 2; a failed run exit 1 with one line;
never a traceback, a hang or unbounded memory; nothing already written is lost or corrupted.

Classes (each a seeded generator, ``CLASSES`` below)
  a  malformed case files: mutations of the bundled cases (shrunk first), raw bytes (BOM,
     non-UTF-8, NUL), deep nesting, huge strings, devices / FIFOs / directories as the case path
  b  damaged and hostile run files (made from one small real run): truncated, flipped or zeroed
     bytes, datasets declaring huge shapes, wrong dtypes, external and cyclic links, control
     characters in attributes, a stored case naming /dev/zero, a FIFO or a file outside as its
     data file; fed to info, check, compare (both sides), plot and run --resume
  c  signals: SIGINT, SIGTERM, SIGKILL at random moments of a run, then the file and --resume
  d  full disk: the run under RLIMIT_FSIZE so that its file hits the limit mid-run, then --resume
  e  live readers: h5py, xarray (if installed), gflow info / check / compare opening the file of a
     run while it writes
  f  symlinks and paths: the run file or its lock a symlink (dangling, or to a file outside), the
     output directory a file, /proc or /dev/null, compare.txt or the plot's default figure a
     symlink or a directory, a path too long

Definitions (what each column of the table counts; an input may count in several failure columns)
  ok         every command of the input exited 0 and what it wrote passes `gflow check` (a mutated
             case that is still valid and runs is ok)
  refused    a clean refusal: exit 2 (bad input) or 1 (the run failed), no 'Traceback' in stdout or
             stderr, and the LAST non-empty stderr line is gflow's message (starts with 'gflow';
             warnings before it are allowed). For class c the signalled run itself may also end by
             its signal (-2/-15/-9) or with 130.
  traceback  'Traceback (most recent call last)' in the output, or an exit status other than 0/1/2
             (negative: killed by a signal the harness did not send)
  hang       no exit within the timeout (60 s; every input is seconds of work); the harness kills it
  memory     peak resident memory of the child (its own ru_maxrss, from os.wait4) above 1.5 GiB, or
             the harness killed it at 3 GiB resident. RSS, not address space: numba and LLVM
             reserve large virtual memory harmlessly.
  lost       something already written was lost or corrupted: a run file that held N snapshots
             passing `gflow check` holds fewer afterwards or fails the check; a run stopped by a
             signal or a full disk holds fewer snapshots than it reported (-v) or fails the check;
             a reader command changed the bytes of the file it read
  security   a file outside the input's own folder was read or written: canary files in a sibling
             folder are watched with inotify (every open and write) and by their hashes; a
             symlink target changed; a file named only inside a hostile run file (external link,
             stored data file) was opened by info, check, compare or run --resume. `gflow plot`
             rebuilds the model from the stored case, so its reading that case's data file is by
             design and only noted.
  other      the contract broken otherwise: exit 1/2 without a one-line gflow message; exit 0 whose
             output fails `gflow check`; --resume after a signal or a full disk that does not
             complete the run (a clean refusal is accepted when the stopped file holds no snapshot:
             there is nothing to continue); a run that fails because readers opened its file; a
             harness error (reported as such, so that a broken harness never passes silently).
  notes      (JSON only, not failures) the harness's own h5py/xarray readers failing beside a
             writer; raw terminal control characters from a hostile file echoed; --resume exiting 0
             on a file that was damaged before gflow touched it.

A traceback failure names the innermost frame outside the standard library and site-packages,
so that each can be routed to the module that raised it.

The harness itself is plain Python (`harness.py`: running and judging one child; `inputs_*.py`: the
classes). It never imports gflow for anything but `gflow.snapshot_check` on files gflow itself
wrote, and reads nothing outside the repository but its own temporary folder.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from .harness import FAILURES, format_table, run_trials, totals
from .context import Suite
from . import inputs_cases, inputs_runfiles, inputs_live

ROOT = Path(__file__).resolve().parents[2]

#: class -> (generator, inputs at the default size, inputs with --full)
CLASSES = {
    "a_case_files": (inputs_cases.malformed_cases, 11, 380),
    "b_run_files": (inputs_runfiles.hostile_run_files, 10, 330),
    "c_signals": (inputs_live.signals, 2, 60),
    "d_full_disk": (inputs_live.full_disk, 2, 40),
    "e_live_readers": (inputs_live.live_readers, 1, 15),
    "f_paths": (inputs_cases.paths, 6, 42),
}


def run_suite(seed: int = 0, full: bool = False, workers: int = 2, only=None, echo=print, keep: bool = False,
              verbose: bool = False, size: int | None = None):
    """Run the suite; return (totals table, failures list, verdicts)."""
    work = Path(tempfile.mkdtemp(prefix="gflow-fault-"))
    suite = Suite(work, seed, full)
    trials = []
    start = time.monotonic()

    def progress(v):
        if verbose:
            echo(f"{v.cls} {v.label} [{v.wall:.1f} s]")
            for command, outcome, last in v.log:
                echo(f"    {outcome}: {command}\n        {last}")
            for note in v.notes:
                echo(f"    note: {note}")
        elif v.failures:
            echo(f"  {v.cls} {v.label}: " + ", ".join(sorted(v.failures)))

    try:
        for name, (generator, small, big) in CLASSES.items():
            if only and not any(name.startswith(o) for o in only):
                continue
            rng = random.Random(f"{seed}:{name}")
            trials += list(generator(suite, rng, size or (big if full else small), name))
        verdicts = run_trials(trials, workers=workers, progress=progress)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    table = totals(verdicts)
    failures = [f for v in verdicts for kind in v.failures for f in v.failures[kind] if f.setdefault("kind", kind)]
    notes = [{"class": v.cls, "input": v.label, "note": n} for v in verdicts for n in v.notes]
    echo(format_table(table))
    echo(f"{len(trials)} inputs in {time.monotonic() - start:.0f} s")
    return table, failures, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="about 870 inputs instead of 32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="inputs run at once (default 2)")
    parser.add_argument("--only", help="classes to run, comma-separated prefixes (a,b,...)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every command with its outcome")
    parser.add_argument("--size", type=int, help="inputs per class (instead of the default or --full size)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder of the inputs")
    parser.add_argument("--out", default=str(ROOT / ".fault_suite"), help="folder of the failures JSON")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    table, failures, notes = run_suite(args.seed, args.full, args.workers, only, keep=args.keep, verbose=args.verbose, size=args.size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"failures-{args.seed}{'-full' if args.full else ''}.json"
    path.write_text(json.dumps({"seed": args.seed, "full": args.full, "totals": table, "failures": failures,
                                "notes": notes}, indent=1))
    print(f"failures written to {path}")
    return 1 if any(table["all"][k] for k in FAILURES) else 0
