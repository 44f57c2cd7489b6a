"""Hostile run files (issue 15): info, compare, plot, check and run --resume treat a snapshot file
as untrusted input. Whatever it declares or links to, the answer is one line naming the file on
stderr and exit status 2 (an `InputError`): never a traceback, a hang, an allocation of what
the file declares, a read of another file, or a terminal control character echoed.

(a) hand-made files, one per class: huge declared shapes (chunked and never written, so they
cost nothing on disk), wrong dtypes and ranks, oversized or deep attributes, soft and external
links, virtual datasets, external storage, control characters, a stored case naming a data
file, two runs whose common grid would be enormous; the huge ones also run the installed
command in a child process whose peak memory is measured. (b) hypothesis damages a real run
file (made once per module by a tiny bundled case) and asserts that the reader and the
checker only ever raise `InputError` or return problems.

Not covered: HDF5 itself (2.0.0) never returns from reading a variable-length string whose
global heap collection has zeroed bytes, and once aborted (double free) in H5DSis_scale on
flipped bytes (gflow check no longer calls it). A hang inside the C library cannot be
interrupted from Python in-process; the generated damage leaves global heaps alone.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tomllib

import h5py
import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gflow.app.cli import main
from gflow.errors import InputError
from gflow.run_file import MAX_CASE_BYTES, MAX_CASE_DEPTH, open_run, printable
from gflow.snapshot_check import problems
from runfiles import CASE_2D, gaussian, write_grid_run
from conftest import ROOT

QUICKSTART = ROOT / "cases" / "quickstart.toml"
#: a few steps on an 8 x 8 grid, 64 particles, no numba compilation
TINY = ["--set", "grid.cells=[8,8]", "--set", "time.end=0.1", "--set", "time.snapshots=3",
        "--set", "solver.kernel=numpy"]
ALL = ("info", "plot", "compare", "check")
SNAPSHOTS = ("plot", "compare", "check")     # info reads metadata only
#: peak resident memory (kB) a refused file may cost the command: far below what it declares
PEAK_KB = 600_000
BOX = [[-4.0, 4.0], [-4.0, 4.0]]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A real fv run and a real particle run (with its saved solver state) of the quickstart case."""
    out = tmp_path_factory.mktemp("made")
    assert main(["run", str(QUICKSTART), "-o", str(out), "--solver", "fv", *TINY]) == 0
    assert main(["run", str(QUICKSTART), "-o", str(out), "--solver", "particle", *TINY,
                 "--set", "solver.particles=64"]) == 0
    runs = {"fv": out / "fv.h5", "particle": out / "particle.h5"}
    for path in runs.values():
        assert problems(path) == []
    return runs


def copy_of(source, path):
    shutil.copyfile(source, path)
    return path


def latest_copy(source, path):
    """A copy in HDF5's newest object format, whose attributes may exceed 64 kB (dense storage);
    its dimension scales do not survive, so only the reader, not `gflow check`, is asked about it."""
    with h5py.File(source) as f, h5py.File(path, "w", libver="latest") as g:
        for name in f:
            f.copy(f[name], g, name=name)
        g.attrs.update(dict(f.attrs))
        if "restart" in g:       # a group made anew: a copied object keeps its old header
            state = dict(g["restart"].attrs)
            del g["restart"]
            g.create_group("restart").attrs.update(state)
    return path


def refused(capsys, argv, path) -> str:
    """Run the command in-process: exit 2, one line on stderr naming `path`, nothing else."""
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert status == 2, (argv, out)
    assert out.err.count("\n") == 1 and out.err.startswith("gflow: ") and str(path) in out.err, out.err
    assert "Traceback" not in out.err and "\x1b" not in out.err and "\r" not in out.err
    assert out.out == ""
    return out.err


def command(name, bad, good, tmp_path):
    return {"info": ["info", bad], "plot": ["plot", bad, "-o", tmp_path / "out.png"],
            "compare": ["compare", good, bad], "check": ["check", bad]}[name]


# ----------------------------------------------------------------------------- (a) one file per class

def _replace(f, name, **kwargs):
    """Dataset `name` replaced (its dimension scales dropped with it)."""
    del f[name]
    return f.create_dataset(name, **kwargs)


def _huge(shape, chunks):
    return dict(shape=shape, maxshape=tuple(None if i == 0 else n for i, n in enumerate(shape)),
                dtype="f8", chunks=chunks)


def time_2e9(f, tmp):
    _replace(f, "time", **_huge((2_000_000_000,), (1024,)))


def weights_1e10(f, tmp):
    _replace(f, "weights", **_huge((10**10,), (1024,)))


def risk_1e10(f, tmp):
    _replace(f, "risk", **_huge((10**10,), (1024,)))


def coordinate_1e9(f, tmp):
    _replace(f, "a", **_huge((10**9,), (1024,)))


def density_absurd(f, tmp):
    _replace(f, "density", **_huge((3, 10**6, 10**6), (1, 1, 1024)))


def positions_2e9(f, tmp):
    _replace(f, "positions", **_huge((2 * 10**9, 64, 2), (1, 64, 2)))


def chunk_bomb(f, tmp):
    # one 64 MB chunk of zeros, compressed to almost nothing, behind a 3 x 8 x 8 density
    rho = f["density"][()]
    ds = _replace(f, "density", shape=rho.shape, maxshape=(None, 8, 8), dtype="f8", chunks=(2**17, 8, 8),
                  compression="gzip")
    ds[...] = rho


def density_rows_unwritten(f, tmp):
    # 50 snapshots in time and the scalars, 3 stored density rows: the rest would read as fill
    for name in ("time", "risk", "energy", "mass"):
        f[name].resize(50, axis=0)
        f[name][...] = np.arange(50.0) if name == "time" else 1.0
    f["density"].resize(50, axis=0)


def time_strings(f, tmp):
    _replace(f, "time", data=np.array(["0", "1", "2"], dtype=object), dtype=h5py.string_dtype())


def density_compound(f, tmp):
    _replace(f, "density", shape=(3, 8, 8), dtype=np.dtype([("x", "f8"), ("y", "i4")]))


def weights_vlen(f, tmp):
    ds = _replace(f, "weights", shape=(64,), dtype=h5py.vlen_dtype("f8"))
    ds[0] = np.arange(3.0)


def time_0d(f, tmp):
    _replace(f, "time", data=0.0)


def time_3d(f, tmp):
    _replace(f, "time", data=np.zeros((3, 1, 1)))


def coordinate_2d(f, tmp):
    _replace(f, "a", data=np.zeros((8, 1)))


def time_nan(f, tmp):
    f["time"][1] = np.nan


def coordinates_decreasing(f, tmp):
    f["a"][...] = f["a"][()][::-1]


def case_2mb(f, tmp):
    f.attrs["case"] = "#" * (2 * MAX_CASE_BYTES)


def case_deep(f, tmp):
    f.attrs["case"] = "a = " + "[" * 3000 + "]" * 3000


def case_just_too_deep(f, tmp):
    # parses, but nests one level more than a case file could use: reader and checker agree
    f.attrs["case"] = "a = " + "[" * MAX_CASE_DEPTH + "]" * MAX_CASE_DEPTH


def case_fixed_string_huge(f, tmp):
    f.attrs.create("case", np.array([b"x" * 1000] * 2000), dtype="S1000")


def axes_many(f, tmp):
    f.attrs["axes"] = [f"x{i}" for i in range(1000)]


def axis_path(f, tmp):
    f.attrs["axes"] = ["a", "restart/w"]


def axis_escape(f, tmp):
    f.attrs["axes"] = ["a", "w\x1b[2J"]


def solver_long(f, tmp):
    f.attrs["solver"] = "x" * 10_000


def solver_number(f, tmp):
    f.attrs["solver"] = 3


def attribute_array_huge(f, tmp):
    f.attrs["extra"] = np.zeros(100_000)


def attributes_many(f, tmp):
    for i in range(100):
        f.attrs[f"extra{i}"] = i


def _other(tmp):
    """Another HDF5 file, holding datasets a link could point at."""
    path = tmp / "other.h5"
    with h5py.File(path, "w") as g:
        g["time"] = np.arange(3.0)
        g["density"] = np.ones((3, 8, 8))
    return path


def time_external_link(f, tmp):
    del f["time"]
    f["time"] = h5py.ExternalLink(str(_other(tmp)), "/time")


def weights_external_dev_zero(f, tmp):
    del f["weights"]
    f["weights"] = h5py.ExternalLink("/dev/zero", "/weights")


def density_soft_link(f, tmp):
    del f["density"]
    f["density"] = h5py.SoftLink("/a")


def coordinate_soft_link(f, tmp):
    del f["a"]
    f["a"] = h5py.SoftLink("/w")


def density_virtual(f, tmp):
    layout = h5py.VirtualLayout(shape=(3, 8, 8), dtype="f8")
    layout[...] = h5py.VirtualSource(str(_other(tmp)), "density", shape=(3, 8, 8))
    del f["density"]
    f.create_virtual_dataset("density", layout)


def mass_external_storage(f, tmp):
    raw = tmp / "raw.bin"
    raw.write_bytes(np.ones(3).tobytes())
    _replace(f, "mass", shape=(3,), dtype="f8", external=[(str(raw), 0, 24)])


#: name -> (the run it damages, the damage, the commands that must refuse it)
HOSTILE = {
    "time_2e9": ("fv", time_2e9, ALL),
    "weights_1e10": ("particle", weights_1e10, ALL),
    "risk_1e10": ("fv", risk_1e10, ALL),
    "coordinate_1e9": ("fv", coordinate_1e9, ALL),
    "density_absurd": ("fv", density_absurd, SNAPSHOTS),
    "positions_2e9": ("particle", positions_2e9, SNAPSHOTS),
    "chunk_bomb": ("fv", chunk_bomb, SNAPSHOTS),
    # compare reads only the times in common, which were written
    "density_rows_unwritten": ("fv", density_rows_unwritten, ("plot", "check")),
    "time_strings": ("fv", time_strings, ALL),
    "density_compound": ("fv", density_compound, SNAPSHOTS),
    "weights_vlen": ("particle", weights_vlen, ALL),
    "time_0d": ("fv", time_0d, ALL),
    "time_3d": ("fv", time_3d, ALL),
    "coordinate_2d": ("fv", coordinate_2d, ALL),
    "time_nan": ("fv", time_nan, ALL),
    "coordinates_decreasing": ("fv", coordinates_decreasing, ALL),
    "case_2mb": ("fv", case_2mb, ALL),
    "case_deep": ("fv", case_deep, ALL),
    "case_just_too_deep": ("fv", case_just_too_deep, ALL),
    "case_fixed_string_huge": ("fv", case_fixed_string_huge, ("info", "plot", "compare")),
    "axes_many": ("fv", axes_many, ALL),
    "axis_path": ("fv", axis_path, ALL),
    "axis_escape": ("fv", axis_escape, ALL),
    "solver_long": ("fv", solver_long, ALL),
    "solver_number": ("fv", solver_number, ALL),
    "attribute_array_huge": ("fv", attribute_array_huge, ("info", "plot", "compare")),
    "attributes_many": ("fv", attributes_many, ("info", "plot", "compare")),
    "time_external_link": ("fv", time_external_link, ALL),
    "weights_external_dev_zero": ("particle", weights_external_dev_zero, ALL),
    "density_soft_link": ("fv", density_soft_link, SNAPSHOTS),
    "coordinate_soft_link": ("fv", coordinate_soft_link, ALL),
    "density_virtual": ("fv", density_virtual, SNAPSHOTS),
    "mass_external_storage": ("fv", mass_external_storage, ALL),
}


#: the damages that need attributes over 64 kB
LATEST = {"case_fixed_string_huge", "attribute_array_huge"}


def hostile(made, name, tmp_path):
    which, damage, _ = HOSTILE[name]
    make = latest_copy if name in LATEST else copy_of
    path = make(made[which], tmp_path / f"{name}.h5")
    with h5py.File(path, "a") as f:
        damage(f, tmp_path)
    return path, made[which]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_one_line_and_exit_2(made, tmp_path, capsys, name):
    bad, good = hostile(made, name, tmp_path)
    for cmd in HOSTILE[name][2]:
        refused(capsys, command(cmd, bad, good, tmp_path), bad)
    assert not (tmp_path / "out.png").exists()


def test_huge_declarations_are_refused_without_allocating(made, tmp_path):
    """The installed command in a child process: the refusal costs megabytes, not what is declared."""
    cases = []
    for name, cmd in (("time_2e9", "info"), ("weights_1e10", "info"), ("coordinate_1e9", "info"),
                      ("risk_1e10", "info"), ("density_absurd", "plot"), ("positions_2e9", "compare")):
        sub = tmp_path / name
        sub.mkdir()
        bad, good = hostile(made, name, sub)
        cases.append([str(a) for a in command(cmd, bad, good, sub)])
    far = write_grid_run(tmp_path / "far.h5", [[1e9, 1e9 + 8.0], [-4.0, 4.0]], (8, 8),
                         [gaussian([[1e9, 1e9 + 8.0], [-4.0, 4.0]], (8, 8), [1e9 + 4.0, 0.0], [1.0, 1.0])] * 2)
    near = write_grid_run(tmp_path / "near.h5", BOX, (8, 8), [gaussian(BOX, (8, 8), [0.0, 0.0], [1.0, 1.0])] * 2)
    cases.append(["compare", str(near), str(far)])
    # one wrapper process per command, so that RUSAGE_CHILDREN is that command's own peak
    wrapper = ("import json, resource, subprocess, sys\n"
               "r = subprocess.run([sys.executable, '-m', 'gflow.app.cli', *sys.argv[1:]], capture_output=True,"
               " text=True, timeout=120)\n"
               "print(json.dumps([r.returncode, r.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    for argv in cases:
        done = subprocess.run([sys.executable, "-c", wrapper, *argv], capture_output=True, text=True, timeout=180)
        status, err, peak_kb = json.loads(done.stdout)
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert peak_kb < PEAK_KB, (argv, peak_kb)


def test_compare_refuses_an_enormous_common_grid(tmp_path, capsys):
    """Runs on far-apart boxes: their union box at the coarser spacing would be 1e9 cells wide."""
    far_box = [[1e9, 1e9 + 8.0], [-4.0, 4.0]]
    far = write_grid_run(tmp_path / "far.h5", far_box, (8, 8),
                         [gaussian(far_box, (8, 8), [1e9 + 4.0, 0.0], [1.0, 1.0])] * 2)
    near = write_grid_run(tmp_path / "near.h5", BOX, (8, 8), [gaussian(BOX, (8, 8), [0.0, 0.0], [1.0, 1.0])] * 2)
    err = refused(capsys, ["compare", near, far], far)
    assert "common grid" in err and "cells" in err


def test_a_finer_run_on_a_shifted_box_still_compares(tmp_path, capsys):
    """The bound is on the common grid only: unaligned grids of ordinary size compare as before."""
    shifted = [[-3.9, 4.1], [-4.0, 4.0]]
    a = write_grid_run(tmp_path / "a.h5", BOX, (64, 64), [gaussian(BOX, (64, 64), [0.0, 0.0], [1.0, 1.0])] * 2)
    b = write_grid_run(tmp_path / "b.h5", shifted, (48, 40), [gaussian(shifted, (48, 40), [0.0, 0.0], [1.0, 1.0])] * 2)
    assert main(["compare", str(a), str(b), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 2 and 0 < rows[0]["W2"] < 0.3


def test_a_one_cell_axis_with_broken_stored_bounds_is_refused(tmp_path, capsys):
    text = CASE_2D.replace("[[-4.0, 4.0], [-4.0, 4.0]]", "[[5.0, 1.0], [-4.0, 4.0]]")
    assert text != CASE_2D
    path = write_grid_run(tmp_path / "one.h5", BOX, (1, 8), [np.full((1, 8), 1.0 / 64)] * 2, case_text=text)
    err = refused(capsys, ["plot", path, "-o", tmp_path / "out.png"], path)
    assert "grid.bounds[0]" in err


def test_control_characters_never_reach_the_terminal(made, tmp_path, capsys):
    path = copy_of(made["fv"], tmp_path / "escapes.h5")
    with h5py.File(path, "a") as f:
        f.attrs["solver"] = "fv\x1b[31m\r"
        f.attrs["gflow_version"] = "\x1b]0;owned\x07"
        doc = tomllib.loads(f.attrs["case"])
        doc["name"] = "\x1b[2J\u202eevil"
        f.attrs["case"] = tomli_w.dumps(doc)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\r\x07\u202e"), out
    assert "\\x1b[31m" in out and "fv" in out
    # and in a line that quotes the file: `gflow check`'s
    with h5py.File(path, "a") as f:
        f.attrs["format"] = "\x1b[2Jgflow"
    err = refused(capsys, ["check", path], path)
    assert "\\x1b" in err


def test_printable_escapes_and_bounds():
    assert printable("a\x1b[0m\r\nb\u202e") == "a\\x1b[0m\\r\\nb\\u202e"
    assert printable("x" * 500, 10) == "x" * 10 + "..."
    assert printable("θ ok") == "θ ok"


def test_plot_never_reads_a_file_the_stored_case_names(made, tmp_path, capsys, monkeypatch):
    """The stored case names a data file: the figure is drawn without its f(x) panel, and neither
    the case parser's header peek nor the CSV reader is reached."""
    import builtins
    import io
    import os

    from gflow.postprocess.plot import network_model

    data = tmp_path / "data.csv"
    data.write_text("x1,y\n0.0,1.0\n0.5,2.0\n")
    opened = []

    def watching(real):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == str(data):
                opened.append(file)
            return real(file, *args, **kwargs)
        return wrapper

    for module, name in ((builtins, "open"), (io, "open"), (os, "open")):
        monkeypatch.setattr(module, name, watching(getattr(module, name)))
    path = copy_of(made["fv"], tmp_path / "named.h5")
    with h5py.File(path, "a") as f:
        doc = tomllib.loads(f.attrs["case"])
        doc["data"] = {"file": str(data)}
        del doc["target"]               # the file's y column gives the targets (a [target] beside it is refused)
        f.attrs["case"] = tomli_w.dumps(doc)
    run = open_run(path)
    assert run.named_files() == ["data.file"]
    model, why = network_model(run)
    assert model is None and "data.file" in why
    assert main(["plot", str(path), "-o", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").stat().st_size > 0 and opened == []
    capsys.readouterr()
    # the watch works: parsing the stored case as a case file does open it
    assert open_run(path).case.files == {"data.file": data} and opened


def test_the_stored_case_parses_with_a_case_files_limits(made, tmp_path):
    path = copy_of(made["fv"], tmp_path / "case.h5")
    with h5py.File(path, "a") as f:
        f.attrs["case"] = "a = " + "[" * (MAX_CASE_DEPTH + 1) + "]" * (MAX_CASE_DEPTH + 1)
    with pytest.raises(InputError, match="more than 32 deep"):
        open_run(path)
    with h5py.File(path, "a") as f:
        doc = tomllib.loads(made_case(made))
        doc["grid"]["cells"] = [10**6, 10**6]
        f.attrs["case"] = tomli_w.dumps(doc)
    run = open_run(path)            # metadata only: the case is parsed when asked for
    with pytest.raises(InputError, match="cells"):
        run.case
    assert run.document["grid"]["cells"] == [10**6, 10**6]


def made_case(made) -> str:
    return open_run(made["fv"]).case_text


def _restart_soft_link(f):
    del f["restart"]
    f["restart"] = h5py.SoftLink("/density")


def _restart_huge_dataset(f):
    f["restart"].create_dataset("big", shape=(10**10,), dtype="f8", chunks=(1024,))


def _restart_huge_attribute(f):
    f["restart"].attrs["h_next"] = np.zeros(100_000)


@pytest.mark.parametrize("damage", [_restart_soft_link, _restart_huge_dataset, _restart_huge_attribute])
def test_resume_from_a_hostile_restart_state_is_one_line(made, tmp_path, capsys, damage):
    """`gflow run --resume` reads the saved solver state of a stopped run: damaged, one line."""
    out = tmp_path / "out"
    out.mkdir()
    path = latest_copy(made["particle"], out / "particle.h5")
    with h5py.File(path, "a") as f:
        assert "restart" in f
        f["time"].resize(2, axis=0)           # stopped after two of three snapshots
        f["restart"].attrs["snapshot"] = 1
        damage(f)
    argv = ["run", QUICKSTART, "-o", out, "--solver", "particle", *TINY, "--set", "solver.particles=64", "--resume"]
    err = refused(capsys, argv, path)
    assert "state" in err or "restart" in err


# ----------------------------------------------------------------------------- (b) damaged files, generated

NAMES = ["time", "risk", "energy", "mass", "density", "a", "w", "positions", "weights", "particle", "component",
         "restart"]
ATTRS = ["format", "format_version", "gflow_version", "solver", "case", "axes"]
WEIRD_VALUES = st.sampled_from([0, -1, 2**40, 1.5, np.nan, "", "x" * 70_000, b"\xff\xfe", "\x1b[31m", "$\\frac$",
                                "a = [[[[1]]]]", np.zeros(3), np.zeros((2, 2)), np.array([1, 2], dtype="i8"),
                                ["a", "w", "a"], ["a", "w", "b"], ["", "w"], ["time", "density"], [1, 2], True])
REPLACEMENTS = st.sampled_from([
    dict(data=0.0), dict(data=np.zeros((3, 1, 1))), dict(data=np.zeros(0)), dict(data=np.arange(3, dtype="i4")),
    dict(data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype()),
    dict(shape=(3,), dtype=np.dtype([("x", "f8")])), dict(shape=(3, 8, 8), dtype="f4"),
    dict(shape=(3, 64, 2), dtype="f8"), dict(shape=(2_000_000_000,), dtype="f8", chunks=(1024,), maxshape=(None,)),
    dict(shape=(3, 10**6, 10**6), dtype="f8", chunks=(1, 1, 1024)), dict(data=np.full((3, 8, 8), np.inf)),
    dict(shape=(64,), dtype=h5py.vlen_dtype("f8")), dict(data=np.ones(8) * np.nan)])


@st.composite
def damage(draw):
    """A list of edits of a run file: h5py-level ("edit", ...) and byte-level ("bytes", ...)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "replace", "attr", "del_attr", "soft", "external", "group",
                                     "truncate", "zero_bytes", "dataset_attr"]))
        if kind == "truncate":
            edits.append(("truncate", draw(st.floats(0.0, 1.0))))
        elif kind == "zero_bytes":
            edits.append(("zero_bytes", draw(st.floats(0.0, 1.0)), draw(st.integers(1, 64))))
        elif kind in ("attr", "del_attr"):
            edits.append((kind, draw(st.sampled_from(ATTRS)), draw(WEIRD_VALUES)))
        elif kind == "dataset_attr":
            edits.append((kind, draw(st.sampled_from(NAMES)), draw(st.sampled_from(["CLASS", "snapshot", "NAME"])),
                          draw(WEIRD_VALUES)))
        elif kind == "replace":
            edits.append((kind, draw(st.sampled_from(NAMES)), draw(REPLACEMENTS)))
        else:
            edits.append((kind, draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMES))))
    return edits


def global_heaps(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each HDF5 global heap collection ("GCOL", where variable-length strings live)."""
    found, at = [], data.find(b"GCOL")
    while at != -1 and at + 16 <= len(data):
        found.append((at, at + int.from_bytes(data[at + 8:at + 16], "little")))
        at = data.find(b"GCOL", at + 1)
    return found


def apply(path, edits, other):
    for edit in edits:
        kind = edit[0]
        if kind in ("truncate", "zero_bytes"):
            data = bytearray(path.read_bytes())
            at = int(edit[1] * len(data))
            if kind == "truncate":
                data = data[:at]
            elif any(lo < at + edit[2] and at < hi for lo, hi in global_heaps(data)):
                # HDF5 2.0 loops for ever reading a variable-length string from a global heap with
                # zeroed bytes (a library hang no caller can interrupt; see the module text)
                continue
            else:
                data[at:at + edit[2]] = bytes(len(data[at:at + edit[2]]))
            path.write_bytes(bytes(data))
            continue
        try:
            with h5py.File(path, "a") as f:
                name = edit[1]
                if kind == "attr":
                    f.attrs[name] = edit[2]
                elif kind == "del_attr" and name in f.attrs:
                    del f.attrs[name]
                elif kind == "dataset_attr" and f.get(name, getlink=True) is not None:
                    f[name].attrs[edit[2]] = edit[3]
                elif kind in ("delete", "replace", "soft", "external", "group") and name in f:
                    del f[name]
                    if kind == "replace":
                        f.create_dataset(name, **edit[2])
                    elif kind == "soft":
                        f[name] = h5py.SoftLink(f"/{edit[2]}")
                    elif kind == "external":
                        f[name] = h5py.ExternalLink(str(other), f"/{edit[2]}")
                    elif kind == "group":
                        f.create_group(name).attrs["snapshot"] = 0
        except (OSError, KeyError, ValueError, TypeError, RuntimeError):
            return      # h5py cannot make this edit (the file is already damaged): test what there is


def read_everything(path) -> None:
    """What info, compare, plot and resume read; only `InputError` may come out."""
    try:
        run = open_run(path)
        for i in range(len(run.time)):
            run.snapshot(i)
        run.restart()
        run.named_files()
        run.dataset("particle")
        assert isinstance(printable(run.solver), str)
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc) and len(str(exc)) < 2000, str(exc)


def check_problems(path) -> None:
    found = problems(path)
    assert isinstance(found, list) and all(isinstance(p, str) and "\x1b" not in p and len(p) <= 503 for p in found)


def damaged_files(examples: int):
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
    @given(which=st.sampled_from(["fv", "particle"]), edits=damage())
    def check(made, tmp_path, which, edits):
        path = copy_of(made[which], tmp_path / "damaged.h5")
        other = made["particle" if which == "fv" else "fv"]
        apply(path, edits, other)
        read_everything(path)
        check_problems(path)
    return check


def test_damaged_files_raise_only_input_errors(made, tmp_path):
    damaged_files(120)(made, tmp_path)


@pytest.mark.slow
def test_damaged_files_raise_only_input_errors_many(made, tmp_path):
    damaged_files(3000)(made, tmp_path)


def test_the_bounds_are_the_case_limits():
    from gflow.case import MAX_CELLS, MAX_SNAPSHOTS
    from gflow.postprocess.regrid import MAX_COMMON_CELLS
    from gflow import run_file

    assert run_file.MAX_CELLS == MAX_CELLS and run_file.MAX_SNAPSHOTS == MAX_SNAPSHOTS
    assert MAX_COMMON_CELLS == MAX_CELLS and run_file.MAX_PARTICLES == 10**8
    # one snapshot row of the largest grid, or of the most particles in two dimensions, fits one read
    assert run_file.MAX_ROW_VALUES >= max(MAX_CELLS, 2 * run_file.MAX_PARTICLES)
    assert math.log2(run_file.MAX_CASE_BYTES) == 20
