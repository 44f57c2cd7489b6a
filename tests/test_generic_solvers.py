"""Every registered solver kind, on one small 2D two-layer case (py-pde's generic solver tests).

Each kind must conserve mass (grid solvers to 1e-10; particle ones carry weights summing to
1), write datasets of the shapes SPEC.md fixes, pass `gflow check`, and resume bitwise: a
run interrupted after its first, second or third snapshot and continued with `resume=True`
holds exactly the datasets of an uninterrupted run.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from gflow.app.execute import run_case
from gflow.case import case_from_text
from gflow.solvers import REGISTRY
from gflow.solver_options import PARTICLE_KINDS
from conftest import TWO_LAYER_2D, assert_same_results, check_snapshot, has_module

CELLS = (16, 12)
SNAPSHOTS = 4
PARTICLES = 300
CASE = (TWO_LAYER_2D.replace("cells = [32, 32]", f"cells = [{CELLS[0]}, {CELLS[1]}]")
        .replace("snapshots = 3", f"snapshots = {SNAPSHOTS}"))


def case_for(kind: str):
    options = f"particles = {PARTICLES}\n" if kind in PARTICLE_KINDS else ""
    return case_from_text(f'{CASE}\n[solver]\nkind = "{kind}"\n{options}', f"{kind}.toml")


def run(case, out, **kwargs):
    return run_case(case, out, progress=False, echo=lambda line: None, warn=lambda line: None, **kwargs)


class Interrupt(KeyboardInterrupt):
    """Ctrl-C right after a given snapshot is on disk."""


def stop_after(written: int):
    """A snapshot callback that interrupts the run once `written` snapshots are on disk."""
    def callback(index, t, observation):
        if index == written - 1:
            raise Interrupt
    return callback


def kinds():
    return sorted(REGISTRY)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """kind -> the uninterrupted run's file, made on first use."""
    done = {}

    def get(kind):
        if kind == "fipy" and not has_module("fipy"):
            pytest.skip("FiPy is not installed")
        if kind not in done:
            [result] = run(case_for(kind), tmp_path_factory.mktemp(f"whole_{kind}"))
            done[kind] = result.path
        return done[kind]
    return get


@pytest.mark.parametrize("kind", kinds())
def test_mass_shapes_and_layout(kind, whole):
    path = whole(kind)
    check_snapshot(path)
    with h5py.File(path) as f:
        T, D = SNAPSHOTS, len(CELLS)
        assert f.attrs["solver"] == kind and list(f.attrs["axes"]) == ["a", "w"]
        for name in ("time", "risk", "energy", "mass"):
            assert f[name].shape == (T,), name
        np.testing.assert_allclose(f["time"][()], np.linspace(0.0, 1.0, T), rtol=0, atol=1e-15)
        assert f["a"].shape == (CELLS[0],) and f["w"].shape == (CELLS[1],)
        assert f["density"].shape == (T, *CELLS)
        mass = f["mass"][()]
        if kind in PARTICLE_KINDS:
            assert f["positions"].shape == (T, PARTICLES, D)
            assert f["weights"].shape == (PARTICLES,)
            assert abs(f["weights"][()].sum() - 1.0) < 1e-12
            np.testing.assert_allclose(mass, 1.0, rtol=0, atol=1e-12)
        else:
            assert "positions" not in f and "weights" not in f
            np.testing.assert_allclose(mass, 1.0, rtol=0, atol=1e-10)
        cell = (8.0 / CELLS[0]) * (10.0 / CELLS[1])
        np.testing.assert_allclose(f["density"][()].sum(axis=(1, 2)) * cell, mass, rtol=1e-9)
        assert np.all(np.isfinite(f["risk"][()])) and np.all(np.isfinite(f["energy"][()]))


@pytest.mark.parametrize("written", range(1, SNAPSHOTS))
@pytest.mark.parametrize("kind", kinds())
def test_resume_is_bitwise(kind, written, whole, tmp_path):
    """Issue 14: a run stopped after its first snapshot wrote t = 0 twice on resume."""
    case = case_for(kind)
    reference = whole(kind)
    with pytest.raises(Interrupt):
        run(case, tmp_path, on_snapshot=stop_after(written))
    path = tmp_path / f"{kind}.h5"
    with h5py.File(path) as f:
        assert f["time"].shape == (written,)
    check_snapshot(path)
    [resumed] = run(case, tmp_path, resume=True)
    assert resumed.path == path and resumed.resumed_from == pytest.approx((written - 1) / (SNAPSHOTS - 1))
    check_snapshot(path)
    assert_same_results(reference, path)
