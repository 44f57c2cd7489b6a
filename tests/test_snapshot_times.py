"""Snapshot times (issue 18, item 4): `[time] times = [...]` and `spacing = "log"`.

The run file's `time` dataset holds exactly the times asked for; log spacing is geometric from
`first` to `end`; the default stays np.linspace bit for bit; bad lists are refused in one line;
a run with listed times resumes and re-reads its stored case.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ROOT

import gflow
from gflow import case_times
from gflow.case import case_from_text
from gflow.errors import InputError

QUICKSTART = (ROOT / "cases" / "quickstart.toml").read_text()
#: a coarse quickstart, its [time] table replaced by TIME
TEXT = QUICKSTART.split("[time]")[0] + "[time]\nTIME\n" + "[solver]" + QUICKSTART.split("[solver]")[1]
SMALL = ["grid.cells=[16,12]"]


def case_with(time: str):
    return case_from_text(TEXT.replace("TIME", time), "c.toml", SMALL)


def refused(time: str, key: str, words: str, overrides=()) -> None:
    with pytest.raises(InputError) as info:
        case_from_text(TEXT.replace("TIME", time), "c.toml", [*SMALL, *overrides])
    message = str(info.value)
    assert "\n" not in message and f"c.toml: {key}: " in message and words in message, message


def test_listed_times_are_written_exactly(tmp_path):
    """A tiny fv run through the Python API: `time` equals the list, with t = 0 put first."""
    from gflow.app.sweep import _state

    path = tmp_path / "case.toml"
    path.write_text(TEXT.replace("TIME", "times = [0.05, 0.1, 0.3]"))
    case = gflow.load_case(path, SMALL)
    # end and snapshots follow the list (the memory estimate and the step budget read them)
    assert case.times == (0.0, 0.05, 0.1, 0.3) and case.end == 0.3 and case.snapshots == 4
    (run,) = gflow.run(case, output=tmp_path / "out")
    assert run.time.tolist() == [0.0, 0.05, 0.1, 0.3]          # exactly, not to a tolerance
    assert run.case.times == case.times                        # the stored case text re-reads to the same times
    assert _state(case, {"fv": tmp_path / "out" / "fv.h5"}) == "complete"      # as a sweep counts it
    # resumed, the complete run is kept as it is
    assert gflow.run(case, output=tmp_path / "out", resume=True)[0].time.tolist() == [0.0, 0.05, 0.1, 0.3]


def test_log_spacing_is_geometric_and_written_so(tmp_path):
    case = case_with('end = 10.0\nsnapshots = 5\nspacing = "log"\nfirst = 0.01')
    np.testing.assert_allclose(case.times, [0.0, 0.01, 0.1, 1.0, 10.0], rtol=2e-15, atol=0)
    assert case.times[1] == 0.01 and case.times[-1] == 10.0 and case.end == 10.0 and case.snapshots == 5
    ratios = np.diff(np.log(case.times[1:]))
    np.testing.assert_allclose(ratios, math.log(10.0), rtol=1e-14)
    # first defaults to end / 1000; two snapshots are t = 0 and the end
    assert case_with('end = 2.0\nsnapshots = 3\nspacing = "log"').times == (0.0, 0.002, 2.0)
    assert case_with('end = 2.0\nsnapshots = 2\nspacing = "log"').times == (0.0, 2.0)
    path = tmp_path / "case.toml"
    path.write_text(TEXT.replace("TIME", 'end = 0.2\nsnapshots = 4\nspacing = "log"\nfirst = 0.002'))
    (run,) = gflow.run(gflow.load_case(path, SMALL), output=tmp_path / "out")
    assert run.time.tolist() == list(gflow.load_case(path, SMALL).times)
    np.testing.assert_allclose(run.time, [0.0, 0.002, 0.02, 0.2], rtol=2e-15)


def test_linear_times_are_linspace_bit_for_bit():
    case = case_with("end = 3.7\nsnapshots = 13")
    assert case.times == tuple(np.linspace(0.0, 3.7, 13).tolist()) and case.end == 3.7 and case.snapshots == 13
    assert case_with("end = 1.0").snapshots == 11                      # the default


def test_bad_times_are_refused_in_one_line(monkeypatch):
    refused("times = [0.0, 1.0, 1.0]", "time.times[2]", "strictly increasing")
    refused("times = [0.0, 2.0, 1.0]", "time.times[2]", "strictly increasing")
    refused("times = [-1.0, 1.0]", "time.times[0]", "finite and >= 0")
    refused("times = [0.0, nan]", "time.times[1]", "finite")
    refused("times = [0.0, inf]", "time.times[1]", "finite")
    refused("times = [0.0, true]", "time.times[1]", "must be a number")
    refused('times = [0.0, "1"]', "time.times[1]", "must be a number")
    refused("times = [0.0, 1" + "0" * 400 + "]", "time.times", "too large for a float")
    refused("times = []", "time.times", "non-empty list")
    refused("times = 1.0", "time.times", "non-empty list")
    refused("times = [0.0]", "time.times", "a positive time")
    refused("times = [0, 1]\nend = 1.0", "time.end", "either times")
    refused("times = [0, 1]\nsnapshots = 2", "time.snapshots", "either times")
    refused('times = [0, 1]\nspacing = "log"', "time.spacing", "either times")
    refused("times = [0, 1]", "time.end", "either times", ["time.end=1.0"])   # --set end on a listed case
    refused('end = 1.0\nspacing = "cubic"', "time.spacing", "unknown value 'cubic'")
    refused("end = 1.0\nfirst = 0.1", "time.first", "spacing = \"log\"")
    refused('end = 1.0\nspacing = "log"\nfirst = 1.0', "time.first", "below end")
    refused('end = 1.0\nspacing = "log"\nfirst = 0.0', "time.first", "positive")
    refused('end = 1.0\nsnapshots = 1000\nspacing = "log"\nfirst = 0.9999999999999999', "time.first", "not distinct")
    monkeypatch.setattr(case_times, "MAX_SNAPSHOTS", 3)
    refused("times = [0, 1, 2, 3]", "time.times", "at most 3 times")
    refused("times = [1, 2, 3]", "time.times", "more than the 3 snapshots")
    assert case_with("times = [0, 1, 2]").times == (0.0, 1.0, 2.0)
    refused("end = 1.0\nsnapshots = 4", "time.snapshots", "at most 3")

