"""fv, spectral and fipy: one equation, three discretisations, one answer as the grid refines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import check_snapshot, has_module
from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.solvers.loop import run
from gflow.solvers.trackers import standard_trackers
from gflow.snapshots import SnapshotWriter, open_run
from gflow.solvers import make_stepper

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = (ROOT / "cases" / "quickstart.toml").read_text()
KINDS = ("fv", "spectral", "fipy")
END = 1.0
#: the quickstart grid coarsened by these factors on every axis (192 x 128 -> 48 x 32, 96 x 64)
COARSENING = (4, 2)

#: stated tolerances on the final (t = 1) L1 distance and risk difference, per pair:
#: C * (h / h_4)^p, with h_4 the cell size of the grid coarsened 4x, p = 2 between the
#: second-order fv and the spectral solver, p = 1 with the first-order fipy. Measured at
#: coarsening 4, 2, 1 (`python -m benchmarks.eulerian_steps --agreement`):
#: L1 fv-spectral 0.031, 0.0084, 0.0024; fv-fipy 0.183, 0.109, 0.059; spectral-fipy 0.186,
#: 0.108, 0.059; |risk| fv-spectral 1.6e-3, 4.1e-4, 1.1e-4; fv-fipy 2.1e-3, 1.3e-3, 7.1e-4;
#: spectral-fipy 3.7e-3, 1.7e-3, 8.3e-4.
TOLERANCE = {  # pair: (C for L1, C for risk, order p)
    ("fv", "spectral"): (0.04, 0.002, 2),
    ("fv", "fipy"): (0.3, 0.005, 1),
    ("spectral", "fipy"): (0.3, 0.005, 1),
}

pytestmark = pytest.mark.skipif(not has_module("fipy"), reason="needs FiPy")


def solve(kind: str, coarsening: int, directory: Path):
    """Run `kind` on the quickstart case, its grid coarsened, to t = END through the run loop."""
    cells = [n // coarsening for n in case_from_text(QUICKSTART).cells]
    case = case_from_text(QUICKSTART, overrides=[f"grid.cells={cells}", f"time.end={END}",
                                                 "time.snapshots=3"], solver_kinds=[kind])
    problem = build_problem(case)
    spec = case.solvers[0]
    stepper = make_stepper(kind, problem, spec.options)
    path = directory / f"{kind}_{coarsening}.h5"
    writer = SnapshotWriter(path, case_text=case.text_for(spec), solver=kind, axes=case.axes,
                            coordinates=problem.grid.centres, extras=stepper.extra_names())
    run(stepper, np.linspace(0.0, END, case.snapshots), standard_trackers(writer, stepper, end=END, progress=False))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("agreement")
    return {(kind, f): solve(kind, f, directory) for f in COARSENING for kind in KINDS}


def distances(runs, a: str, b: str, coarsening: int) -> tuple[float, float]:
    ra, rb = open_run(runs[a, coarsening]), open_run(runs[b, coarsening])
    l1 = float(np.abs(ra.density(-1) - rb.density(-1)).sum() * ra.cell_volume)
    return l1, float(abs(ra.risk[-1] - rb.risk[-1]))


@pytest.mark.parametrize("pair", list(TOLERANCE))
def test_quickstart_agreement_within_a_tolerance_that_shrinks_with_the_grid(runs, pair):
    c_l1, c_risk, order = TOLERANCE[pair]
    found = {f: distances(runs, *pair, f) for f in COARSENING}
    for f, (l1, risk) in found.items():
        shrink = (f / 4) ** order
        assert l1 < c_l1 * shrink, (pair, f, l1)
        assert risk < c_risk * shrink, (pair, f, risk)
    assert found[2][0] < found[4][0] / 1.5 ** order      # and it does shrink, at about the order
    assert found[2][1] < found[4][1]


@pytest.mark.parametrize("kind", KINDS)
def test_snapshots_pass_the_checker_and_conserve_mass(runs, kind):
    for f in COARSENING:
        check_snapshot(runs[kind, f])
        mass = open_run(runs[kind, f]).mass
        assert np.abs(mass - mass[0]).max() < 1e-12


@pytest.mark.slow
def test_agreement_on_the_quickstart_grid(tmp_path):
    """The same comparison one refinement further, on the case's own grid (about a minute)."""
    paths = {(kind, 1): solve(kind, 1, tmp_path) for kind in KINDS}
    for pair, (c_l1, c_risk, order) in TOLERANCE.items():
        l1, risk = distances(paths, *pair, 1)
        assert l1 < c_l1 * 0.25**order and risk < c_risk * 0.25**order, (pair, l1, risk)
