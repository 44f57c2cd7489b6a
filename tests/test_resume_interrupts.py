"""Issue 14, item 3: an interrupted append never leaves an inconsistent file, and a damaged
restart state is one line.

A Ctrl-C during `SnapshotWriter.append` left `density` one row longer than `time`, and once a
`restart` group without its `snapshot` attribute; `--resume` then died with a traceback. Here
the interrupt is delivered at every h5py operation of one append, either as a real SIGINT
(which the writer defers until the append is complete) or as a KeyboardInterrupt raised by the
operation itself (which the writer rolls back); either way `gflow check` accepts the file,
every time-indexed dataset has as many rows as `time`, and the resumed run is bitwise the
uninterrupted one.
"""
from __future__ import annotations

import os
import signal

import h5py
import numpy as np
import pytest

from gflow.app.cli import main
from gflow.app.execute import run_case
from gflow.snapshots import Observation, SnapshotWriter
from conftest import assert_same_results, check_snapshot
from test_generic_solvers import case_for

#: the h5py operations an append may be interrupted at
OPERATIONS = [(h5py.Dataset, "__setitem__"), (h5py.Dataset, "resize"), (h5py.Group, "create_dataset"),
              (h5py.Group, "create_group"), (h5py.Group, "__delitem__"), (h5py.Group, "move"),
              (h5py.AttributeManager, "__setitem__")]


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own SIGINT handler, whatever this process inherited: a shell starting the tests
    in the background (`cmd &` without job control) leaves SIGINT ignored, which the writer
    rightly leaves alone, and then no interrupt arrives."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def run(case, out, **kwargs):
    return run_case(case, out, progress=False, echo=lambda line: None, warn=lambda line: None, **kwargs)


class Interrupter:
    """Once armed (by the first snapshot's callback), interrupt the `at`-th h5py operation."""

    def __init__(self, monkeypatch, at: int, how: str):
        self.at, self.how, self.count, self.armed, self.fired = at, how, 0, False, False
        for owner, name in OPERATIONS:
            monkeypatch.setattr(owner, name, self.wrap(getattr(owner, name)))

    def wrap(self, original):
        def operation(*args, **kwargs):
            if self.armed and not self.fired:
                self.count += 1
                if self.count == self.at:
                    self.fired = True
                    if self.how == "signal":
                        os.kill(os.getpid(), signal.SIGINT)      # handled between bytecodes
                    else:
                        raise KeyboardInterrupt
            return original(*args, **kwargs)
        return operation

    def on_snapshot(self, index, t, obs):
        self.armed = index == 0


def rows(path) -> dict[str, int]:
    with h5py.File(path) as f:
        return {name: ds.shape[0] for name, ds in f.items()
                if isinstance(ds, h5py.Dataset) and ds.maxshape[0] is None}


def same_datasets(a_path, b_path):
    assert_same_results(a_path, b_path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    done = {}

    def get(kind):
        if kind not in done:
            [result] = run(case_for(kind), tmp_path_factory.mktemp(f"whole_{kind}"))
            done[kind] = result.path
        return done[kind]
    return get


@pytest.mark.parametrize("how", ["signal", "raise"])
@pytest.mark.parametrize("kind", ["particle", "spectral"])
def test_an_interrupt_at_any_point_of_an_append_leaves_a_consistent_resumable_file(kind, how, reference,
                                                                                    tmp_path, monkeypatch):
    case = case_for(kind)
    for at in range(1, 60):          # bounded: an append makes a few dozen h5py calls at most
        out = tmp_path / str(at)
        with monkeypatch.context() as patch:
            interrupter = Interrupter(patch, at, how)
            try:
                run(case, out, on_snapshot=interrupter.on_snapshot)
            except KeyboardInterrupt:
                assert interrupter.fired
            else:
                assert not interrupter.fired
                break                # past the end of the second append: every point was tried
        path = out / f"{kind}.h5"
        check_snapshot(path)
        counts = rows(path)
        # a deferred signal finishes the append; a raised interrupt rolls it back, or finishes it
        # once `time` holds the snapshot
        expected = 2 if how == "signal" else counts["time"]
        assert set(counts.values()) == {expected}, (at, counts)
        with h5py.File(path) as f:
            assert int(f["restart"].attrs["snapshot"]) == expected - 1, at
            assert not [k for k in f if k.startswith("restart") and k != "restart"], (at, list(f))
        [resumed] = run(case, out, resume=True)
        assert resumed.resumed_from == pytest.approx((expected - 1) / 3), at
        check_snapshot(path)
        same_datasets(reference(kind), path)
    else:
        pytest.fail("the interrupt never got past the append")
    assert at > 10                   # the append was interrupted at each of its operations


def test_signal_handlers_are_restored_and_a_deferred_sigterm_is_delivered_after_the_append(tmp_path):
    writer = SnapshotWriter(tmp_path / "r.h5", case_text="", solver="fv", axes=["a"], coordinates=[[0.0, 1.0]])
    seen = []

    def on_term(signum, frame):
        with h5py.File(tmp_path / "r.h5") as f:
            seen.append(f["time"].shape[0])    # the append is complete when the signal arrives

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        original = h5py.Dataset.resize

        def resize(self, *args, **kwargs):
            if not seen and self.name == "/density":
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self, *args, **kwargs)

        h5py.Dataset.resize = resize
        try:
            writer.append(0.0, Observation(np.ones(2), 0.0, 0.0, 1.0), {"x": 1.0})
        finally:
            h5py.Dataset.resize = original
        assert seen == [1]
        assert signal.getsignal(signal.SIGTERM) is on_term
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_resume_overwrites_rows_beyond_time(reference, tmp_path):
    """A run killed mid-append (SIGKILL cannot be deferred) may hold rows beyond `time`: resume
    replaces them and the file is bitwise the uninterrupted run."""
    case_path, out, path = interrupted_file("particle", tmp_path)
    with h5py.File(path, "a") as f:
        for name, ds in f.items():
            if isinstance(ds, h5py.Dataset) and ds.maxshape[0] is None and name != "time":
                ds.resize(3, axis=0)
                ds[2] = np.full(ds.shape[1:], 7.0)
    check_snapshot(path)
    [resumed] = run(case_for("particle"), out, resume=True)
    assert resumed.resumed_from == pytest.approx(1 / 3)
    check_snapshot(path)
    same_datasets(reference("particle"), path)


def test_resume_takes_the_state_a_kill_left_under_its_temporary_name(reference, tmp_path):
    """Killed after `time` grew, before the new restart group took its name: the stale group
    of the snapshot before is ignored, the new one is used and renamed."""
    case_path, out, path = interrupted_file("particle", tmp_path)
    with h5py.File(path, "a") as f:
        f.move("restart", "restart.new")
        f.create_group("restart").attrs["snapshot"] = 0
    [resumed] = run(case_for("particle"), out, resume=True)
    assert resumed.resumed_from == pytest.approx(1 / 3)
    with h5py.File(path) as f:
        assert sorted(k for k in f if k.startswith("restart")) == ["restart"]
    check_snapshot(path)
    same_datasets(reference("particle"), path)


# ----------------------------------------------------------------------------- damaged state

def interrupted_file(kind, tmp_path):
    """A case file and its run stopped after two snapshots."""
    case_path = tmp_path / f"{kind}.toml"
    case_path.write_text(_case_text(kind))
    out = tmp_path / "out"

    def stop(index, t, obs):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(case_for(kind), out, on_snapshot=stop)
    return case_path, out, out / f"{kind}.h5"


def _case_text(kind):
    from test_generic_solvers import CASE, PARTICLES
    from gflow.solver_options import PARTICLE_KINDS
    options = f"particles = {PARTICLES}\n" if kind in PARTICLE_KINDS else ""
    return f'{CASE}\n[solver]\nkind = "{kind}"\n{options}'


def _del_attr(name):
    def damage(f):
        del f["restart"].attrs[name]
    return damage


def _set_attr(name, value):
    def damage(f):
        f["restart"].attrs[name] = value
    return damage


def _del_dataset(name):
    def damage(f):
        del f["restart"][name]
    return damage


def _reshape_dataset(name):
    def damage(f):
        value = f["restart"][name][()]
        del f["restart"][name]
        f["restart"].create_dataset(name, data=value[:-1])
    return damage


def _foreign_state(f):
    del f["restart"]
    group = f.create_group("restart")
    group.attrs["snapshot"] = 1
    group.create_dataset("rho_hat", data=np.zeros((4, 4), dtype=complex))


DAMAGE = {
    "no snapshot attribute": ("particle", _del_attr("snapshot"), "snapshot"),
    "missing attribute": ("particle", _del_attr("noise_rng"), "noise_rng"),
    "bad generator state": ("particle", _set_attr("batch_rng", "not a generator"), "does not fit"),
    "wrong type": ("particle", _set_attr("h_next", "fast"), "h_next"),
    "missing dataset": ("spectral", _del_dataset("rho_hat"), "rho_hat"),
    "wrong shape": ("spectral", _reshape_dataset("rho_hat"), "rho_hat"),
    "another solver's state": ("particle", _foreign_state, "does not fit"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_restart_state_is_one_line_and_exit_2(damage, tmp_path, capsys):
    kind, spoil, named = DAMAGE[damage]
    case_path, out, path = interrupted_file(kind, tmp_path)
    with h5py.File(path, "a") as f:
        spoil(f)
    capsys.readouterr()
    status = main(["run", str(case_path), "-o", str(out), "--resume"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith(f"gflow: {path}: ") and named in err, err
