"""Per-snapshot particle weights (issue 18: birth-death and Wasserstein-Fisher-Rao change them).

A particle run whose weights change (`[dynamics] birth_death` with the particle option
`birth_death_scheme = "weights"`; Fisher-Rao masses) stores them at every snapshot in
`snapshot_weights` (T, m), beside the fixed `weights` (m,) of the contract, which holds the
initial ones. Held here: the rows are the stepper's weights at the snapshot times, sum to 1 and
change; the densities bin the positions with them; `gflow check` and the reader refuse a
corrupted dataset in one line; W1 against a grid run uses them (a hand-written 1D W1 with the final
weights); a plain or stochastic run's file has exactly the datasets it had before; `--resume`
continues bitwise and refuses weights that disagree with the saved state; a run continued from a
snapshot takes that snapshot's weights; an append interrupted while it writes the weights leaves a
readable file; a mass-changing writer stores its initial masses normalised.
"""
from __future__ import annotations

import os
import shutil
import signal

import h5py
import numpy as np
import pytest

from gflow.app.cli import main
from gflow.app.execute import run_case
from gflow.case import case_from_text
from gflow.errors import InputError, RunError
from gflow.initial_snapshot import load_initial
from gflow.problem import build_problem
from gflow.snapshot_check import problems
from gflow.snapshots import SNAPSHOT_WEIGHTS, Observation, SnapshotWriter, open_run
from gflow.solvers import make_stepper
from gflow.solvers.deposit import cloud_in_cell
from gflow.solvers.loop import run
from gflow.solvers.trackers import CallbackTracker
from conftest import assert_same_results, check_snapshot
from test_resume_interrupts import rows

M = 200
#: a 1-D potential with a pair interaction: the particles move and birth-death reweights them
CASE = f"""
name = "weights"
[model]
kind = "potential"
axes = ["x"]
potential = "0.5*x**2 + 0.4*x"
interaction = "0.5*exp(-r**2)"
[initial]
distribution = "gaussian"
mean = [0.5]
std = [0.6]
[grid]
bounds = [[-3.0, 3.0]]
cells = [60]
[time]
end = 1.0
snapshots = 4
[dynamics]
birth_death = 2.0
[solver]
kind = "particle"
particles = {M}
seed = 3
kernel = "numpy"
"""
PLAIN = CASE.replace("[dynamics]\nbirth_death = 2.0\n", "")
STOCHASTIC = CASE + 'birth_death_scheme = "stochastic"\n'
GRID = CASE.split("[solver]")[0] + '[solver]\nkind = "fv"\n'
#: the datasets of a particle run file before per-snapshot weights existed
PARTICLE_LAYOUT = {"time", "risk", "energy", "mass", "outside_mass", "wall_time", "x", "density", "particle",
                   "component", "positions", "weights"}
QUIET = {"progress": False, "echo": lambda line: None, "warn": lambda line: None}


def run_text(text: str, out, **kwargs):
    [result] = run_case(case_from_text(text, str(out / "case.toml")), out, **QUIET, **kwargs)
    return result.path


@pytest.fixture(scope="module")
def birth_death_run(tmp_path_factory):
    return run_text(CASE, tmp_path_factory.mktemp("bd"))


def copy(path, tmp_path, name="copy.h5"):
    target = tmp_path / name
    shutil.copyfile(path, target)
    return target


# ----------------------------------------------------------------------------- writing

def test_a_birth_death_run_stores_the_stepper_weights_of_every_snapshot(birth_death_run):
    """The rows are, bit for bit, the live weights of the same run driven by the run loop."""
    case = case_from_text(CASE, "case.toml")
    stepper = make_stepper("particle", build_problem(case), case.solvers[0].options)
    assert stepper.varying_weights
    seen = []
    run(stepper, np.array(case.times, dtype=float), [CallbackTracker(lambda i, t, obs: seen.append(
        (stepper.weights.copy(), stepper.u.copy())))], case.dt)
    with h5py.File(birth_death_run, "r") as f:
        stored, initial, positions = f[SNAPSHOT_WEIGHTS][()], f["weights"][()], f["positions"][()]
        density = f["density"][()]
        assert [s.name for s in (f[SNAPSHOT_WEIGHTS].dims[0][0], f[SNAPSHOT_WEIGHTS].dims[1][0])] == ["/time",
                                                                                                      "/particle"]
        assert int(f[SNAPSHOT_WEIGHTS].attrs["sums_to_one"]) == 1
    assert stored.shape == (4, M)
    for row, (q, u), pos in zip(stored, seen, positions):
        np.testing.assert_array_equal(row, q)
        np.testing.assert_array_equal(pos, u)
    np.testing.assert_allclose(stored.sum(axis=1), 1.0, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(stored[0], initial)           # the fixed dataset: the initial weights
    np.testing.assert_array_equal(initial, np.full(M, 1.0 / M))
    # they change, by far more than round-off: birth-death moved weight towards low V
    assert np.abs(stored[-1] - stored[0]).max() > 0.2 / M
    assert np.all(np.diff(np.abs(stored - stored[0]).sum(axis=1)) > 0)
    # each density bins that snapshot's positions with that snapshot's weights
    grid = build_problem(case).grid
    for i in range(4):
        np.testing.assert_allclose(density[i], cloud_in_cell(grid, positions[i], stored[i]), rtol=1e-13, atol=1e-15)
    check_snapshot(birth_death_run)


def test_the_reader_gives_each_snapshot_its_weights(birth_death_run):
    run_ = open_run(birth_death_run)
    assert run_.varying_weights
    with h5py.File(birth_death_run, "r") as f:
        stored = f[SNAPSHOT_WEIGHTS][()]
    for i in (0, 2, -1):
        np.testing.assert_array_equal(run_.snapshot(i).weights, stored[i])
        np.testing.assert_array_equal(run_.weights_at(i), stored[i])
    np.testing.assert_array_equal(run_.weights, stored[0])


@pytest.mark.parametrize("text", [PLAIN, STOCHASTIC], ids=["plain", "stochastic"])
def test_a_run_whose_weights_stay_fixed_keeps_the_layout_it_had(text, tmp_path):
    path = run_text(text, tmp_path)
    with h5py.File(path, "r") as f:
        assert {k for k, v in f.items() if isinstance(v, h5py.Dataset)} == PARTICLE_LAYOUT
        assert "note" not in f["weights"].attrs and "initial_mass" not in f["weights"].attrs
    run_ = open_run(path)
    assert not run_.varying_weights
    assert run_.snapshot(-1).weights is run_.weights
    check_snapshot(path)


# ----------------------------------------------------------------------------- damaged files

def _reshaped(f):
    del f[SNAPSHOT_WEIGHTS]
    ds = f.create_dataset(SNAPSHOT_WEIGHTS, data=np.full((4, M - 1), 1.0 / (M - 1)))
    ds.dims[0].attach_scale(f["time"])


def _negative(f):
    row = f[SNAPSHOT_WEIGHTS][2]
    row[:2] = [row[0] + row[1] + 0.1, -0.1]      # the row still sums to 1
    f[SNAPSHOT_WEIGHTS][2] = row


def _nan(f):
    f[SNAPSHOT_WEIGHTS][1, 5] = np.nan


def _doubled(f):
    f[SNAPSHOT_WEIGHTS][3] = 2 * f[SNAPSHOT_WEIGHTS][3]


DAMAGE = {  # damage -> (gflow check's first problem, the reader's refusal: at open (-1) or snapshot i)
    "shape": (_reshaped, "dataset 'snapshot_weights' has shape (4, 199), expected (T, m) = (4, 200)",
              (-1, "has shape (4, 199), expected (T, m) = (4, 200)")),
    "negative": (_negative, "dataset 'snapshot_weights' has negative weights in snapshot 2",
                 (2, "snapshot 2 has negative or non-finite weights")),
    "nan": (_nan, "dataset 'snapshot_weights' has non-finite values in snapshot 1",
            (1, "snapshot 1 has negative or non-finite weights")),
    "sum": (_doubled, "dataset 'snapshot_weights': snapshot 3's weights sum to 2, not 1", None),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_corrupted_snapshot_weights_is_one_line(damage, birth_death_run, tmp_path, capsys):
    spoil, problem, refusal = DAMAGE[damage]
    path = copy(birth_death_run, tmp_path)
    with h5py.File(path, "r+") as f:
        spoil(f)
    found = problems(path)
    assert found and found[0] == problem, found
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err, err
    if refusal is None:
        open_run(path).snapshot(3)          # the reader takes them as masses; only the check holds the sum
        return
    index, words = refusal
    with pytest.raises(InputError) as info:
        open_run(path).snapshot(index) if index >= 0 else open_run(path)
    text = str(info.value)
    assert text.startswith(str(path)) and words in text and "\n" not in text, text


def test_snapshot_weights_without_particles_is_refused(birth_death_run, tmp_path):
    path = copy(birth_death_run, tmp_path)
    with h5py.File(path, "r+") as f:
        del f["positions"]
    with pytest.raises(InputError, match="snapshot_weights' in a run without particle positions"):
        open_run(path)


# ----------------------------------------------------------------------------- readers

def _cdf(at, where, mass):
    """F(at) = the mass at points <= at (right-continuous)."""
    order = np.argsort(where)
    cum = np.concatenate([[0.0], np.cumsum(mass[order])])
    return cum[np.searchsorted(where[order], at, side="right")]


def _hand_w1(points, q, centres, masses) -> float:
    """W1 between two 1D discrete measures: int |F_A - F_B| dx, both CDFs constant between the
    merged support points (Villani 2009, Rem. 2.19)."""
    x = np.unique(np.concatenate([points, centres]))
    return float(np.sum(np.abs(_cdf(x[:-1], points, q) - _cdf(x[:-1], centres, masses)) * np.diff(x)))


def test_w1_against_a_grid_run_uses_the_snapshot_weights(birth_death_run, tmp_path):
    from gflow.postprocess.compare import compare_runs

    grid_path = run_text(GRID, tmp_path)
    particles, grid = open_run(birth_death_run), open_run(grid_path)
    result = compare_runs(particles, grid, progress=False, bar=False)
    last = result.rows[-1]
    snap, cells = particles.snapshot(-1), grid.snapshot(-1)
    centres = grid.coordinates[0]
    masses = cells.density * grid.cell_volume
    masses = np.where(masses > 1e-12 * masses.max(), masses, 0.0)     # compare drops negligible cells
    q = snap.weights / snap.weights.sum()
    final = _hand_w1(snap.positions[:, 0], q, centres, masses / masses.sum())
    initial = _hand_w1(snap.positions[:, 0], particles.weights, centres, masses / masses.sum())
    assert last["W1"] == pytest.approx(final, rel=1e-9)
    # the initial weights would give another number, by far more than the tolerance
    assert abs(initial - final) > 0.1 * final


def test_a_run_continued_from_a_snapshot_takes_that_snapshots_weights(birth_death_run, tmp_path):
    text = PLAIN.split("[initial]")[0] + f'[initial]\nsnapshot = "{birth_death_run}"\nsnapshot_index = 2\n' \
        + "[grid]" + PLAIN.split("[grid]")[1]
    case = load_initial(case_from_text(text, str(tmp_path / "c.toml")))
    stepper = make_stepper("particle", build_problem(case), case.solvers[0].options)
    with h5py.File(birth_death_run, "r") as f:
        row, positions = f[SNAPSHOT_WEIGHTS][2], f["positions"][2]
    np.testing.assert_array_equal(stepper.u, positions)
    np.testing.assert_allclose(stepper.weights, row / row.sum(), rtol=1e-15, atol=0)
    assert np.ptp(stepper.weights) > 0.1 / M


# ----------------------------------------------------------------------------- resume

def _cut(tmp_path, after: int = 1):
    """The case's run stopped after snapshot `after`, like a Ctrl-C between two snapshots."""
    def stop(index, t, obs):
        if index == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_text(CASE, tmp_path, on_snapshot=stop)
    return tmp_path / "particle.h5"


def test_resume_continues_bitwise_with_the_snapshot_weights(birth_death_run, tmp_path):
    path = _cut(tmp_path)
    with h5py.File(path, "r") as f:
        assert f[SNAPSHOT_WEIGHTS].shape == (2, M)
        np.testing.assert_array_equal(f[SNAPSHOT_WEIGHTS][1], f["restart"]["birth_death_weights"][()])
    run_text(CASE, tmp_path, resume=True)
    check_snapshot(path)
    assert_same_results(birth_death_run, path)


def test_resume_refuses_weights_that_disagree_with_the_saved_state(tmp_path):
    path = _cut(tmp_path)
    spoilt = tmp_path / "spoilt"
    spoilt.mkdir()
    for what in ("row", "missing"):
        target = copy(path, spoilt, "particle.h5")
        with h5py.File(target, "r+") as f:
            if what == "row":
                f[SNAPSHOT_WEIGHTS][1, 0] = f[SNAPSHOT_WEIGHTS][1, 0] * (1 + 1e-9)
            else:
                del f[SNAPSHOT_WEIGHTS]
        with pytest.raises(InputError) as info:
            run_text(CASE, spoilt, resume=True)
        text = str(info.value)
        assert "\n" not in text and "--force" in text, text
        assert ("differ from the saved solver state's" if what == "row" else "weights stay fixed") in text, text


class WeightsInterrupter:
    """Once armed (by the first snapshot's callback), interrupt the append at the `at`-th
    operation on `snapshot_weights` (its resize, then its row's write): by a real SIGINT, which
    the writer defers until the append is complete, or a KeyboardInterrupt raised there, which
    it rolls back (`tests/test_resume_interrupts.py` tries every h5py operation of an append)."""

    def __init__(self, monkeypatch, at: int, how: str):
        self.at, self.how, self.count, self.armed, self.fired = at, how, 0, False, False
        for name in ("resize", "__setitem__"):
            monkeypatch.setattr(h5py.Dataset, name, self.wrap(getattr(h5py.Dataset, name)))

    def wrap(self, original):
        def operation(ds, *args, **kwargs):
            if self.armed and not self.fired and ds.name == f"/{SNAPSHOT_WEIGHTS}":
                self.count += 1
                if self.count == self.at:
                    self.fired = True
                    if self.how == "signal":
                        os.kill(os.getpid(), signal.SIGINT)      # handled between bytecodes
                    else:
                        raise KeyboardInterrupt
            return original(ds, *args, **kwargs)
        return operation

    def on_snapshot(self, index, t, obs):
        self.armed = index == 0


@pytest.mark.parametrize("how", ["signal", "raise"])
@pytest.mark.parametrize("at", [1, 2], ids=["resize", "write"])
def test_an_append_interrupted_at_the_weights_leaves_a_readable_resumable_file(at, how, tmp_path, monkeypatch):
    """Interrupted while writing the second snapshot's weights: every row count is `time`'s (2 for
    the deferred signal, 1 for the rolled-back raise), the file passes the check, its last row is
    the saved state's weights, and the resumed run is bitwise the whole one."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)     # whatever this process inherited
    try:
        small = CASE.replace(f"particles = {M}", "particles = 40")
        whole = run_text(small, tmp_path / "whole")
        case = case_from_text(small, str(tmp_path / "case.toml"))
        out = tmp_path / "cut"
        with monkeypatch.context() as patch:
            interrupter = WeightsInterrupter(patch, at, how)
            with pytest.raises(KeyboardInterrupt):
                run_case(case, out, on_snapshot=interrupter.on_snapshot, **QUIET)
        assert interrupter.fired
    finally:
        signal.signal(signal.SIGINT, previous)
    path = out / "particle.h5"
    check_snapshot(path)
    counts = rows(path)
    assert set(counts.values()) == {2 if how == "signal" else 1} and SNAPSHOT_WEIGHTS in counts, counts
    held = open_run(path)
    np.testing.assert_array_equal(held.snapshot(-1).weights, held.restart()["birth_death_weights"])
    run_case(case, out, resume=True, **QUIET)
    check_snapshot(path)
    assert_same_results(whole, path)


# ----------------------------------------------------------------------------- masses (Fisher-Rao)

def test_a_writer_of_masses_stores_the_initial_ones_normalised(tmp_path):
    """conserves_mass = False (Fisher-Rao): `weights` sums to 1 (SPEC.md), its attributes say what
    it is, and the rows are the masses as they are."""
    path = tmp_path / "wfr.h5"
    masses = np.array([0.5, 1.0, 0.5])
    writer = SnapshotWriter(path, case_text='name = "wfr"', solver="particle", axes=["x"],
                            coordinates=[np.linspace(-0.75, 0.75, 4)], n_particles=3, weights=masses,
                            extras=("outside_mass",), varying_weights=True, conserves_mass=False)
    positions = np.array([[-0.5], [0.0], [0.5]])
    for t, scale in ((0.0, 1.0), (0.5, 0.7)):
        q = masses * scale * np.array([1.0, 1.2, 0.8])
        writer.append(t, Observation(np.zeros(4), 0.0, 0.0, 0.0, positions=positions, weights=q,
                                     extras={"outside_mass": float(q.sum())}))
    assert problems(path) == []
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["weights"][()], masses / 2.0)
        assert f["weights"].attrs["initial_mass"] == 2.0 and "snapshot_weights" in f["weights"].attrs["note"]
        assert int(f[SNAPSHOT_WEIGHTS].attrs["sums_to_one"]) == 0
    run_ = open_run(path)
    np.testing.assert_allclose(run_.snapshot(1).weights, masses * 0.7 * np.array([1.0, 1.2, 0.8]), rtol=1e-15)
    # a snapshot without its weights, for a file that stores them, is refused and leaves the file as it was
    with pytest.raises(RunError, match="has no particle weights"):
        writer.append(1.0, Observation(np.zeros(4), 0.0, 0.0, 0.0, positions=positions,
                                       extras={"outside_mass": 0.0}))
    assert len(open_run(path).time) == 2 and problems(path) == []


def test_a_writer_without_weight_rows_refuses_weights_that_change(tmp_path):
    writer = SnapshotWriter(tmp_path / "p.h5", case_text='name = "p"', solver="particle", axes=["x"],
                            coordinates=[np.linspace(-0.75, 0.75, 4)], n_particles=2, weights=np.array([0.5, 0.5]))
    with pytest.raises(RunError, match="does not store"):
        writer.append(0.0, Observation(np.zeros(4), 0.0, 0.0, 0.0, positions=np.zeros((2, 1)),
                                       weights=np.array([0.4, 0.6])))
    assert len(open_run(tmp_path / "p.h5").time) == 0
