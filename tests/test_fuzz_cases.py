"""Fuzzed case files: anything that is not a valid case is refused in one line, never a crash.

Random TOML documents, raw text, and mutations of every bundled case (keys dropped, types
swapped, values out of range, huge numbers, NaN, unicode, deep nesting) go through the
case reader and the problem builder; the only exception allowed out is InputError, whose
message is one line naming the file, and no numpy RuntimeWarning may be printed before it.
Over 1000 examples run in CI.
"""
import copy
import math
import tomllib
import warnings

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, run_gflow
from fault_suite.inputs_cases import value_paths
from gflow.case import case_from_text
from gflow.errors import InputError
from gflow.problem import build_problem

SOURCE = "fuzz.toml"
BUNDLED = {p.stem: tomllib.loads(p.read_text()) for p in sorted((ROOT / "cases").glob("*.toml"))}
KEYS = ["name", "model", "kind", "activation", "bias", "input_dim", "train", "axes", "potential",
        "interaction", "target", "neurons", "expression", "data", "distribution", "low", "high",
        "nodes", "mean", "std", "samples", "seed", "file", "regularization", "weight_decay",
        "temperature", "initial", "components", "weight", "grid", "bounds", "cells", "time", "end",
        "snapshots", "dt", "solver", "solvers", "particles", "output", "dir", "a", "w", "b", "x", "y"]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 3, 10**18, 2**62]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e308, -1e308, math.nan, math.inf, 0.5, 2.0]),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["tanh", "relu", "fv", "particle", "gaussian", "uniform", "x**2", "log(r)",
                     "__import__('os')", "a", "w", "\u00e9\u4e2d\U0001f600", ""]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def deeply_nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def assert_refused_cleanly(text: str) -> None:
    try:
        # a numpy warning would print before the one line: it fails the example (issue 15)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            case = case_from_text(text, SOURCE)
            if math.prod(case.cells) <= 20_000:
                problem = build_problem(case)
                problem.initial_density()
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"{SOURCE}: ") or message.startswith("--"), message
        assert "\n" not in message and len(message) < 400, message


def dumps(doc) -> str | None:
    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError):   # not expressible as TOML (e.g. mixed nesting): skip
        return None


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(300)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_random_documents(doc):
    text = dumps(doc)
    if text is not None:
        assert_refused_cleanly(text)


@fuzz(200)
@given(st.text(max_size=200))
def test_random_text(text):
    assert_refused_cleanly(text)


MUTATIONS = ["drop", "replace", "nan", "huge", "negative", "zero", "unicode", "deep", "empty_list",
             "string", "add_key", "name"]
#: names that clash in a run file (its datasets, each other once folded) or in HDF5 paths
NAMES = ["time", "Density", "mass", "restart.new", "outside_mass", "x", "X", "\uff58", "a/b", "", "\x07",
         "a.b", "\u00e9", "e\u0301", "energy"]


@fuzz(700)
@given(st.sampled_from(sorted(BUNDLED)), st.data())
def test_mutated_bundled_cases(name, data):
    doc = copy.deepcopy(BUNDLED[name])
    paths = list(value_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            _ = parent[last]
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, (dict, list)):   # an earlier mutation replaced the container
            continue
        how = data.draw(st.sampled_from(MUTATIONS))
        replacement = {
            "replace": lambda: data.draw(values), "nan": lambda: math.nan, "huge": lambda: 10**30 if
            data.draw(st.booleans()) else 1e300, "negative": lambda: -1, "zero": lambda: 0,
            "unicode": lambda: "\u00e9\u4e2d\U0001f600\u202e", "deep": lambda: deeply_nested(60),
            "empty_list": lambda: [], "string": lambda: "3", "name": lambda: data.draw(st.sampled_from(NAMES)),
        }
        if how == "drop":
            del parent[last]
        elif how == "add_key":
            if isinstance(parent, dict):
                parent[data.draw(st.text(min_size=1, max_size=6))] = 1
        else:
            parent[last] = replacement[how]()
    text = dumps(doc)
    if text is not None:
        assert_refused_cleanly(text)


@pytest.mark.parametrize("edit", ["cells = [0, 64]", "cells = [1e9, 1]", "end = nan", "kind = 3",
                                  "bounds = [[4.0, -4.0], [-5.0, 5.0]]"])
def test_cli_refuses_in_one_line(edit, tmp_path):
    text = (ROOT / "cases" / "quickstart.toml").read_text()
    key = edit.split(" = ")[0]
    lines = [edit if line.startswith(key + " = ") else line for line in text.splitlines()]
    path = tmp_path / "mutant.toml"
    path.write_text("\n".join(lines))
    result = run_gflow("run", path, "-o", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
