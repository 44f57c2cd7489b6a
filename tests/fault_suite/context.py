"""What the inputs share: the temporary folder, one folder per input, and the small real runs
(made once, on first use) that hostile run files are cut from."""
from __future__ import annotations

import itertools
import json
import shutil
import threading
import tomllib
from pathlib import Path

from .harness import Outside, Verdict, gflow

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "cases"

#: the small fv run the hostile run files start from (3 snapshots, 16 x 16: under a second)
SMALL = ["--set", "grid.cells=[16,16]", "--set", "time.end=0.5", "--set", "time.snapshots=3"]
#: a run long enough to interrupt: 41 snapshots, a second or two of stepping
LONG = ["--set", "grid.cells=[32,24]", "--set", "time.end=10", "--set", "time.snapshots=41"]
LONG_SNAPSHOTS = 41
#: the same with the particle solver: minibatches and noise, so its restart state matters
LONG_PARTICLE = ["--solver", "particle", "--set", "solver.particles=2000", "--set", "solver.batch=8",
                 "--set", "regularization.temperature=0.001", *LONG]
#: a small particle run: positions, weights and a restart state (generator) per snapshot
PARTICLE = ["--solver", "particle", "--set", "solver.particles=300", "--set", "solver.batch=8",
            "--set", "regularization.temperature=0.001", *SMALL]


def shrunk(name: str) -> dict:
    """A bundled case as a TOML document, shrunk to a second or two (tests/test_cli.py's smoke size)."""
    doc = tomllib.loads((CASES / f"{name}.toml").read_text())
    ndim = len(doc["grid"]["cells"])
    doc["grid"]["cells"] = [12] * ndim
    if "times" in doc["time"]:      # a listed [time] (chizat_relu: whole steps of lr = 1): its first three
        doc["time"]["times"] = doc["time"]["times"][:3]
    else:
        doc["time"]["end"] = doc["time"]["end"] / 20
        doc["time"]["snapshots"] = 3
    tables = [doc.get("solver", {})] + list(doc.get("solvers", []))
    for t in tables:
        if isinstance(t, dict) and "particles" in t:
            t["particles"] = min(t["particles"], 500)
    doc.pop("output", None)
    return doc


def sets(overrides) -> list[str]:
    return [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]


class Suite:
    def __init__(self, work: Path, seed: int, full: bool):
        self.work, self.seed, self.full = Path(work), seed, full
        self._count = itertools.count()
        self._lock = threading.Lock()
        self._bases = {}

    def folder(self, cls: str) -> tuple[Path, Outside]:
        """A fresh folder for one input (its `work`) and, beside it, its watched `outside`."""
        with self._lock:
            n = next(self._count)
        top = self.work / f"{cls}-{n:04d}"
        (top / "work").mkdir(parents=True)
        return top / "work", Outside(top / "outside")

    def base(self, name: str) -> Path:
        """A real run file made once by gflow itself: 'fv' (SMALL), 'particle', 'long' (LONG), 'long_particle'."""
        with self._lock:
            if name not in self._bases:
                args = {"fv": SMALL, "particle": PARTICLE, "long": LONG, "long_particle": LONG_PARTICLE}[name]
                out = self.work / f"base-{name}"
                r = gflow(["run", CASES / "quickstart.toml", "-o", out, *args], self.work, timeout=300)
                path = out / ("particle.h5" if "particle" in name else "fv.h5")
                if r.status != 0 or not path.exists():
                    raise RuntimeError(f"the base run {name} failed: {r.last_line}")
                self._bases[name] = path
            return self._bases[name]


class Trial:
    """One input: `fn(verdict, *args)` fills in the verdict of class `cls`."""

    def __init__(self, cls: str, label: str, fn, *args):
        self.cls, self.label, self.fn, self.args = cls, label, fn, args

    def __call__(self) -> Verdict:
        v = Verdict(self.cls, self.label)
        self.fn(v, *self.args)
        return v


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst
