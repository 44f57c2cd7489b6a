"""The bundled `resnet` cases at smoke size, and the claims their descriptions make that hold at any size.

Each case in cases/resnet_*.toml is parsed and run with every solver it names, made small
with `--set`-style overrides (few cells, few particles, a short end time), and its files pass
`gflow check`. Beside that: the Haber-Ruthotto point masses are exactly z + 0.1 tanh(W z) for
each W of the case's [sweep] table; the isotonic bound of the non-monotone case is the number
its description quotes (and the continuum's 9/320) and no run goes below it; the random-feature
case never moves a w-marginal. The gallery sizes are examples/resnet_gallery.py's.
"""
import tomllib

import numpy as np
import pytest
from scipy.optimize import isotonic_regression

import gflow
from conftest import ROOT, check_snapshot
from gflow.problem import build_problem

CASES = sorted((ROOT / "cases").glob("resnet_*.toml"))
NAMES = [c.stem for c in CASES]
#: the smoke grids are coarse: the edge-mass warnings say nothing about the cases
pytestmark = pytest.mark.filterwarnings("ignore:.*(box may be too small|outside the box):UserWarning")


def smoke(path, cells: int = 8) -> list[str]:
    """Overrides that make a bundled resnet case take about a second."""
    doc = tomllib.loads(path.read_text())
    ndim = len(doc["grid"]["cells"])
    sets = [f"grid.cells={[cells] * ndim}", f"time.end={min(doc['time']['end'] / 20, 1.0)}",
            "time.snapshots=3", "model.layers=4"]
    kinds = [s["kind"] for s in doc.get("solvers", [doc.get("solver", {})])]
    if "particle" in kinds and doc["initial"]["distribution"] != "points":
        sets.append("solver.particles=50")
    return sets


def run_small(path, tmp_path, extra=()):
    case = gflow.load_case(path, [*smoke(path), *extra])
    return gflow.run(case, output=tmp_path, force=True)


def isotonic_risk(model) -> float:
    x, p, y = model.x[:, 0], model.p, model.y
    order = np.argsort(x)
    fit = isotonic_regression(y[order], weights=p[order]).x
    return 0.5 * float(p[order] @ (fit - y[order]) ** 2)


def test_the_five_cases_are_bundled():
    assert NAMES == ["resnet_2d_state", "resnet_haber_ruthotto", "resnet_monotone", "resnet_nonmonotone",
                     "resnet_random_feature"]


@pytest.mark.parametrize("path", CASES, ids=NAMES)
def test_bundled_resnet_case_runs_at_smoke_size(path, tmp_path):
    full = gflow.load_case(path)
    assert full.model.kind == "resnet" and tomllib.loads(path.read_text())["description"].strip()
    runs = run_small(path, tmp_path)
    assert [r.solver for r in runs] == [s.kind for s in full.solvers]
    for r in runs:
        check_snapshot(r.path)
        assert r.layers == 4 and np.all(np.isfinite(r.risk))
        assert r.risk[-1] < r.risk[0], (r.solver, r.risk)     # gradient descent on every case
        if r.solver == "fv":                                  # a gradient flow: the energy never rises
            assert np.all(np.diff(r.energy) <= 1e-10 * abs(r.energy[0])), r.energy
            np.testing.assert_allclose(r.dataset("layer_mass")[-1], 1.0, atol=1e-12)


def test_haber_ruthotto_points_are_exactly_z_plus_a_tenth_of_tanh_wz():
    path = ROOT / "cases" / "resnet_haber_ruthotto.toml"
    table = tomllib.loads(path.read_text())["sweep"]["initial.points"]
    assert len(table) == 3
    angle = np.linspace(0, 2 * np.pi, 13)[:-1]
    x = np.column_stack([np.cos(angle), np.sin(angle)])
    radii = []
    for points in table:
        problem = build_problem(gflow.load_case(path, [f"initial.points={points}"]))
        u, q = problem.initial_points()
        W = np.array([points[0][2:], points[1][2:]])
        z = x.copy()
        for _ in range(20):
            z = z + 0.1 * np.tanh(z @ W.T)
        states = problem.model.states(u, q, x)
        assert states.shape == (21, len(x), 2)
        np.testing.assert_allclose(states[-1], z, rtol=0, atol=1e-14)
        radii.append(np.linalg.norm(z, axis=1).mean())
    # the rotation keeps the ring, the contraction collapses it, the expansion blows it up
    assert abs(radii[0] - 1) < 0.1 and radii[1] < 0.1 and radii[2] > 3


def test_the_nonmonotone_case_never_goes_below_the_isotonic_bound(tmp_path):
    path = ROOT / "cases" / "resnet_nonmonotone.toml"
    model = build_problem(gflow.load_case(path)).model
    bound = isotonic_risk(model)
    # on the 16 Gauss nodes, near the continuum's 1/2 int_{-1}^{1/2} (x^2 - 1/4)^2 dx / 2 = 9/320
    assert bound == pytest.approx(0.0281, abs=5e-5) and bound == pytest.approx(9 / 320, rel=2e-3)
    assert 0.5 * float(model.p @ (model.x[:, 0] - model.y) ** 2) > 9 * bound   # f = x at t = 0
    for r in run_small(path, tmp_path, ["time.end=4"]):
        assert np.all(r.risk > bound), (r.solver, r.risk)


def test_the_random_feature_case_never_moves_a_w_marginal(tmp_path):
    path = ROOT / "cases" / "resnet_random_feature.toml"
    fv, particle = run_small(path, tmp_path)
    first, last = fv.snapshot(0).density, fv.snapshot(-1).density
    np.testing.assert_allclose(last.sum(axis=1), first.sum(axis=1), rtol=0, atol=1e-12)   # over a: per w
    assert np.abs(last - first).max() > 1e-3                                          # a moved
    u0, u1 = particle.snapshot(0).positions, particle.snapshot(-1).positions
    np.testing.assert_array_equal(u1[:, 2], u0[:, 2])
    assert np.abs(u1[:, 1] - u0[:, 1]).max() > 1e-3
