"""The run loop: exact snapshot times, stops on blow-up keeping earlier snapshots, warnings."""
import h5py
import numpy as np
import pytest

from conftest import check_snapshot
from gflow.errors import RunError
from gflow.solvers.loop import run
from gflow.solvers.trackers import standard_trackers
from gflow.snapshots import SnapshotWriter, open_run
from gflow.solvers.base import Observation, Stepper
from gflow.solvers.trackers import Tracker


class Toy(Stepper):
    """rho on 4 cells moving by a fixed rule, with a switch to break it at a given time."""

    kind = "toy"

    def __init__(self, max_dt=0.3, break_at=None, how="nan", edge=False):
        super().__init__(None, {})
        self.t, self.max_dt, self.break_at, self.how = 0.0, max_dt, break_at, how
        self.rho = np.array([0.0, 1.0, 1.0, 0.0]) if not edge else np.array([1.0, 0.5, 0.5, 0.0])
        self.rho /= self.rho.sum()
        self.taken = []

    def step(self, dt_max, fixed=False):
        dt = min(dt_max, self.max_dt)
        self.t += dt
        self.taken.append(dt)
        return dt

    def observe(self):
        rho, mass, extras = self.rho.copy(), 1.0, {}
        if self.break_at is not None and self.t >= self.break_at:
            if self.how == "nan":
                rho[1] = np.nan
            elif self.how == "mass":
                rho *= 1.01
                mass = 1.01
            elif self.how == "risk":
                return Observation(rho, 2e6, 2e6, mass)
            else:
                # a fifth of the particles' weight outside the box: the density bins the rest
                rho *= 0.8
                mass, extras["outside_mass"] = 0.8, 0.2
        return Observation(rho, 1.0 / (1 + self.t), 1.0 / (1 + self.t), mass, extras=extras)


def writer(path, stepper):
    return SnapshotWriter(path, case_text="", solver="toy", axes=("x",), coordinates=[np.arange(4) + 0.5])


def trackers(path, stepper, times, **kw):
    """What `gflow run` attaches, writing to `path`, without a progress bar."""
    return standard_trackers(writer(path, stepper), stepper, end=times[-1], progress=False, **kw)


def test_snapshot_times_are_hit_exactly(tmp_path):
    times = np.linspace(0, 1.0, 4)
    toy = Toy(max_dt=0.1)
    summary = run(toy, times, trackers(tmp_path / "r.h5", toy, times))
    assert sum(toy.taken) == pytest.approx(1.0, abs=1e-14)
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["time"][()].tolist() == times.tolist()
    assert summary.steps == len(toy.taken)
    check_snapshot(tmp_path / "r.h5")


@pytest.mark.parametrize("how,cause", [("nan", "non-finite"), ("mass", "mass drifted"),
                                       ("risk", "risk grew from 1 to 2e.06")])
def test_blow_up_stops_with_time_and_cause_keeping_earlier_snapshots(tmp_path, how, cause):
    times = np.linspace(0, 2.0, 5)
    toy = Toy(break_at=1.2, how=how)
    with pytest.raises(RunError, match=rf"t = 1.5: .*{cause}"):
        run(toy, times, trackers(tmp_path / "r.h5", toy, times))
    run_file = open_run(tmp_path / "r.h5")
    assert run_file.time.tolist() == [0.0, 0.5, 1.0]
    check_snapshot(tmp_path / "r.h5")


def test_mass_outside_the_box_warns_once_naming_the_solver_and_goes_on(tmp_path):
    """Issue 14: mass leaving a Lagrangian solver's box is not divergence (it stopped the run)."""
    warnings = []
    toy = Toy(break_at=0.5, how="outside")
    times = np.linspace(0, 2.0, 5)
    run(toy, times, trackers(tmp_path / "r.h5", toy, times, warn=warnings.append))
    assert open_run(tmp_path / "r.h5").time.tolist() == times.tolist()
    outside = [w for w in warnings if "outside the box" in w]
    assert outside == [w for w in warnings if w.startswith("toy: t = 0.5: 20% of the mass is outside")]
    assert len(outside) == 1


def test_boundary_pile_up_warns_once_naming_the_axis(tmp_path):
    warnings = []
    toy = Toy(edge=True)
    times = np.linspace(0, 1, 3)
    run(toy, times, trackers(tmp_path / "r.h5", toy, times, axes=("x",), warn=warnings.append))
    assert len(warnings) == 1 and "'x'" in warnings[0] and "boundary cells" in warnings[0]


class Recorder(Tracker):
    """Every hook call, in order."""

    def __init__(self, calls):
        self.calls = calls

    def start(self, t, obs):
        self.calls.append(("start", t))

    def handle(self, index, t, obs):
        self.calls.append(("handle", index, t))

    def finish(self):
        self.calls.append(("finish",))


def test_trackers_see_each_snapshot_once_and_always_finish():
    calls = []
    times = np.linspace(0, 1.0, 3)
    run(Toy(max_dt=0.3), times, [Recorder(calls)])
    assert calls == [("start", 0.0), ("handle", 0, 0.0), ("handle", 1, 0.5), ("handle", 2, 1.0), ("finish",)]
    # resumed at snapshot 1: the file holds it, so no tracker handles it again
    calls.clear()
    run(Toy(max_dt=0.3), times, [Recorder(calls)], start=1)
    assert calls == [("start", 0.5), ("handle", 2, 1.0), ("finish",)]


def test_a_failing_check_stops_before_the_writer_and_trackers_finish(tmp_path):
    calls = []
    toy = Toy(max_dt=0.1, break_at=0.5)
    times = np.linspace(0, 1.0, 5)
    with pytest.raises(RunError, match="t = 0.5"):
        run(toy, times, [*trackers(tmp_path / "r.h5", toy, times), Recorder(calls)])
    assert calls[-1] == ("finish",) and ("handle", 2, 0.5) not in calls
    assert list(open_run(tmp_path / "r.h5").time) == [0.0, 0.25]


def test_the_loop_says_when_the_step_is_the_users(tmp_path):
    seen = []

    class Fixed(Toy):
        def step(self, dt_max, fixed=False):
            seen.append(fixed)
            return super().step(dt_max, fixed)

    run(Fixed(), np.linspace(0, 1.0, 3), [], dt=0.2)
    run(Fixed(), np.linspace(0, 1.0, 3), [])
    assert True in seen and False in seen and seen.index(False) == len([s for s in seen if s])
