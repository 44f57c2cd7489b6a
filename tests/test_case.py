"""Case files: every key parsed, every bad input refused with one line naming file and key."""
import pytest

from conftest import TWO_LAYER_2D, run_gflow
from gflow.case import case_from_text, load_case
from gflow.errors import InputError


def test_parse_quickstart_like():
    case = case_from_text(TWO_LAYER_2D, "small.toml")
    assert case.axes == ("a", "w") and case.model.train == ("a", "w")
    assert case.cells == (32, 32) and case.bounds[1] == (-5.0, 5.0)
    assert case.solvers[0].kind == "fv" and case.solvers[0].options["theta"] == 2.0
    assert case.snapshots == 3 and case.dt is None


def test_axes_of_two_layer_models():
    text = TWO_LAYER_2D.replace('activation = "tanh"', 'activation = "relu"\nbias = true\ninput_dim = 2')
    text = text.replace("{ a = 1.5, w = 2.0 }", "{ a = 1.5, w = [2.0, 1.0], b = 0.1 }")
    text = text.replace("mean = [0.0, 0.0]", "mean = 0.0").replace("std = [0.5, 0.8]", "std = 0.5")
    text = text.replace("bounds = [[-4.0, 4.0], [-5.0, 5.0]]", "bounds = [[-1.0, 1.0]]").replace("[32, 32]", "8")
    with pytest.raises(InputError, match="grid.bounds"):
        case_from_text(text, "c.toml")
    text = text.replace("bounds = [[-1.0, 1.0]]", "bounds = [[-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]]")
    case = case_from_text(text, "c.toml")
    assert case.axes == ("a", "w1", "w2", "b") and case.cells == (8, 8, 8, 8)


@pytest.mark.parametrize("kind, key, value, words", [
    ("fv", "theta", "2.5", "theta: must be at most 2, got 2.5"),
    ("fipy", "theta", "0.5", "theta: must be at least 1, got 0.5"),
    ("fipy", "convection", '"vanleer"', "convection"),
    ("spectral", "basis", '"chebyshev"', "basis"),
    ("spectral", "filter", '"hou_li"', "filter"),
    ("spectral", "filter_order", "-1", "filter_order: must be at least 0"),
    ("spectral", "filter_order", "65", "filter_order: must be at most 64"),
])
def test_solver_options_out_of_range_are_refused_in_one_line(kind, key, value, words):
    with pytest.raises(InputError, match=words) as info:
        case_from_text(TWO_LAYER_2D, "c.toml", [f"solver.{key}={value}"], [kind])
    assert "\n" not in str(info.value)


def test_overrides_and_solver_selection():
    case = case_from_text(TWO_LAYER_2D, "c.toml",
                          ["grid.cells=[16,24]", "time.end=2", "solver.theta=1.5", "model.activation=relu"],
                          ["fv", "particle"])
    assert case.cells == (16, 24) and case.end == 2.0 and case.model.activation == "relu"
    assert [s.kind for s in case.solvers] == ["fv", "particle"]
    assert case.solvers[0].options["theta"] == 1.5
    particle = case_from_text(TWO_LAYER_2D, "c.toml", ["solver.particles=123"], ["particle"])
    assert particle.solvers[0].options["particles"] == 123
    with pytest.raises(InputError, match="particles"):
        case_from_text(TWO_LAYER_2D, "c.toml", ["solver.particles=123"])
    # the stored case text rebuilds exactly this run
    again = case_from_text(case.text_for(case.solvers[0]), "stored")
    assert again.cells == (16, 24) and again.solvers[0].options["theta"] == 1.5


def test_solvers_list():
    text = TWO_LAYER_2D + '[[solvers]]\nkind = "fv"\n[[solvers]]\nkind = "particle"\nparticles = 500\n'
    case = case_from_text(text, "c.toml", ["solver.seed=3"])
    assert [s.kind for s in case.solvers] == ["fv", "particle"]
    assert case.solvers[1].options["particles"] == 500 and case.solvers[1].options["seed"] == 3


BAD = [
    # (edit, key named in the message)
    (("[data]", "[data]\nnodse = 3"), "data.nodse: unknown key"),
    (("nodes = 16", 'nodes = "16"'), "data.nodes: must be an integer"),
    (("nodes = 16", "nodes = 0"), "data.nodes: must be at least 1"),
    (('activation = "tanh"', 'activation = "swish"'), "model.activation: unknown value 'swish'"),
    (("end = 1.0", "end = -1.0"), "time.end: must be positive"),
    (("end = 1.0", "end = nan"), "time.end: must be finite"),
    (("end = 1.0\n", ""), "time.end: missing value"),
    (("[-4.0, 4.0], [-5.0, 5.0]", "[4.0, -4.0], [-5.0, 5.0]"), "grid.bounds[0]: low (4) must be below high (-4)"),
    (("cells = [32, 32]", "cells = [32, 0]"), "grid.cells: must be positive integers"),
    (("cells = [32, 32]", "cells = [32, 32, 32]"), "grid.cells: must be a list of 2 integers"),
    (("std = [0.5, 0.8]", "std = [0.5]"), "initial.std: has 1 entries, expected 2"),
    (("std = [0.5, 0.8]", "std = [0.5, -0.8]"), "initial.std: must be positive"),
    (("[time]", '[solver]\nkind = "magic"\n[time]'), "solver.kind: unknown value 'magic'"),
    (("[time]", '[solver]\nkind = "fv"\nparticles = 3\n[time]'), "solver.particles: unknown key"),
    (("neurons = [{ a = 1.5, w = 2.0 }]", 'expression = "sin(pi*x"'), "target.expression: cannot parse"),
    (("neurons = [{ a = 1.5, w = 2.0 }]", "neurons = [{ a = 1.5 }]"), "target.neurons[0].w: missing value"),
    (('kind = "two_layer"', 'kind = "three_layer"'), "model.kind: unknown value"),
]


@pytest.mark.parametrize("edit,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_case_names_file_and_key(edit, message):
    old, new = edit
    assert old in TWO_LAYER_2D
    with pytest.raises(InputError) as info:
        case_from_text(TWO_LAYER_2D.replace(old, new, 1), "bad.toml")
    text = str(info.value)
    assert text.startswith("bad.toml: ") and message in text and "\n" not in text, text


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "x.real", "(lambda: 1)()", "x[0]", "open('f')"])
def test_expressions_never_run_code(expression):
    text = TWO_LAYER_2D.replace("neurons = [{ a = 1.5, w = 2.0 }]", f'expression = "{expression}"')
    with pytest.raises(InputError, match="target.expression: cannot parse"):
        case_from_text(text, "evil.toml")


def test_potential_model_keys():
    text = """
[model]
kind = "potential"
axes = ["x", "y"]
potential = "0.5*(x**2 + y**2)"
interaction = "-log(r)"
[initial]
mean = [0.0, 0.0]
std = [1.0, 1.0]
[grid]
bounds = [[-3.0, 3.0], [-3.0, 3.0]]
cells = [8, 8]
[time]
end = 1.0
"""
    case = case_from_text(text, "p.toml")
    assert case.axes == ("x", "y") and case.model.interaction == "-log(r)"
    with pytest.raises(InputError, match="model.potential: cannot parse.*unknown name 'z'"):
        case_from_text(text.replace("y**2)", "z**2)"), "p.toml")
    with pytest.raises(InputError, match="model.activation: only two_layer"):
        case_from_text(text.replace('kind = "potential"', 'kind = "potential"\nactivation = "tanh"'), "p.toml")


def test_cli_bad_case_one_line_exit_2(write_case, tmp_path):
    path = write_case(TWO_LAYER_2D.replace("nodes = 16", "nodes = -2"))
    result = run_gflow("run", path, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "data.nodes" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
    for args in (["run", tmp_path / "missing.toml"], ["run", path, "--set", "nonsense"],
                 ["run", write_case("x = [", "broken"), "--set", "a=1"]):
        result = run_gflow(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


def test_load_case_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_case(tmp_path / "nope.toml")
