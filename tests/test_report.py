"""Multi-solver runs report themselves: compare.txt and compare.png beside the run files."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gflow.app.cli import main
from gflow.app.outputs import save_figure, write_text
from gflow.postprocess.report import REPORT_FILES, build_report
from gflow.snapshots import open_run
from runfiles import write_particle_run
from gflow.solvers import REGISTRY
from conftest import TWO_LAYER_2D, check_snapshot


def _check_report(out_dir, times: int, pairs: int):
    lines = (out_dir / "compare.txt").read_text().splitlines()
    titles = [k for k, line in enumerate(lines) if line.split()[:3] == ["t", "risk", "A"]]
    assert len(titles) == pairs and sum(line.startswith("W1, W2: ") for line in lines) == pairs
    rows = lines[titles[0] + 1:]
    assert len(rows) == times and all(len(r) == len(lines[titles[0]]) for r in rows)
    with Image.open(out_dir / "compare.png") as image:
        assert image.size == (720, 560)
        assert np.asarray(image.convert("L"), dtype=float).var() / 255**2 > 0.01


def test_report_of_a_grid_and_a_particle_run(tmp_path, capsys):
    case = tmp_path / "case.toml"
    case.write_text(TWO_LAYER_2D)
    assert main(["run", str(case), "-o", str(tmp_path), "--set", "grid.cells=[16,16]"]) == 0
    fv = tmp_path / "fv.h5"
    positions = np.random.default_rng(0).normal(0.0, [0.5, 0.8], size=(3, 300, 2))
    particles = write_particle_run(tmp_path / "particle.h5", [[-4.0, 4.0], [-5.0, 5.0]], (16, 16), positions,
                                   times=open_run(fv).time)
    text, figure = build_report([fv, particles])
    assert REPORT_FILES == ("compare.txt", "compare.png")
    write_text(tmp_path / REPORT_FILES[0], text)
    save_figure(figure, tmp_path / REPORT_FILES[1])
    _check_report(tmp_path, times=3, pairs=1)
    assert "reference A = fv" in (tmp_path / "compare.txt").read_text()


@pytest.mark.skipif("particle" not in REGISTRY, reason="the particle solver is not registered yet")
def test_gflow_run_with_two_solvers_writes_the_report(tmp_path, capsys):
    case = tmp_path / "case.toml"
    case.write_text(TWO_LAYER_2D + '[[solvers]]\nkind = "fv"\n[[solvers]]\nkind = "particle"\nparticles = 200\n')
    assert main(["run", str(case), "-o", str(tmp_path / "out"), "--set", "grid.cells=[16,16]"]) == 0
    out = capsys.readouterr().out
    for name in ("fv.h5", "particle.h5", "compare.txt", "compare.png"):
        assert f"wrote {tmp_path / 'out' / name}" in out
    check_snapshot(tmp_path / "out" / "particle.h5")
    _check_report(tmp_path / "out", times=3, pairs=1)
    assert "and B's 200 particles" in (tmp_path / "out" / "compare.txt").read_text()
