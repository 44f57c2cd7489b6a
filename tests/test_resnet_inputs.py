"""The resnet case keys: what is accepted, what is refused in one line (exit 2), and the layered
run-file layout the reader and checker agree on."""
from __future__ import annotations

import numpy as np
import pytest

from gflow.case import case_from_text
from gflow.errors import InputError
from gflow.problem import build_problem

BASE = """
[model]
kind = "resnet"
layers = 4
{model}
[target]
expression = "2*x"
[data]
nodes = 8
[initial]
{initial}
[grid]
bounds = [[-2, 2], [-2, 2]]
cells = [8, 8]
[time]
end = 0.2
snapshots = 2
[solver]
kind = "{solver}"
"""


def case(model="", initial="mean = [0.0, 0.5]\nstd = [0.3, 0.3]", solver="fv"):
    return case_from_text(BASE.format(model=model, initial=initial, solver=solver))


def test_layer_axis_comes_first_with_the_depths():
    c = case()
    assert c.axes == ("layer", "a", "w") and c.parameter_axes == ("a", "w")
    assert c.cells == (4, 8, 8) and c.layers == 4
    grid = build_problem(c).grid
    np.testing.assert_allclose(grid.centres[0], [0, 0.25, 0.5, 0.75], atol=1e-15)
    assert not build_problem(c).model.trained[0]


def test_layer_means_as_expressions_in_tau_and_as_lists():
    p = build_problem(case(initial='mean = [0.0, 0.0]\nstd = [0.3, 0.3]\nlayer_means = ["tau", 0.5]'))
    rho = p.initial_density()
    a = p.grid.centres[1]
    means = np.einsum("lij,i->l", rho, a) / rho.sum(axis=(1, 2))
    np.testing.assert_allclose(means, [0, 0.25, 0.5, 0.75], atol=2e-3)   # the cell-average's O(h^2)
    listed = build_problem(case(initial="std = [0.3, 0.3]\nlayer_means = [[0, 0.5], [0.25, 0.5], [0.5, 0.5], "
                                        "[0.75, 0.5]]"))
    np.testing.assert_allclose(listed.initial_density(), rho, atol=1e-14)


@pytest.mark.parametrize("model, initial, solver, words", [
    ("msa_rho = 1.0", None, "fv", "msa_rho: the extended MSA's penalty acts while z and p are frozen"),
    ("refresh = 0", None, "fv", "refresh"),
    ("train = [\"q\"]", None, "fv", "unknown axis 'q'"),
    ("", "std = [0.3, 0.3]\nlayer_means = [[0, 0.5]]", "fv", "one mean per layer (4), got 1"),
    ("", "std = [0.3, 0.3]\nlayer_means = [\"tau +\", 0]", "fv", "layer_means[0]: cannot parse"),
    ("", "distribution = \"uniform\"\nlayer_means = [[0, 0.5]]", "fv", "per-layer means belong to"),
    ("", "distribution = \"points\"\npoints = [[1.0]]", "particle", "points[0]: must be a list of 2 numbers"),
])
def test_bad_keys_are_refused_in_one_line(model, initial, solver, words):
    with pytest.raises(InputError, match=None) as info:
        case(model, initial or "mean = [0.0, 0.5]\nstd = [0.3, 0.3]", solver)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_grid_solvers_refuse_what_they_cannot_hold(tmp_path):
    from gflow.app.execute import run_case

    quiet = dict(progress=False, echo=lambda *a: None)
    # a 2-D state has 4 axes per layer
    text = BASE.format(model="input_dim = 2", initial="mean = 0.1\nstd = 0.3", solver="fv").replace(
        "expression = \"2*x\"", "expression = \"x1\"").replace("bounds = [[-2, 2], [-2, 2]]", "bounds = [[-2, 2]] * 4")
    text = text.replace("bounds = [[-2, 2]] * 4", "bounds = [[-2, 2], [-2, 2], [-2, 2], [-2, 2]]").replace(
        "cells = [8, 8]", "cells = 4")
    with pytest.raises(InputError, match="1 to 3 axes per layer"):
        run_case(case_from_text(text), tmp_path / "b", **quiet)


def test_grid_solvers_deposit_point_masses_in_every_layer():
    """Point masses on a grid: each layer's density is their cloud-in-cell deposit (mass 1 and
    the points' mean, both kept exactly by the tent weights inside the range of cell centres)."""
    p = build_problem(case(initial='distribution = "points"\npoints = [[1.0, 0.5], [-1.0, 0.25]]\nweights = [3, 1]'))
    rho = p.initial_density()
    one = p.parameter_grid
    a, w = np.meshgrid(*one.centres, indexing="ij")
    for layer in rho:
        assert abs(layer.sum() * one.cell_volume - 1.0) < 1e-14
        np.testing.assert_allclose([(layer * a).sum() * one.cell_volume, (layer * w).sum() * one.cell_volume],
                                   [0.75 * 1.0 - 0.25 * 1.0, 0.75 * 0.5 + 0.25 * 0.25], atol=1e-14)


def test_points_run_as_given_in_every_layer_and_the_file_follows_the_layout(tmp_path):
    from gflow.app.execute import run_case
    from gflow.snapshot_check import problems
    from gflow.snapshots import open_run

    c = case(initial='distribution = "points"\npoints = [[1.0, 0.5], [-1.0, 0.25], [0.5, 1.0]]\nweights = [2, 1, 1]',
             solver="particle")
    run = run_case(c, tmp_path, progress=False, echo=lambda *a: None)[0]
    assert problems(run.path) == []
    r = open_run(run.path)
    import h5py
    with h5py.File(run.path) as f:
        assert f["positions"].shape == (2, 4, 3, 2) and list(f.attrs["axes"]) == ["a", "w"]
        np.testing.assert_allclose(f["weights"][()], [0.5, 0.25, 0.25])
        np.testing.assert_allclose(f["positions"][0], np.broadcast_to([[1.0, 0.5], [-1.0, 0.25], [0.5, 1.0]],
                                                                      (4, 3, 2)))
        np.testing.assert_allclose(f["layer_mass"][()], 1.0, atol=1e-12)
    assert r.layers == 4 and r.axes == ("layer", "a", "w")
    first = r.snapshot(0).positions
    assert first.shape == (12, 3)
    np.testing.assert_allclose(first[:, 0], np.repeat([0, 0.25, 0.5, 0.75], 3), atol=1e-15)
    assert r.weights.sum() == pytest.approx(1.0)
