"""The run loop: exact snapshot times, stops on blow-up keeping earlier snapshots, warnings."""
import h5py
import numpy as np
import pytest

from conftest import check_snapshot
from gflow.errors import RunError
from gflow.solvers.loop import run
from gflow.snapshots import SnapshotWriter, open_run
from gflow.solvers.base import Observation, Stepper


class Toy(Stepper):
    """rho on 4 cells moving by a fixed rule, with a switch to break it at a given time."""

    kind = "toy"

    def __init__(self, max_dt=0.3, break_at=None, how="nan", edge=False):
        super().__init__(None, {})
        self.t, self.max_dt, self.break_at, self.how = 0.0, max_dt, break_at, how
        self.rho = np.array([0.0, 1.0, 1.0, 0.0]) if not edge else np.array([1.0, 0.5, 0.5, 0.0])
        self.rho /= self.rho.sum()
        self.taken = []

    def step(self, dt_max):
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
            else:
                extras["outside_mass"] = 0.2
        return Observation(rho, 1.0 / (1 + self.t), 1.0 / (1 + self.t), mass, extras=extras)


def writer(path, stepper):
    return SnapshotWriter(path, case_text="", solver="toy", axes=("x",), coordinates=[np.arange(4) + 0.5])


def test_snapshot_times_are_hit_exactly(tmp_path):
    times = np.linspace(0, 1.0, 4)
    toy = Toy(max_dt=0.1)
    summary = run(toy, times, writer(tmp_path / "r.h5", toy), progress=False)
    assert sum(toy.taken) == pytest.approx(1.0, abs=1e-14)
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["time"][()].tolist() == times.tolist()
    assert summary.steps == len(toy.taken)
    check_snapshot(tmp_path / "r.h5")


@pytest.mark.parametrize("how,cause", [("nan", "non-finite"), ("mass", "mass drifted"),
                                       ("outside", "left the box")])
def test_blow_up_stops_with_time_and_cause_keeping_earlier_snapshots(tmp_path, how, cause):
    times = np.linspace(0, 2.0, 5)
    toy = Toy(break_at=1.2, how=how)
    with pytest.raises(RunError, match=rf"t = 1.5: .*{cause}"):
        run(toy, times, writer(tmp_path / "r.h5", toy), progress=False)
    run_file = open_run(tmp_path / "r.h5")
    assert run_file.time.tolist() == [0.0, 0.5, 1.0]
    check_snapshot(tmp_path / "r.h5")


def test_boundary_pile_up_warns_once_naming_the_axis(tmp_path):
    warnings = []
    toy = Toy(edge=True)
    run(toy, np.linspace(0, 1, 3), writer(tmp_path / "r.h5", toy), progress=False, axes=("x",),
        warn=warnings.append)
    assert len(warnings) == 1 and "'x'" in warnings[0] and "boundary cells" in warnings[0]
