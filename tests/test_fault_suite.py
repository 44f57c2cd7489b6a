"""The fault and fuzz suite (tests/fault_suite) at its CI size: no input may give a traceback, hang,
exhaust memory, lose data or touch a file outside its folder; `--full` (about 900 inputs) is slow.
Definitions of every outcome: the docstring of tests/fault_suite/__init__.py."""
from __future__ import annotations

import pytest

from fault_suite import run_suite
from fault_suite.harness import FAILURES

CONTRACT = ("traceback", "hang", "memory", "lost", "security")


def _report(failures, kinds) -> str:
    lines = [f"{f['kind']}: [{f['class']}] {f['input']}: {f['command']} -> {f['outcome']}: {f['stderr']}"
             for f in failures if f["kind"] in kinds]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def ci_suite():
    return run_suite(seed=0, full=False, workers=2, echo=lambda line: None)


def test_no_input_breaks_the_contract(ci_suite):
    table, failures, _ = ci_suite
    assert table["all"]["tried"] >= 30
    broken = {k: table["all"][k] for k in CONTRACT if table["all"][k]}
    assert not broken, f"{broken}\n" + _report(failures, CONTRACT)


def test_no_other_contract_break(ci_suite):
    """One-line messages, valid outputs of successful runs, --resume completing a stopped run, a
    run finishing beside live readers."""
    table, failures, _ = ci_suite
    assert table["all"]["other"] == 0, _report(failures, ("other",))


@pytest.mark.slow
def test_full_suite():
    table, failures, _ = run_suite(seed=1, full=True, workers=2, echo=lambda line: None)
    assert not any(table["all"][k] for k in FAILURES), _report(failures, FAILURES)
