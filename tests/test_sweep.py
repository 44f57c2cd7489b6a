"""Sweeps (`gflow sweep`, gflow/sweep.py; `gflow plot sweep.csv`, postprocess/sweep_plot.py).

The contract: a sweep on a Dask LocalCluster writes the same files, bit for bit, as running
its combinations one by one; started again it skips complete runs and resumes a stopped one
exactly; a failing combination is its row's status and the rest go on; a particle-count
study on the quickstart case converges (negative fitted slope of the error in m).
"""
from __future__ import annotations

import csv
import logging
import math

import h5py
import numpy as np
import pytest

from conftest import assert_same_results
from gflow.case import case_from_text, load_case
from gflow.errors import InputError
from gflow.app.execute import run_case
from gflow.app.sweep import choose_references, expand, parse_vary, run_name, run_sweep, split_values, toml_value
from gflow.postprocess.sweep_plot import fit_slope, read_sweep, sweep_lines
from tests.conftest import ROOT, TWO_LAYER_2D, run_gflow

PARTICLES = TWO_LAYER_2D + """
[solver]
kind = "particle"
particles = 64
"""

BOTH = TWO_LAYER_2D.replace("end = 1.0", "end = 0.5") + """
[[solvers]]
kind = "fv"
[[solvers]]
kind = "particle"
particles = 64
"""


def quiet(*args, **kwargs):
    pass


def read_csv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def same_file(a, b) -> None:
    """Every dataset (but the wall time, a measurement) and attribute of two snapshot files
    equal, bit for bit."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert set(fa) == set(fb)
    assert_same_results(a, b)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert set(fa.attrs) == set(fb.attrs)
        for key in fa.attrs:
            assert np.array_equal(fa.attrs[key], fb.attrs[key]), f"{a}: attribute {key} differs"


# ----------------------------------------------------------------------------- expanding

def test_vary_values_split_at_top_level_commas_and_parse_as_toml():
    assert split_values("[32,32],[64, 64]") == ["[32,32]", "[64, 64]"]
    assert split_values('"a,b",c') == ['"a,b"', "c"]
    axes = parse_vary(["grid.cells=[32,32],[64,64]", "solver.particles=100,1000", "solver.integrator=euler,rk4",
                       "regularization.temperature=0,1e-3"])
    assert axes == {"grid.cells": [[32, 32], [64, 64]], "solver.particles": [100, 1000],
                    "solver.integrator": ["euler", "rk4"], "regularization.temperature": [0, 1e-3]}
    for bad in ("solver.particles", "=1,2", "a..b=1", "solver.particles=1,,2"):
        with pytest.raises(InputError):
            parse_vary([bad])
    with pytest.raises(InputError, match="twice"):
        parse_vary(["a.b=1", "a.b=2"])


def test_toml_value_round_trips_through_set_parsing():
    from gflow.case import parse_override_value
    for value in (3, 0.1, 1e-300, -2.5, True, "euler", 'a "quoted" \\ name', [32, 64], [[1.0, 2.0]], {"a": 1}):
        assert parse_override_value(toml_value(value)) == value


def test_runs_are_the_product_in_key_order_with_safe_unique_names():
    runs = expand({"solver.particles": [100, 1000], "grid.cells": [[64, 64], [128, 128]]})
    assert [r.name for r in runs] == ["solver.particles=100__grid.cells=64x64",
                                      "solver.particles=100__grid.cells=128x128",
                                      "solver.particles=1000__grid.cells=64x64",
                                      "solver.particles=1000__grid.cells=128x128"]
    assert runs[1].overrides == ["solver.particles=100", "grid.cells=[128, 128]"]
    assert run_name([("data.file", "../x y/d.csv")]) == "data.file=.._x_y_d.csv"
    assert len(run_name([("description", "x" * 500)])) <= 150
    clash = expand({"description": ["a/b", "a b"]})        # both sanitise to a_b
    assert len({r.name.lower() for r in clash}) == 2


def test_sweep_table_in_a_case_file(write_case):
    case = case_from_text(PARTICLES + '\n[sweep]\n"solver.particles" = [10, 20]\nsolver.seed = [0, 1]\n')
    assert case.sweep == {"solver.particles": [10, 20], "solver.seed": [0, 1]}
    assert "sweep" not in case.text_for(case.solvers[0])      # a run's stored case is not the study
    for bad, key in (("x = 3", "sweep.x"), ("x = []", "sweep.x"), ("[sweep.solver]", "sweep.solver")):
        text = PARTICLES + ("\n" + bad if bad.startswith("[") else "\n[sweep]\n" + bad)
        with pytest.raises(InputError, match=key.replace(".", r"\.")):
            case_from_text(text, "c.toml")


def test_finest_run_of_each_group_is_its_reference():
    rows = [{"solver": "particle", "solver.particles": p, "solver.seed": s, "status": "done", "final_risk": 1.0,
             "resolution": int(p), "cells": 256, "path": f"{p}-{s}"} for s in ("0", "1") for p in ("10", "100")]
    rows.append({"solver": "particle", "solver.particles": "1000", "solver.seed": "0", "status": "failed: x"})
    refs = choose_references(rows, ["solver.particles", "solver.seed"])
    assert refs == {0: "100-0", 1: "100-0", 2: "100-1", 3: "100-1"}
    assert choose_references(rows[:1], ["solver.particles"]) == {}      # nothing finer: no reference
    assert set(choose_references(rows, ["solver.particles"], "ref.h5").values()) == {"ref.h5"}


# ----------------------------------------------------------------------------- running

def test_sweep_on_a_local_cluster_matches_runs_one_by_one_then_skips_and_resumes(write_case, tmp_path):
    path = write_case(BOTH)
    out = tmp_path / "sweep"
    vary = ["grid.cells=[16,16],[24,24]", "solver.particles=64,128"]
    # one combination stopped after its first snapshot: the sweep must resume it exactly
    stopped = expand(parse_vary(vary))[3]

    def stop(index, t, obs):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_case(load_case(path, stopped.overrides), out / stopped.name, progress=False, on_snapshot=stop, echo=quiet)

    first = run_sweep(path, vary=vary, out_dir=out, workers=2, echo=quiet)       # processes: the default path
    assert [(r["run"], r["solver"]) for r in first.rows] == [(r.name, k) for r in expand(parse_vary(vary))
                                                               for k in ("fv", "particle")]
    statuses = {(r["run"], r["solver"]): r["status"] for r in first.rows}
    assert statuses.pop((stopped.name, "fv")) == "done (resumed)"       # stopped in its first solver
    assert set(statuses.values()) == {"done"}
    for run in expand(parse_vary(vary)):
        alone = tmp_path / "alone" / run.name
        run_case(load_case(path, run.overrides), alone, progress=False, echo=quiet)
        for kind in ("fv", "particle"):
            same_file(out / run.name / f"{kind}.h5", alone / f"{kind}.h5")

    table = read_csv(out / "sweep.csv")
    assert len(table) == 8 and {r["grid.cells"] for r in table} == {"[16, 16]", "[24, 24]"}
    for row, result in zip(table, first.rows):
        assert float(row["final_risk"]) == result["final_risk"]           # full precision in the csv
        assert float(row["wall_time"]) > 0
    # the finer grid is each fv group's reference (solver.particles does not set an fv run's
    # resolution); the most particles on the finer grid is the one particle run's reference
    for row in table:
        finest = row["grid.cells"] == "[24, 24]" and (row["solver"] == "fv" or row["solver.particles"] == "128")
        if finest:
            assert row["reference"] == "self" and row["W1"] == ""
        else:
            wanted = "24x24__solver.particles=" + (row["solver.particles"] if row["solver"] == "fv" else "128")
            assert row["reference"] == f"grid.cells={wanted}/{row['solver']}.h5"
            if row["solver"] == "particle" and row["solver.particles"] == "128":
                # the same particles binned on another grid: W1 between the particles, and the risk, agree
                assert float(row["W1"]) == 0 and float(row["risk_error"]) == 0
            else:
                assert float(row["W1"]) > 0 and float(row["risk_error"]) > 0 and float(row["L1"]) > 0

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")}
    again = run_sweep(path, vary=vary, out_dir=out, processes=False, echo=quiet)
    assert {r["status"] for r in again.rows} == {"skipped (complete)"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")} == mtimes
    for a, b in zip(again.rows, first.rows):
        assert (a["final_risk"], a["wall_time"], a.get("W1")) == (b["final_risk"], b["wall_time"], b.get("W1"))


def test_a_failing_run_is_its_row_and_the_rest_go_on(write_case, tmp_path):
    from distributed import LocalCluster

    path = write_case(PARTICLES)
    # particles = 0 is a bad case (refused before any work); at T = 1e8 the noise drives the risk
    # beyond 1e6 times its start (a RunError in the worker; particles leaving the box are not
    # one). Through a scheduler's address, as --scheduler gives it (an in-process cluster here)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        result = run_sweep(path, vary=["solver.particles=0,64", "regularization.temperature=0,100000000"],
                           out_dir=tmp_path / "s", scheduler=cluster.scheduler_address, echo=quiet)
    status = {r["run"]: r["status"] for r in result.rows}
    assert status["solver.particles=64__regularization.temperature=0"] == "done"
    assert status["solver.particles=0__regularization.temperature=0"].startswith("failed: ")
    assert "solver.particles: must be at least 1" in status["solver.particles=0__regularization.temperature=100000000"]
    assert status["solver.particles=64__regularization.temperature=100000000"].startswith("failed: t = 0.5: ")
    assert "the risk grew" in status["solver.particles=64__regularization.temperature=100000000"]
    assert result.failed == 3
    table = read_csv(tmp_path / "s" / "sweep.csv")
    assert [r["status"] for r in table] == [r["status"] for r in result.rows]


def test_sweep_refuses_bad_arguments_before_any_work(write_case, tmp_path):
    path = write_case(PARTICLES)
    with pytest.raises(InputError, match="nothing to vary"):
        run_sweep(path, out_dir=tmp_path / "s", echo=quiet)
    with pytest.raises(InputError, match="--vary"):
        run_sweep(path, vary=["particles"], out_dir=tmp_path / "s", echo=quiet)
    with pytest.raises(InputError, match="solver.nope: unknown key .in every combination"):
        run_sweep(path, vary=["solver.nope=1,2"], out_dir=tmp_path / "s", echo=quiet)
    r = run_gflow("sweep", path, "--vary", "solver.particles=1,2", "--scheduler", "tcp://x:1", "--workers", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--workers" in r.stderr
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


# ----------------------------------------------------------------------------- the study

def test_particle_count_study_on_quickstart_converges_and_plots(tmp_path):
    """m = 100 .. 6400 particles at a smoke size; the finest run is the reference."""
    out = tmp_path / "study"
    r = run_gflow("sweep", ROOT / "cases" / "quickstart.toml", "--solver", "particle", "--set", "grid.cells=[32,32]",
                  "--set", "time.end=1.0", "--set", "time.snapshots=3", "--vary", "solver.particles=100,400,1600,6400",
                  "-o", out, "--workers", "2", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows, keys = read_sweep(out / "sweep.csv")
    assert keys == ["solver.particles"] and len(rows) == 4
    assert rows[-1]["reference"] == "self"
    (line,) = sweep_lines(rows, keys)
    assert list(line.resolution) == [100, 400, 1600]
    slopes = {e: fit_slope(line.resolution, line.errors[e])[0] for e in ("risk_error", "W1")}
    assert slopes["W1"] < -0.3 and slopes["risk_error"] < 0, slopes

    p = run_gflow("plot", out / "sweep.csv")
    assert p.returncode == 0, p.stderr
    assert (out / "sweep.png").stat().st_size > 10_000
    printed = {line.split(":")[0]: float(line.split(":")[1].split()[0]) for line in p.stdout.splitlines()
               if line.startswith("slope of")}
    assert math.isclose(printed["slope of W1 against resolution"], slopes["W1"], abs_tol=1e-3)


def test_plot_refuses_a_csv_that_is_not_a_sweep(tmp_path):
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    r = run_gflow("plot", bad)
    assert r.returncode == 2 and "not a gflow sweep.csv" in r.stderr
