"""`gflow ensemble`: S particle runs per width through the sweep machinery, tabulated against the
quadrature reference and its predicted spread (docs/fluctuations.md)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from gflow.app.cli import main
from gflow.snapshots import open_run
from test_fluctuation import case_text

WIDTHS, SEEDS = (10, 20), 4


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    d = tmp_path_factory.mktemp("ensemble")
    case = d / "case.toml"
    # the fluctuation case with random neurons: the ensemble runs draw them, its reference does not
    case.write_text(case_text(end=0.5, snapshots=3).replace('init = "quadrature"', 'init = "random"')
                    .replace("fluctuation = true", ""))
    args = ["ensemble", str(case), "--widths", ",".join(map(str, WIDTHS)), "--seeds", str(SEEDS),
            "-o", str(d / "out"), "--workers", "1"]
    assert main(args) == 0
    return case, d / "out", args


def test_the_table_is_the_statistics_of_the_run_files(ensemble):
    _, out, _ = ensemble
    rows = list(csv.DictReader((out / "ensemble.csv").open()))
    assert len(rows) == len(WIDTHS) * 3
    reference = open_run(out / "reference" / "particle.h5")
    predicted = reference.dataset("risk_fluctuation")
    assert reference.attrs.get("solver", "particle") and np.all(predicted > 0)
    for m in WIDTHS:
        R = np.array([open_run(out / "runs" / f"solver.particles={m}__solver.seed={s}" / "particle.h5").risk
                      for s in range(SEEDS)])
        block = [r for r in rows if int(r["width"]) == m]
        for k, row in enumerate(block):
            sd = R[:, k].std(ddof=1)
            assert float(row["mean"]) == pytest.approx(R[:, k].mean(), rel=1e-12)
            assert float(row["sqrt_m_sd"]) == pytest.approx(np.sqrt(m) * sd, rel=1e-12)
            assert float(row["sqrt_m_sd_se"]) == pytest.approx(np.sqrt(m) * sd / np.sqrt(2 * (SEEDS - 1)), rel=1e-12)
            assert float(row["m_bias"]) == pytest.approx(m * (R[:, k].mean() - reference.risk[k]), rel=1e-10)
            assert float(row["predicted_sqrt_m_sd"]) == pytest.approx(predicted[k], rel=1e-12)
            assert int(row["runs"]) == SEEDS
            # the exact 1/m bias at t = 0, from the reference's quadrature
            assert (row["predicted_m_bias"] == "nan") == (k > 0)
    from gflow.case import case_from_text
    from gflow.problem import build_problem
    model = build_problem(case_from_text(reference.case_text)).model
    first = open_run(out / "reference" / "particle.h5").positions(0)
    assert float(rows[0]["predicted_m_bias"]) == pytest.approx(model.initial_bias(first, reference.weights), rel=1e-12)
    assert (out / "ensemble.png").stat().st_size > 10_000


def test_started_again_it_keeps_every_run(ensemble, capsys):
    case, out, args = ensemble
    files = sorted((out / "runs").glob("*/particle.h5")) + [out / "reference" / "particle.h5"]
    before = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "already complete" in text
    assert {p: p.stat().st_mtime_ns for p in files} == before


@pytest.mark.parametrize("extra,words", [
    (["--widths", "10,x"], "--widths '10,x'"),
    (["--widths", "10,10"], "distinct"),
    (["--seeds", "1"], "at least 2 runs"),
    (["--set", 'solver.init="quadrature"'], 'give init = "random"'),
    (["--set", "regularization.temperature=0.01"], "T must be 0"),
])
def test_bad_arguments_are_one_line(ensemble, tmp_path, capsys, extra, words):
    case, _, _ = ensemble
    args = ["ensemble", str(case), "--widths", "10", "--seeds", "3", "-o", str(tmp_path / "o"), *extra]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
