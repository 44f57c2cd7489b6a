"""The Python API (gflow.load_case, run, open_run, compare, plot, movie, check) and docs/api.md.

The documentation's example runs as written; each function returns what its docstring says,
refuses bad input with the command line's one-line `InputError`, and `import gflow` stays light.
"""
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gflow
from conftest import ROOT, TWO_LAYER_2D, has_module
from gflow.case import Case
from gflow.snapshots import Run

DOC = ROOT / "docs" / "api.md"
SMALL = ["grid.cells=[16,16]", "time.end=0.5", "time.snapshots=3", "solver.particles=300"]


def doc_code() -> str:
    """The ```python blocks of docs/api.md, in order, as one script."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)
    assert len(blocks) >= 6
    return "\n".join(blocks)


@pytest.mark.skipif(not has_module("xarray") or not has_module("h5netcdf"), reason="needs xarray + h5netcdf")
def test_the_documented_example_runs(tmp_path):
    # as a user runs it from the repository root: the bundled cases at ./cases, temporary files here
    (tmp_path / "cases").symlink_to(ROOT / "cases")
    script = tmp_path / "api_example.py"
    script.write_text(doc_code())
    env = dict(os.environ, TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fv: " in result.stdout and "particle: " in result.stdout   # echo=print
    assert "['fv.h5', 'fv.png', 'particle.gif', 'particle.h5']" in result.stdout


@pytest.fixture
def case_path(write_case):
    return write_case(TWO_LAYER_2D)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small fv run and one particle run, shared by the reading tests."""
    out = tmp_path_factory.mktemp("api_runs")
    path = out / "small.toml"
    path.write_text(TWO_LAYER_2D)
    return gflow.run(gflow.load_case(path, SMALL, ["fv", "particle"]), output=out / "runs")


# ----------------------------------------------------------------------------- load_case

def test_load_case_applies_overrides_and_solvers(case_path):
    case = gflow.load_case(case_path, ["grid.cells=[8,12]", "time.end=0.25"], ["particle", "fv"])
    assert isinstance(case, Case)
    assert case.cells == (8, 12) and case.end == 0.25
    assert [s.kind for s in case.solvers] == ["particle", "fv"]
    # one override as a string, solvers as --solver writes them
    same = gflow.load_case(case_path, "grid.cells=[8,12]", "particle, fv")
    assert same.cells == (8, 12) and [s.kind for s in same.solvers] == ["particle", "fv"]
    assert [s.kind for s in gflow.load_case(case_path).solvers] == ["fv"]


@pytest.mark.parametrize("override, named", [("grid.cellz=[4,4]", "grid.cellz"), ("time.end=-1", "time.end"),
                                             ("gridcells", "gridcells")])
def test_a_bad_override_is_an_input_error_naming_the_key(case_path, override, named):
    with pytest.raises(gflow.InputError, match=re.escape(named)) as info:
        gflow.load_case(case_path, [override])
    assert "\n" not in str(info.value)


def test_unknown_solver_and_missing_file_are_input_errors(case_path, tmp_path):
    with pytest.raises(gflow.InputError, match="unknown solver 'nope'"):
        gflow.load_case(case_path, solvers=["nope"])
    with pytest.raises(gflow.InputError, match="cannot read"):
        gflow.load_case(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- run

def test_run_returns_the_opened_runs_in_solver_order(case_path, tmp_path, capsys):
    case = gflow.load_case(case_path, SMALL, ["particle", "fv"])
    out = tmp_path / "out"
    runs = gflow.run(case, output=out)
    assert [type(r) for r in runs] == [Run] * 2
    assert [r.solver for r in runs] == ["particle", "fv"]
    assert [r.path for r in runs] == [out / "particle.h5", out / "fv.h5"]
    assert all(len(r.time) == 3 and r.time[-1] == 0.5 for r in runs)
    assert capsys.readouterr() == ("", "")        # quiet by default
    # an existing run is refused, as by gflow run; resume keeps complete runs
    with pytest.raises(gflow.InputError, match="a run is already there"):
        gflow.run(case, output=out)
    lines = []
    again = gflow.run(case, solvers="fv", output=out, resume=True, echo=lines.append)
    assert [r.path for r in again] == [out / "fv.h5"] and lines == [f"fv: already complete ({out / 'fv.h5'})"]
    echoed = []
    gflow.run(case, solvers=["fv"], output=out, force=True, echo=echoed.append)
    assert len(echoed) == 1 and echoed[0].startswith("fv: ") and "steps in" in echoed[0]


def test_run_takes_a_path_and_defaults_to_the_output_dir(write_case, tmp_path):
    path = write_case(TWO_LAYER_2D + f'[output]\ndir = "{(tmp_path / "default").as_posix()}"\n', "with_output")
    (run,) = gflow.run(path, solvers="fv")
    assert run.path == tmp_path / "default" / "fv.h5" and run.solver == "fv"


def test_run_of_a_case_refuses_a_solver_it_does_not_have(case_path, tmp_path):
    case = gflow.load_case(case_path)
    with pytest.raises(gflow.InputError, match="solver 'particle' is not in this case"):
        gflow.run(case, solvers=["particle"], output=tmp_path)
    assert not list(tmp_path.glob("*.h5"))


def test_run_loop_warnings_are_python_warnings(write_case, tmp_path):
    # a box that cuts the initial Gaussian: mass in the boundary cells from the first snapshot
    path = write_case(TWO_LAYER_2D.replace("[[-4.0, 4.0], [-5.0, 5.0]]", "[[-1.0, 1.0], [-1.5, 1.5]]"), "tight")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gflow.run(path, output=tmp_path, echo=None)
    texts = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("boundary cells" in t and t.startswith("gflow: ") for t in texts), texts


# ----------------------------------------------------------------------------- reading

def test_open_run_is_the_snapshot_reader(runs, tmp_path):
    from gflow.snapshots import open_run

    assert gflow.open_run is open_run
    fv = gflow.open_run(runs[0].path)
    np.testing.assert_array_equal(fv.risk, runs[0].risk)
    assert fv.snapshot(-1).density.shape == (16, 16)
    with pytest.raises(gflow.InputError, match="no such file"):
        gflow.open_run(tmp_path / "missing.h5")


def test_compare_takes_runs_or_paths(runs):
    from gflow.postprocess.compare import Comparison, table

    by_run = gflow.compare(*runs)
    by_path = gflow.compare(str(runs[0].path), runs[1].path)
    assert isinstance(by_run, Comparison) and by_run.rows == by_path.rows
    assert [row["time"] for row in by_run.rows] == [0.0, 0.25, 0.5]
    assert all(row["W1"] > 0 and row["L1"] > 0 for row in by_run.rows)
    assert table(by_run).startswith(f"A: {runs[0].path}")
    assert gflow.compare(runs[0], runs[0]).rows[-1]["W1"] == 0.0


def test_plot_returns_the_figure_and_saves_it(runs, tmp_path):
    from matplotlib.figure import Figure

    fig = gflow.plot(runs[0])
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())   # nothing written without a path
    fig = gflow.plot(runs[1].path, tmp_path / "p.png", columns=2, dpi=50)
    assert isinstance(fig, Figure) and (tmp_path / "p.png").stat().st_size > 0
    with pytest.raises(gflow.InputError, match="unknown image type"):
        gflow.plot(runs[0], tmp_path / "p.xyz")
    with pytest.raises(gflow.InputError, match="at least 1"):
        gflow.plot(runs[0], columns=0)


def test_movie_writes_a_gif(runs, tmp_path):
    from PIL import Image

    path = gflow.movie(runs[0], tmp_path / "m.gif", dpi=40)
    assert path == tmp_path / "m.gif"
    with Image.open(path) as movie:
        assert movie.n_frames == 3
    with pytest.raises(gflow.InputError, match="a movie is .gif or .mp4"):
        gflow.movie(runs[0], tmp_path / "m.png")


def test_check_lists_the_problems(runs, tmp_path):
    import h5py

    assert gflow.check(runs[0].path) == [] and gflow.check(runs[1].path) == []
    assert gflow.check(tmp_path / "missing.h5") == ["no such file"]
    broken = tmp_path / "broken.h5"
    broken.write_bytes(runs[0].path.read_bytes())
    with h5py.File(broken, "a") as f:
        del f.attrs["solver"]
        f.attrs["format"] = "other"
    found = gflow.check(broken)
    assert len(found) >= 2 and all(isinstance(p, str) and "\n" not in p for p in found)
    assert any("solver" in p for p in found) and any("format" in p for p in found)


# ----------------------------------------------------------------------------- the package

def test_version_on_the_command_line():
    for command in (["-m", "gflow", "--version"], ["-m", "gflow.app.cli", "--version"]):
        result = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout == f"gflow {gflow.__version__}\n", result
    result = subprocess.run([sys.executable, "-m", "gflow", "--help"], capture_output=True, text=True, timeout=60)
    assert "docs/api.md" in " ".join(result.stdout.split())


def test_import_gflow_is_light():
    code = ("import sys, gflow\n"
            "heavy = ('gflow.solvers', 'gflow.postprocess', 'gflow.app', 'matplotlib', 'numba')\n"
            "print([m for m in heavy if m in sys.modules])\n"
            "gflow.load_case\n"
            "print([m for m in ('gflow.solvers', 'matplotlib') if m in sys.modules])\n"
            "print(sorted(set(gflow.__all__) - set(dir(gflow))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]", "[]"]
