"""The output directory is not a way out (issue 15, part 5).

Bad output paths (a symbolic link at a run file, its lock file, a report, a figure; a directory
that is a file, under a file, in /proc or /sys; an output that is an input) are one line on
stderr, exit status 2, never a traceback, before any work; a link's target keeps its bytes;
nothing already written is overwritten without --force, and what is written replaces the old
file atomically (`gflow.app.outputs`).
"""
from __future__ import annotations

import errno
import os
import stat
import subprocess

import pytest

from conftest import ROOT, run_gflow
from gflow.app import outputs
from gflow.app.cli import main
from gflow.app.execute import output_lock
from gflow.errors import InputError, RunError

CASE = ROOT / "cases" / "semicircle.toml"
TINY = ["--set", "grid.cells=[16]", "--set", "time.end=0.1", "--set", "time.snapshots=2"]
SECRET = b"export PATH=/usr/bin  # a file the run must never touch\n"


def gflow(*args):
    """`gflow ARGS` in a subprocess, as a user runs it (a traceback would reach its stderr)."""
    return run_gflow(*args, timeout=300)


@pytest.fixture
def cli(capsys):
    """`gflow ARGS` in this process (no start-up cost; an uncaught exception fails the test)."""
    def call(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return call


def refused(result, *words) -> str:
    """Assert exit status 2 with one line on stderr naming `words`; return that line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("gflow: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def secret(tmp_path):
    """A file an attacker points links at (think ~/.bashrc)."""
    path = tmp_path / "bashrc"
    path.write_bytes(SECRET)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small fv runs (different grids) to compare and plot."""
    d = tmp_path_factory.mktemp("runs")
    for name, cells in (("a", 16), ("b", 20)):
        assert main([str(a) for a in ("run", CASE, "-o", d / name, *TINY, "--set", f"grid.cells=[{cells}]")]) == 0
    return d / "a" / "fv.h5", d / "b" / "fv.h5"


# ----------------------------------------------------------------------------- gflow run

def test_a_symlink_at_the_lock_file_is_refused_and_its_target_untouched(tmp_path, secret):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".fv.h5.lock").symlink_to(secret)
    refused(gflow("run", CASE, "-o", out, *TINY), ".fv.h5.lock", "symbolic link")
    assert secret.read_bytes() == SECRET       # open(lock, "w") truncated it
    assert not (out / "fv.h5").exists()


def test_a_hard_link_at_the_lock_file_is_neither_truncated_nor_written(tmp_path, secret, cli):
    out = tmp_path / "out"
    out.mkdir()
    os.link(secret, out / ".fv.h5.lock")       # a link O_NOFOLLOW cannot see: the lock must not write
    r = cli("run", CASE, "-o", out, *TINY)
    assert r.returncode == 0, r.stderr
    assert secret.read_bytes() == SECRET and (out / "fv.h5").exists()
    assert not (out / ".fv.h5.lock").exists()   # the run removes its lock name (the other name stays)


def test_a_fifo_at_the_lock_file_is_refused_without_blocking(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / ".fv.h5.lock")
    refused(run_gflow("run", CASE, "-o", out, *TINY, timeout=60), ".fv.h5.lock", "not a regular file")


@pytest.mark.parametrize("flag", [None, "--force", "--resume"])
@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_run_file_is_refused_with_or_without_force(tmp_path, secret, flag, dangling, cli):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere.h5" if dangling else secret
    (out / "fv.h5").symlink_to(target)
    refused(cli("run", CASE, "-o", out, *TINY, *([flag] if flag else [])), "fv.h5", "symbolic link")
    assert os.path.islink(out / "fv.h5")        # the link is the user's to remove
    if dangling:
        assert not target.exists()              # nothing was created through it
    else:
        assert secret.read_bytes() == SECRET


def test_a_directory_at_the_run_file_is_refused_with_force(tmp_path, cli):
    (tmp_path / "out" / "fv.h5").mkdir(parents=True)
    refused(cli("run", CASE, "-o", tmp_path / "out", *TINY, "--force"), "fv.h5", "is a directory")


def _unusable_dirs(tmp_path):
    (tmp_path / "somefile").write_text("not a directory\n")
    yield "a file", tmp_path / "somefile"
    yield "under a file", tmp_path / "somefile" / "sub"
    yield "in /proc", "/proc/gflow-no-such-dir"
    if os.path.isdir("/sys"):
        yield "in /sys", "/sys/gflow-no-such-dir"
    (tmp_path / "nowhere").symlink_to(tmp_path / "missing")
    yield "a dangling link", tmp_path / "nowhere"


def test_unusable_output_directories_are_one_line_before_any_work(tmp_path, cli):
    for what, out in _unusable_dirs(tmp_path):
        line = refused(cli("run", CASE, "-o", out, *TINY))
        assert str(out) in line, (what, line)
    refused(gflow("run", CASE, "-o", "/proc/gflow-no-such-dir", *TINY), "/proc/gflow-no-such-dir")
    assert (tmp_path / "somefile").read_text() == "not a directory\n"
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o555 directory")
def test_a_read_only_output_directory_is_one_line(tmp_path, cli):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        refused(cli("run", CASE, "-o", out, *TINY), str(out), "cannot write")
    finally:
        out.chmod(0o755)


def test_an_output_directory_that_is_a_symlink_is_fine(tmp_path, cli):
    real = tmp_path / "disk" / "runs"
    real.mkdir(parents=True)
    (tmp_path / "runs").symlink_to(real)
    r = cli("run", CASE, "-o", tmp_path / "runs", *TINY)
    assert r.returncode == 0, r.stderr
    assert (real / "fv.h5").is_file() and not (real / "fv.h5").is_symlink()


# ----------------------------------------------------------------------------- the report of gflow run

MULTI = ["--solver", "fv,particle", "--set", "solver.particles=50"]


def test_the_report_of_a_multi_solver_run_is_overwritten_only_with_force(tmp_path, secret, cli):
    # a directory holding another comparison (its runs moved away): refused, before any work
    out = tmp_path / "out"
    out.mkdir()
    (out / "compare.txt").write_bytes(b"an earlier comparison\n")
    refused(gflow("run", CASE, "-o", out, *TINY, *MULTI), "compare.txt", "--force")
    assert (out / "compare.txt").read_bytes() == b"an earlier comparison\n"
    assert sorted(p.name for p in out.iterdir()) == ["compare.txt"]

    # a link at the figure: refused even with --force, its target untouched, nothing run
    (out / "compare.png").symlink_to(secret)
    refused(cli("run", CASE, "-o", out, *TINY, *MULTI, "--force"), "compare.png", "symbolic link")
    assert secret.read_bytes() == SECRET and not (out / "fv.h5").exists()
    (out / "compare.png").unlink()

    # --force rewrites it, from the new runs
    r = cli("run", CASE, "-o", out, *TINY, *MULTI, "--force")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out / 'compare.txt'}" in r.stdout and f"wrote {out / 'compare.png'}" in r.stdout
    text = (out / "compare.txt").read_text()
    assert text.startswith("2 runs; reference A = fv")
    assert stat.S_IMODE((out / "compare.txt").stat().st_mode) == 0o666 & ~_umask()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]   # no temporary, no lock

    # and without --force the runs and their report stay as they are
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused(cli("run", CASE, "-o", out, *TINY, *MULTI), "a run is already there")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- gflow compare

def test_compare_outputs_are_not_overwritten_without_force(runs, tmp_path, cli):
    a, b = runs
    for option, name in (("--json", "c.json"), ("--csv", "c.csv"), ("--plot", "c.png")):
        path = tmp_path / name
        path.write_bytes(b"an earlier result\n")
        refused(gflow("compare", a, b, option, path), name, "--force")
        assert path.read_bytes() == b"an earlier result\n"
    r = cli("compare", a, b, "--json", tmp_path / "c.json", "--csv", tmp_path / "c.csv", "--force")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.json").read_text().startswith("{") and "time" in (tmp_path / "c.csv").read_text()


@pytest.mark.parametrize("option, name", [("--json", "c.json"), ("--csv", "c.csv"), ("--plot", "c.png")])
def test_compare_refuses_a_symlink_at_an_output_even_with_force(runs, tmp_path, secret, option, name, cli):
    a, b = runs
    (tmp_path / name).symlink_to(secret)
    refused(cli("compare", a, b, option, tmp_path / name, "--force"), name, "symbolic link")
    assert secret.read_bytes() == SECRET


def test_compare_refuses_an_output_that_is_an_input_or_given_twice(runs, tmp_path, cli):
    a, b = runs
    before = a.read_bytes()
    refused(cli("compare", a, b, "--json", a, "--force"), "one of the inputs")
    assert a.read_bytes() == before
    refused(cli("compare", a, b, "--json", tmp_path / "x", "--csv", tmp_path / "x"), "two outputs")
    assert not (tmp_path / "x").exists()


def test_compare_output_directories_that_cannot_be_written_are_one_line(runs, tmp_path, cli):
    a, b = runs
    for what, out in _unusable_dirs(tmp_path):
        line = refused(cli("compare", a, b, "--csv", f"{out}/c.csv"))
        assert str(out) in line, (what, line)


# ----------------------------------------------------------------------------- gflow plot

def test_plot_outputs_are_not_overwritten_without_force(runs, tmp_path, secret, cli):
    a, _ = runs
    png, gif = tmp_path / "f.png", tmp_path / "f.gif"
    png.write_bytes(b"an earlier figure")
    refused(cli("plot", a, "-o", png), "f.png", "--force")
    assert png.read_bytes() == b"an earlier figure"
    gif.symlink_to(secret)
    refused(gflow("plot", a, "-o", png, "--movie", gif, "--force"), "f.gif", "symbolic link")
    assert png.read_bytes() == b"an earlier figure" and secret.read_bytes() == SECRET    # before any work
    gif.unlink()
    r = cli("plot", a, "-o", png, "--movie", gif, "--dpi", "30", "--force")
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and gif.read_bytes()[:3] == b"GIF"
    (tmp_path / "somefile").write_text("not a directory\n")
    refused(cli("plot", a, "-o", tmp_path / "somefile" / "f.png"), "somefile", "not a directory")
    refused(gflow("plot", a, "-o", tmp_path / "f2.png", "--movie", "/proc/gflow-no-such-dir/m.gif"), "/proc")
    assert not (tmp_path / "f2.png").exists()       # refused before the figure was written


def test_plot_of_a_sweep_table_refuses_an_existing_figure_before_reading_it(tmp_path, cli):
    table, figure = tmp_path / "sweep.csv", tmp_path / "sweep.png"
    table.write_text("run,solver,status\n")
    figure.write_bytes(b"an earlier figure")
    refused(cli("plot", table), "sweep.png", "--force")
    assert figure.read_bytes() == b"an earlier figure"


# ----------------------------------------------------------------------------- gflow sweep

def test_sweep_refuses_a_symlink_at_its_table_and_an_unusable_directory(tmp_path, secret):
    from gflow.app.sweep import run_sweep

    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.csv").symlink_to(secret)
    with pytest.raises(InputError, match="sweep.csv: is a symbolic link"):
        run_sweep(CASE, vary=["grid.cells=[8],[12]"], out_dir=out, echo=lambda line: None)
    assert secret.read_bytes() == SECRET and sorted(p.name for p in out.iterdir()) == ["sweep.csv"]
    r = gflow("sweep", CASE, "--vary", "grid.cells=[8],[12]", "-o", secret / "sub")
    refused(r, "bashrc")


def test_the_sweep_table_is_replaced_whole(tmp_path):
    from gflow.app.sweep import _write_table

    path = tmp_path / "sweep.csv"
    path.write_text("old table\n")
    _write_table([{"run": "a", "solver": "fv", "status": "done", "path": str(tmp_path / "a" / "fv.h5")}],
                 ["grid.cells"], path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("run,solver,grid.cells,status") and lines[1].startswith("a,fv,,done")
    assert "a/fv.h5" in lines[1] and str(tmp_path) not in lines[1]      # relative, as write_csv makes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv"]


# ----------------------------------------------------------------------------- the helpers

def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "compare.txt"
    path.write_text("the good comparison\n")
    with pytest.raises(RuntimeError, match="killed"):
        with outputs.replacing(path) as tmp:
            tmp.write_text("half a comp")
            raise RuntimeError("killed midway")
    with pytest.raises(RunError, match="compare.txt: cannot write: No space left on device"):
        with outputs.replacing(path) as tmp:
            tmp.write_text("half a comp")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(KeyboardInterrupt):
        with outputs.replacing(path) as tmp:
            raise KeyboardInterrupt
    assert path.read_text() == "the good comparison\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.txt"]


def test_a_failing_flush_to_disk_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text("{}\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RunError, match="No space left"):
        outputs.write_text(path, '{"new": 1}\n')
    assert path.read_text() == "{}\n" and sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_a_figure_that_fails_to_render_leaves_the_old_one(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"the good figure")

    class Broken:
        def savefig(self, target, format):
            with open(target, "wb") as handle:
                handle.write(b"\x89PNG half")
            raise ValueError("renderer died")
    with pytest.raises(ValueError):
        outputs.save_figure(Broken(), path)
    assert path.read_bytes() == b"the good figure" and sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_the_write_helpers_never_write_through_a_link(tmp_path, secret):
    link = tmp_path / "out.txt"
    link.symlink_to(secret)
    for write in (lambda: outputs.write_text(link, "x"), lambda: outputs.check_output(link, force=True)):
        with pytest.raises(InputError, match="symbolic link"):
            write()
    assert secret.read_bytes() == SECRET and link.is_symlink()


def test_check_output_refuses_existing_files_without_force(tmp_path):
    path = tmp_path / "sub" / "x.csv"
    assert outputs.check_output(path) == path and path.parent.is_dir()    # the directory is made
    path.write_text("kept\n")
    with pytest.raises(InputError, match="x.csv: already exists; use --force"):
        outputs.check_output(path)
    assert outputs.check_output(path, force=True) == path
    assert path.read_text() == "kept\n" and sorted(p.name for p in path.parent.iterdir()) == ["x.csv"]


def test_the_lock_refuses_a_second_holder_and_is_removed_after(tmp_path):
    path = tmp_path / "fv.h5"
    with output_lock(path):
        assert (tmp_path / ".fv.h5.lock").is_file()
        with pytest.raises(InputError, match="another gflow run is writing"):
            with output_lock(path):
                pass
    assert not (tmp_path / ".fv.h5.lock").exists()
    with output_lock(path):      # and can be taken again
        pass


def test_a_lock_file_unlinked_as_it_is_taken_is_taken_again(tmp_path, monkeypatch):
    """The race of a run ending: B opens the lock file, A unlinks it and releases it, B's flock
    succeeds on a file no one else will ever open; B must lock the file the name now holds."""
    from gflow.app import execute

    path = tmp_path / "fv.h5"
    lock = tmp_path / ".fv.h5.lock"
    opened = []
    real_open = execute._open_lock

    def open_then_lose_the_race(lock_path):
        fd = real_open(lock_path)
        if not opened:           # the first time: the name is unlinked between open and flock
            os.unlink(lock_path)
        opened.append(os.fstat(fd).st_ino)
        return fd
    monkeypatch.setattr(execute, "_open_lock", open_then_lose_the_race)
    with output_lock(path):
        assert len(opened) == 2 and lock.exists() and os.stat(lock).st_ino == opened[-1]


def test_an_output_directory_name_too_long_is_one_line(tmp_path):
    result = run_gflow("run", ROOT / "cases" / "quickstart.toml", "-o", tmp_path / ("d" * 300), timeout=60)
    assert result.returncode == 2 and "File name too long" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
