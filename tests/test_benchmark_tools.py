"""The benchmark bookkeeping: the comparison of two runs and the generated performance table."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare, report
from benchmarks.goals import verdict

ROOT = Path(__file__).resolve().parents[1]


def test_compare_flags_numbers_more_than_the_tolerance_apart(tmp_path, capsys):
    a = {"fv_step_over_floor_512": 2.0, "particle_speedup_vs_torch": [3.0, 2.0], "fv_fused_512": True,
         "only_a": 1.0, "machine": {"cores": 2}}
    b = {"fv_step_over_floor_512": 2.3, "particle_speedup_vs_torch": [3.1, 1.5], "fv_fused_512": True}
    rows = {r[0]: r for r in compare.differences(a, b, 0.2)}
    assert set(rows) == {"fv_step_over_floor_512", "particle_speedup_vs_torch[0]", "particle_speedup_vs_torch[1]"}
    assert rows["fv_step_over_floor_512"][3] == pytest.approx(1.15) and not rows["fv_step_over_floor_512"][4]
    assert rows["particle_speedup_vs_torch[1]"][4] and not rows["particle_speedup_vs_torch[0]"][4]
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps(a)), fb.write_text(json.dumps(b))
    assert compare.main([str(fa), str(fb)]) == 1
    assert "particle_speedup_vs_torch[1]" in capsys.readouterr().out.splitlines()[-1]
    assert compare.main([str(fa), str(fa)]) == 0
    fb.write_text("{not json")
    assert compare.main([str(fa), str(fb)]) == 2
    assert "b.json: cannot read" in capsys.readouterr().err


def test_compare_ratios_leaves_out_times_ranges_and_flags(tmp_path):
    """`--ratios` judges only ratios to a same-run baseline: a doubled wall time or range end is
    not flagged, a ratio 30% off is."""
    a = {"fv_step_over_floor_512": 2.0, "fv_step_over_floor_512_range": [1.5, 3.0], "fv_step_ms_512": 3.0,
         "particle_speedup_vs_torch": [3.0, 2.0], "fv_cost_advantage_vs_particles_1e4_is_extrapolated": 1,
         "fluctuation_cost_advantage": 10.0}
    b = {"fv_step_over_floor_512": 2.1, "fv_step_over_floor_512_range": [1.5, 6.0], "fv_step_ms_512": 6.0,
         "particle_speedup_vs_torch": [3.0, 2.1], "fv_cost_advantage_vs_particles_1e4_is_extrapolated": 0,
         "fluctuation_cost_advantage": 13.0}
    keys = [r[0] for r in compare.differences(a, b, 0.2, ratios=True)]
    assert keys == ["fv_step_over_floor_512", "particle_speedup_vs_torch[0]", "particle_speedup_vs_torch[1]",
                    "fluctuation_cost_advantage"]
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps(a)), fb.write_text(json.dumps(b))
    assert compare.main([str(fa), str(fb), "--ratios"]) == 1      # the advantage moved by 30%
    b["fluctuation_cost_advantage"] = 11.0
    fb.write_text(json.dumps(b))
    assert compare.main([str(fa), str(fb), "--ratios"]) == 0
    assert compare.main([str(fa), str(fb)]) == 1                  # every number: the times doubled


def test_performance_page_quotes_the_committed_results():
    """docs/performance.md's table is what `python -m benchmarks.report` makes of the committed
    results: a new --save without regenerating the page fails here."""
    results = json.loads(report.RESULTS.read_text())
    page = report.PAGE.read_text()
    assert report.render(page, results) == page
    for key, value in results.items():
        if not isinstance(value, dict) and not key.endswith("_range"):
            assert f"| `{key}` |" in page


def test_table_rows_carry_ranges_and_verdicts():
    text = report.table({"fv_step_over_floor_512": 2.5, "fv_step_over_floor_512_range": [2.4, 2.7],
                         "machine": {"cores": 2, "date": "d", "wall_s": 3.0}})
    assert "| `fv_step_over_floor_512` | 2.5 | [2.4, 2.7] | meets <= 3 |" in text
    assert verdict("fv_step_over_floor_128cubed", 4.5) == "MISSES <= 4"
    assert verdict("particle_speedup_vs_torch", [1.2, None]) == "skipped"


def test_nested_ranges_are_formatted_entry_by_entry():
    from benchmarks.goals import format_value
    assert format_value([[4.123456, 5.0], [1.0, 2.25]]) == "[[4.12, 5], [1, 2.25]]"


def test_a_slow_calibration_runs_the_measure_again_and_keeps_the_quieter_attempt():
    """`run_calibrated`: a calibration 40% slower than the run's typical figure makes the
    measure run again; the attempt kept is the one whose machine was closest to typical, and a
    quiet first attempt is not repeated."""
    from benchmarks.calibration import run_calibrated, slowdown, typical

    assert slowdown({"a": 1.4, "b": 0.9}, {"a": 1.0, "b": 1.0}) == pytest.approx(0.4)
    assert slowdown({"a": 0.8}, {"a": 1.0}) == 0.0
    assert typical({"a": [3.0, 1.0, 2.0]}) == {"a": 2.0}
    seen = {"a": [1.0] * 5}
    clocks = iter([{"a": 1.4}, {"a": 1.0}, {"a": 1.0}, {"a": 1.05}])
    results = iter([{"x": "slow"}, {"x": "quiet"}])
    sleeps = []
    kept, records = run_calibrated(lambda: next(results), seen, retries=2, clock=lambda: next(clocks),
                                   sleep=sleeps.append, pause=3.0, tolerance=0.15)
    assert kept == {"x": "quiet"} and sleeps == [3.0]
    assert [r["kept"] for r in records] == [False, True]
    assert records[0]["slowdown"] == pytest.approx(0.4) and records[1]["slowdown"] == pytest.approx(0.05)
    assert seen["a"] == [1.0] * 5 + [1.4, 1.0, 1.0, 1.05]
    # retries exhausted: the least slow of the slow attempts
    clocks = iter([{"a": 2.0}, {"a": 2.0}, {"a": 1.5}, {"a": 1.6}])
    results = iter([{"x": 1}, {"x": 2}])
    kept, records = run_calibrated(lambda: next(results), seen, retries=1, clock=lambda: next(clocks),
                                   sleep=lambda s: None, tolerance=0.15)
    assert kept == {"x": 2} and len(records) == 2 and all(r["slowdown"] > 0.15 for r in records)
    # within the tolerance of typical: one attempt
    clocks = iter([{"a": 1.1}, {"a": 1.2}])
    kept, records = run_calibrated(lambda: {"x": 3}, seen, retries=1, clock=lambda: next(clocks))
    assert kept == {"x": 3} and len(records) == 1
    assert records[0]["slowdown"] == pytest.approx(1.2 / typical(seen)["a"] - 1.0) and records[0]["slowdown"] > 0.1


def test_block_rounds_times_each_function_in_blocks_and_round_ratio_takes_the_median_round():
    from benchmarks.timing import MIN_REPEATS, block_rounds, round_medians, round_ratio

    calls = []
    fa, fb = (lambda: calls.append("a")), (lambda: calls.append("b"))
    ta, tb = block_rounds([fa, fb], [MIN_REPEATS, MIN_REPEATS + 1], rounds=2, pause=0.0, warmup=1)
    assert ta.shape == (2, MIN_REPEATS) and tb.shape == (2, MIN_REPEATS + 1)
    block = ["a"] * (MIN_REPEATS + 1) + ["b"] * (MIN_REPEATS + 2)     # warm-up call included
    assert calls == block * 2
    # round ratios 2, 3 and 10: the median round, not the mean or the pooled medians
    num = np.array([[2.0] * 5, [3.0] * 5, [10.0] * 5])
    assert round_ratio(num, np.ones((3, 5))) == (3.0, 2.0, 10.0)
    assert round_medians(num) == (3.0, 2.0, 10.0)


def test_the_fv_floor_keeps_the_median_of_its_processes(monkeypatch):
    from benchmarks import fv_floor

    figures = iter([3.9, 2.5, 2.7])
    monkeypatch.setattr(fv_floor, "measure_in_subprocess",
                        lambda root, key, steps: {"fv_step_over_floor_512": next(figures), "steps": steps})
    out = fv_floor.measure_in_processes(None, "512", 10, processes=3)
    assert out["fv_step_over_floor_512"] == 2.7 and out["fv_step_over_floor_512_processes"] == [2.5, 2.7, 3.9]
    assert not compare.is_ratio("fv_step_over_floor_512_processes[0]")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_freed_memory_is_reused_without_page_faults():
    """After `keep_freed_memory`, a freed 64 MB block (above glibc's largest mmap threshold)
    serves the next one without a page fault per page; with glibc's defaults each fresh block
    takes one per 4 KiB page (numpy's transparent huge pages off, which would hide it)."""
    code = """if True:
        import resource, sys
        import numpy as np
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:
            from numpy.core.multiarray import _set_madvise_hugepage
        _set_madvise_hugepage(False)
        from benchmarks.allocator import keep_freed_memory
        if sys.argv[1] == "keep":
            print(keep_freed_memory(), file=sys.stderr)
        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        np.ones(8_000_000); np.ones(8_000_000)     # the first block's pages, then reused
        before = faults()
        for _ in range(3):
            np.ones(8_000_000)
        print(faults() - before)
    """
    counts = {}
    for mode in ("keep", "default"):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                              cwd=ROOT, check=True)
        counts[mode] = int(done.stdout.strip())
    assert counts["keep"] < 1_000 and counts["default"] > 3 * 15_000, counts


def test_a_measure_in_a_fresh_process_returns_its_dict_or_one_clear_error():
    from benchmarks.timing import in_fresh_process

    assert in_fresh_process(ROOT, "benchmarks.calibration", "typical", {"a": [1.0, 3.0, 2.5]}) == {"a": 2.5}
    with pytest.raises(RuntimeError, match="benchmarks.calibration.typical in a fresh process failed: .*Error"):
        in_fresh_process(ROOT, "benchmarks.calibration", "typical", {"a": "not numbers"})
