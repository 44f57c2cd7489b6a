"""Data measures, grids and initial densities: exact moments and masses."""
import numpy as np
import pytest

from gflow.models.two_layer_case import DataSpec
from gflow.models.data import build_data
from gflow.errors import InputError
from gflow.grids import CartesianGrid, gaussian_cell_average, mixture_cell_average, uniform_cell_average


def test_gauss_legendre_is_uniform_expectation():
    data = build_data(DataSpec("uniform", low=-1.0, high=3.0, nodes=6), 1)
    assert data.p.sum() == pytest.approx(1.0, abs=1e-15)
    # E x^k = (3^{k+1} - (-1)^{k+1}) / (4 (k+1)), exact up to degree 11
    for k in range(12):
        assert data.p @ data.x[:, 0] ** k == pytest.approx((3 ** (k + 1) - (-1) ** (k + 1)) / (4 * (k + 1)), rel=1e-12)


def test_gauss_hermite_is_gaussian_expectation_in_2d():
    data = build_data(DataSpec("gaussian", mean=1.0, std=2.0, nodes=5), 2)
    assert data.x.shape == (25, 2) and data.p.sum() == pytest.approx(1.0, abs=1e-15)
    x1, x2 = data.x.T
    assert data.p @ x1 == pytest.approx(1.0, rel=1e-13)
    assert data.p @ (x1 - 1) ** 2 == pytest.approx(4.0, rel=1e-13)
    assert data.p @ ((x1 - 1) ** 2 * (x2 - 1) ** 2) == pytest.approx(16.0, rel=1e-13)
    assert data.p @ (x2 - 1) ** 4 == pytest.approx(3 * 16.0, rel=1e-13)


def test_large_gaussian_rules_stay_finite_and_exact_and_rules_are_bounded():
    """numpy's Gauss-Hermite rule overflows beyond ~300 nodes (NaN weights): scipy's serves there."""
    from gflow.case import case_from_text
    from gflow.models.two_layer_case import MAX_RULE_NODES

    data = build_data(DataSpec("gaussian", mean=1.0, std=2.0, nodes=500), 1)
    assert np.all(np.isfinite(data.x)) and np.all(np.isfinite(data.p))
    x = data.x[:, 0]
    assert data.p @ (x - 1) ** 2 == pytest.approx(4.0, rel=1e-12)
    assert data.p @ (x - 1) ** 4 == pytest.approx(48.0, rel=1e-12)
    text = open(__file__.replace("tests/test_inputs.py", "cases/quickstart.toml")).read()
    with pytest.raises(InputError, match=f"data.nodes: {MAX_RULE_NODES + 1} nodes per axis is more than the "
                                         f"{MAX_RULE_NODES}"):
        case_from_text(text, "c.toml", [f"data.nodes={MAX_RULE_NODES + 1}"])
    case_from_text(text, "c.toml", [f"data.nodes={MAX_RULE_NODES + 1}", "data.distribution='samples'"])


def test_samples_are_seeded():
    a = build_data(DataSpec("samples", samples=100, seed=4), 2)
    b = build_data(DataSpec("samples", samples=100, seed=4), 2)
    c = build_data(DataSpec("samples", samples=100, seed=5), 2)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    assert a.x.min() >= -1 and a.x.max() <= 1 and a.p.sum() == pytest.approx(1.0)


def test_csv_file_with_y(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,x2,y\n0.0,1.0,2.0\n1.0,0.5,-1.0\n")
    data = build_data(DataSpec("file", file=path), 2)
    assert data.x.tolist() == [[0.0, 1.0], [1.0, 0.5]] and data.y.tolist() == [2.0, -1.0]
    path.write_text("x1,y\n0.0,abc\n")
    with pytest.raises(InputError, match="data.file"):
        build_data(DataSpec("file", file=path), 1)


def test_grid_geometry():
    g = CartesianGrid(((-1.0, 1.0), (0.0, 3.0)), (4, 3))
    assert g.spacing.tolist() == [0.5, 1.0] and g.cell_volume == 0.5
    assert g.centres[0].tolist() == [-0.75, -0.25, 0.25, 0.75] and g.faces[1].tolist() == [0, 1, 2, 3]
    assert g.points().shape == (12, 2)
    with pytest.raises(ValueError):
        CartesianGrid(((1.0, -1.0),), (4,))


def test_initial_cell_averages_have_mass_one_and_exact_moments():
    g = CartesianGrid(((-9.0, 9.0), (-7.0, 5.0)), (72, 40))
    rho = gaussian_cell_average(g, [0.5, -1.0], [1.0, 0.7])
    assert g.mass(rho) == pytest.approx(1.0, abs=1e-14) and rho.min() >= 0
    X, Y = g.mesh()
    # cell averages shift the discrete second moment by h^2/12 exactly (midpoint rule)
    h = g.spacing
    assert (X * rho).sum() * g.cell_volume == pytest.approx(0.5, abs=1e-9)
    var_x = ((X - 0.5) ** 2 * rho).sum() * g.cell_volume
    assert var_x == pytest.approx(1.0 + h[0] ** 2 / 12, rel=1e-4)
    assert g.mass(uniform_cell_average(g)) == pytest.approx(1.0)
    mix = mixture_cell_average(g, [0.25, 0.75], [[-2, 0], [2, 0]], [[0.5, 0.5], [0.5, 0.5]])
    assert (X * mix).sum() * g.cell_volume == pytest.approx(0.25 * -2 + 0.75 * 2, abs=1e-9)


def test_a_data_file_with_y_needs_no_target(tmp_path):
    """SPEC: a data file's y column replaces the target, so [target] may be left out (issue 14)."""
    from gflow.case import load_case
    from gflow.problem import build_problem

    (tmp_path / "d.csv").write_text("x,y\n-1.0,0.5\n0.0,0.0\n1.0,-0.5\n")
    case = tmp_path / "c.toml"
    case.write_text("""
[model]
kind = "two_layer"
activation = "tanh"
[data]
file = "d.csv"
[initial]
mean = [0.0, 0.0]
std = [0.5, 0.5]
[grid]
bounds = [[-3.0, 3.0], [-3.0, 3.0]]
cells = [8, 8]
[time]
end = 1.0
""")
    problem = build_problem(load_case(case))
    np.testing.assert_array_equal(problem.model.y, [0.5, 0.0, -0.5])
    # without a y column the target stays required
    (tmp_path / "d.csv").write_text("x\n-1.0\n0.0\n1.0\n")
    with pytest.raises(InputError, match="target: missing value"):
        load_case(case)
