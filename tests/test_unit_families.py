"""Units given as expressions or named families (`[model] unit`, docs/units.md): the case keys,
the exact derivatives, the two grid paths against each other and against the particle path."""
import numpy as np
import pytest
from gflow.grids import CartesianGrid

from gflow.case import case_from_text
from gflow.errors import InputError
from gflow.expr import parse_expression
from gflow.models.data import DataMeasure
from gflow.models.reference import two_layer_reference
from gflow.models.two_layer_grid import TwoLayerGridOperator
from gflow.models.unit_grid import UnitGridOperator
from gflow.models.unit_network import UnitNetworkModel, linear_in_first_axis
from gflow.models.units import FAMILIES
from gflow.problem import Problem, build_problem

RBF = "a*exp(-(x - y)**2/(2*0.5))/sqrt(2*pi*0.5)"


def unit_case(model: str, axes: int = 2, target: str = "", data: str = "", extra: str = "") -> str:
    target = target or ('expression = "sin(x1)*cos(x2)"' if "input_dim = 2" in model else 'expression = "sin(pi*x)"')
    return f"""
[model]
kind = "two_layer"
{model}
[target]
{target}
[data]
distribution = "uniform"
low = -2.0
high = 2.0
nodes = 24
{data}
[regularization]
weight_decay = 0.01
[initial]
mean = {[0.0] * axes}
std = {[1.0] * axes}
[grid]
bounds = {[[-3.0, 3.0]] * axes}
cells = {[7, 6, 5][:axes]}
[time]
end = 1.0
{extra}
"""


def unit_problem(model: str, axes: int = 2, **kw) -> Problem:
    return build_problem(case_from_text(unit_case(model, axes, **kw)))


# ----------------------------------------------------------------------------- case keys

def test_an_expression_unit_and_a_family_parse_to_the_same_model():
    written = case_from_text(unit_case(f'unit = "{RBF}"\naxes = ["a", "y"]')).model
    family = case_from_text(unit_case('unit = "gaussian"\nvariance = 0.5')).model
    assert written.axes == family.axes == ("a", "y")
    assert written.unit == RBF and written.family == "" and family.family == "gaussian"
    assert written.train == ("a", "y") and written.activation == "" and not written.bias
    rng = np.random.default_rng(0)
    x, a, y = rng.normal(size=(3, 50))
    e1 = parse_expression(written.unit, ["x", "a", "y"])
    e2 = parse_expression(family.unit, ["x", "a", "y"])
    np.testing.assert_allclose(e1(x, a, y), e2(x, a, y), rtol=1e-14)
    # the family's default variance is 1
    default = parse_expression(case_from_text(unit_case('unit = "gaussian"')).model.unit, ["x", "a", "y"])
    np.testing.assert_allclose(default(x, a, y), a * np.exp(-(x - y) ** 2 / 2) / np.sqrt(2 * np.pi), rtol=1e-14)


def test_the_gaussian_family_in_two_inputs():
    """d = 2: phi = a exp(-|x - y|^2 / (2 s2)) / (2 pi s2), axes (a, y1, y2); `train = ["y"]` is y1, y2."""
    case = case_from_text(unit_case('unit = "gaussian"\nvariance = 0.3\ninput_dim = 2\ntrain = ["y"]', axes=3))
    spec = case.model
    assert spec.axes == ("a", "y1", "y2") and spec.train == ("y1", "y2")
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 40))
    phi = parse_expression(spec.unit, ["x1", "x2", "a", "y1", "y2"])
    s2 = 0.3
    exact = v[2] * np.exp(-((v[0] - v[3]) ** 2 + (v[1] - v[4]) ** 2) / (2 * s2)) / (2 * np.pi * s2)
    np.testing.assert_allclose(phi(*v), exact, rtol=1e-14)
    model = build_problem(case).model
    assert list(model.trained) == [False, True, True]


@pytest.mark.parametrize("model,words", [
    (f'unit = "{RBF}"\naxes = ["a", "y"]\nactivation = "tanh"', "model.activation: a unit given by `unit`"),
    (f'unit = "{RBF}"\naxes = ["a", "y"]\nbias = true', "model.bias: a unit given by `unit`"),
    (f'unit = "{RBF}"', "model.axes: a unit written as an expression names its axes"),
    ('unit = "a*exp(-x**2)*x"\naxes = ["a", "x"]', "model.axes: 'x' is an input of the unit"),
    ('unit = "exp(-x**2)"\naxes = ["a", "y"]', "model.unit: the unit uses none of its axes"),
    ('unit = "a*y"\naxes = ["a", "y"]', "model.unit: the unit uses none of the inputs"),
    ('unit = "a*z*x"\naxes = ["a", "y"]', "model.unit: cannot parse"),
    ('unit = "a*x"\naxes = ["a", "y", "y"]', "model.axes: names must be distinct"),
    ('unit = "a*x"\naxes = ["a", "exp"]', "model.axes: 'exp' cannot be a variable"),
    ('unit = "a*x"\naxes = []', "model.axes: must be a non-empty list"),
    (f'unit = "{RBF}"\naxes = ["a", "y"]\nvariance = 0.5', "model.variance: a parameter of unit = 'gaussian'"),
    ('unit = "gaussian"\naxes = ["a", "b", "c"]', "model.axes: this unit has 2 axes (a, y), got 3"),
    ('unit = "gaussian"\nvariance = 0', "model.variance: must be positive"),
    ('unit = "gaussian"\nsymmetry = "rotations"', "model.symmetry: rotation-invariant data needs"),
    ('unit = "gaussian"\ntrain = ["w"]', "model.train: unknown axis 'w'"),
    ('unit = "gaussian"\nshape = 1', "model.shape: unknown key"),
    ('axes = ["a", "y"]', "model.axes: only potential models have this key"),
])
def test_bad_units_are_refused_in_one_line(model, words):
    with pytest.raises(InputError) as err:
        case_from_text(unit_case(model))
    message = str(err.value)
    assert words in message and "\n" not in message, message


def test_a_teacher_network_and_isotropic_data_are_refused_with_a_unit():
    with pytest.raises(InputError, match="target.neurons: a teacher network of sigma"):
        case_from_text(unit_case('unit = "gaussian"', target="neurons = [{ a = 1.0, w = 1.0 }]"))
    text = unit_case('unit = "gaussian"').replace('distribution = "uniform"', 'distribution = "gaussian"\ndim = 4')
    with pytest.raises(InputError, match="data.dim: isotropic data in R\\^d needs a sigma"):
        case_from_text(text)


# ----------------------------------------------------------------------------- the point path

def test_a_unit_written_as_a_sigma_unit_is_the_sigma_model():
    """`unit = "a*tanh(w*x + b)"` on axes (a, w, b) is the tanh network with bias: risk, V and
    grad V equal the plain reference (`two_layer_reference`) to round-off, and so does the
    t = 0 fluctuation bias."""
    problem = unit_problem('unit = "a*tanh(w*x + b)"\naxes = ["a", "w", "b"]', axes=3)
    model = problem.model
    assert isinstance(model, UnitNetworkModel) and model.separable
    rng = np.random.default_rng(2)
    u = rng.normal(size=(60, 3))
    q = rng.random(60)
    q /= q.sum()
    risk, V, grad = two_layer_reference("tanh", True, model.x, model.p, model.y, u, q, u, model.weight_decay)
    r = model.residual(u, q)
    assert model.risk(u, q) == pytest.approx(risk, rel=1e-12)
    np.testing.assert_allclose(model.potential(u, r), V, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.gradient(u, r), grad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.velocity(u, q, kernel="numba"), -grad, rtol=1e-12, atol=1e-13)
    sigma = build_problem(case_from_text(unit_case('activation = "tanh"\nbias = true', axes=3))).model
    assert model.initial_bias(u, q) == pytest.approx(sigma.initial_bias(u, q), rel=1e-12)


def test_gradient_of_a_non_separable_unit_is_the_derivative_of_v():
    """grad V of phi = tanh(a x + y) exp(-c x^2) is the exact derivative: central differences
    of V (the residual held fixed) agree to their own O(h^2) error."""
    problem = unit_problem('unit = "tanh(a*x + y)*exp(-c*x**2)"\naxes = ["a", "y", "c"]', axes=3)
    model = problem.model
    assert not model.separable
    rng = np.random.default_rng(3)
    u = rng.normal(size=(20, 3)) * 0.7
    r = model.residual(u, np.full(20, 1 / 20))
    grad = model.gradient(u, r)
    h = 1e-5
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd = (model.potential(u + e, r) - model.potential(u - e, r)) / (2 * h)
        np.testing.assert_allclose(grad[:, k], fd, rtol=1e-7, atol=1e-9)


def test_blocks_of_any_size_give_the_same_values(monkeypatch):
    """The block size (sized by the expression's nodes) changes nothing: 1-row blocks agree."""
    from gflow.models import unit_network

    model = unit_problem('unit = "gaussian"').model
    rng = np.random.default_rng(4)
    u, q = rng.normal(size=(33, 2)), rng.random(33)
    r = model.residual(u, q)
    whole = model.network(u, q), model.potential(u, r), model.gradient(u, r)
    monkeypatch.setattr(unit_network, "CHUNK_BYTES", 1)
    model._nodes.clear()
    assert model._rows([model.phi], len(model.x)) == 1
    for a, b in zip(whole, (model.network(u, q), model.potential(u, r), model.gradient(u, r))):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)


def test_frozen_axes_do_not_move_and_numba_falls_back():
    model = unit_problem('unit = "gaussian"\ntrain = ["a"]').model
    rng = np.random.default_rng(5)
    u, q = rng.normal(size=(10, 2)), np.full(10, 0.1)
    v = model.velocity(u, q, kernel="numba")
    assert not model.fused()
    assert np.all(v[:, 1] == 0) and np.all(v[:, 0] != 0)
    np.testing.assert_array_equal(v, model.velocity(u, q, kernel="numpy"))
    out = np.empty_like(u)
    assert model.velocity(u, q, out=out) is out and np.array_equal(out, v)
    np.testing.assert_allclose(v[:, 0], -model.gradient(u, model.residual(u, q))[:, 0], rtol=1e-15)


@pytest.mark.parametrize("unit,axes,separable", [
    ("gaussian", None, True),
    ("a*tanh(w*x)", ["a", "w"], True),
    ("a*log(w)*x", ["a", "w"], True),            # psi is nan for w < 0: the check uses where it is finite
    ("a**2*tanh(w*x)", ["a", "w"], False),        # not linear in a
    ("a*tanh(w*x) + 1e-3*w", ["a", "w"], False),  # affine in a, but not zero at a = 0
    ("tanh(a*x + w)", ["a", "w"], False),
    ("w*tanh(a*x)", ["a", "w"], False),           # linear in its second axis, not its first
])
def test_separability_is_linearity_in_the_first_axis(unit, axes, separable):
    model = f'unit = "{unit}"' + (f"\naxes = {axes}" if axes else "")
    problem = unit_problem(model)
    assert problem.model.separable is separable
    op = problem.model.grid_operator(problem.grid)
    assert isinstance(op, TwoLayerGridOperator if separable else UnitGridOperator)
    assert hasattr(op, "velocity_factors") is separable


def test_linear_in_first_axis_needs_a_second_axis():
    phi = parse_expression("a*x", ["x", "a"])
    assert not linear_in_first_axis(phi, phi.diff("a"), ("a",), ("x",))


def test_fluctuation_is_refused_for_a_general_unit():
    model = unit_problem('unit = "gaussian"').model
    with pytest.raises(InputError, match="fluctuation = true: .* sigma\\(w.x \\+ b\\) units only"):
        model.risk_weight_gradient([], [], np.ones(1))


# ----------------------------------------------------------------------------- grid paths

def _density(grid: CartesianGrid, seed: int) -> np.ndarray:
    rho = np.random.default_rng(seed).random(grid.shape)
    return rho / grid.mass(rho)


def _face_points(grid: CartesianGrid, axis: int) -> np.ndarray:
    full = np.meshgrid(*[np.ravel(c) for c in grid.face_mesh(axis)], indexing="ij")
    return np.stack([c.ravel() for c in full], axis=1)


@pytest.mark.parametrize("model,axes", [
    ('unit = "gaussian"\nvariance = 0.5', 2),
    ('unit = "gaussian"\ninput_dim = 2\ntrain = ["a", "y2"]', 3),
    ('unit = "a*x*exp(-c*x**2)/(1 + y**2)"\naxes = ["a", "y", "c"]', 3),
])
def test_the_separable_and_the_general_grid_paths_agree(model, axes):
    """On a unit linear in a, the separable operator and the general one (forced) agree to
    round-off: risk, V, face and centre velocities, energy; the general one without its cache
    (every product recomputed in blocks) too."""
    problem = unit_problem(model, axes=axes)
    m, grid = problem.model, problem.grid
    assert m.separable
    separable, general = TwoLayerGridOperator(m, grid), UnitGridOperator(m, grid)
    uncached = UnitGridOperator(m, grid, cache_bytes=0)
    assert uncached.phi.matrix is None and general.phi.matrix is not None
    rho = _density(grid, 6)
    for op in (general, uncached):
        assert op.risk(rho) == pytest.approx(separable.risk(rho), rel=1e-12)
        assert op.energy(rho) == pytest.approx(separable.energy(rho), rel=1e-12)
        np.testing.assert_allclose(op.potential(rho), separable.potential(rho), rtol=1e-11, atol=1e-13)
        for pair in (zip(op.face_velocities(rho), separable.face_velocities(rho)),
                     zip(op.centre_velocities(rho), separable.centre_velocities(rho))):
            for v, w in pair:
                assert (v is None) == (w is None)
                if v is not None:
                    np.testing.assert_allclose(v, w, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("model,axes", [
    ('unit = "gaussian"\nvariance = 0.5', 2),
    ('unit = "tanh(a*x + y)*exp(-c*x**2)"\naxes = ["a", "y", "c"]\ntrain = ["a", "c"]', 3),
])
def test_each_grid_path_is_the_particle_path_on_the_grid_nodes(model, axes):
    """A grid density is the weighted points (cell centres, masses): V at the centres and
    -dV/du_k at the faces equal the particle path's at those points to round-off."""
    problem = unit_problem(model, axes=axes)
    m, grid = problem.model, problem.grid
    op = problem.grid_operator()
    rho = _density(grid, 7)
    points, q = grid.points(), rho.ravel() * grid.cell_volume
    r = m.residual(points, q)
    assert op.risk(rho) == pytest.approx(m.risk(points, q), rel=1e-12)
    np.testing.assert_allclose(op.potential(rho).ravel(), m.potential(points, r), rtol=1e-11, atol=1e-13)
    for axis, v in enumerate(op.face_velocities(rho)):
        assert (v is None) == (not m.trained[axis])
        if v is not None:
            grad = m.gradient(_face_points(grid, axis), r)
            np.testing.assert_allclose(v.ravel(), -grad[:, axis], rtol=1e-11, atol=1e-13)
    for axis, v in enumerate(op.centre_velocities(rho)):
        if v is not None:
            np.testing.assert_allclose(np.broadcast_to(v, grid.shape).ravel(), -m.gradient(points, r)[:, axis],
                                       rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("unit,axes", [("gaussian", None), ("tanh(a*x + y)", ["a", "y"])])
def test_fv_on_a_unit_keeps_mass_and_lowers_the_energy(unit, axes):
    """Both grid paths under the fv solver (the separable one through the fused kernel where
    numba is installed): mass to round-off, a falling energy."""
    from gflow.solvers.fv import FiniteVolumeStepper

    model = f'unit = "{unit}"' + (f"\naxes = {axes}" if axes else "")
    problem = unit_problem(model, extra="")
    stepper = FiniteVolumeStepper(problem, {})
    assert problem.model.separable or not stepper.fused     # the general path has no fused kernel
    energies = [stepper.observe().energy]
    for _ in range(3):
        t = 0.0
        while t < 0.2:
            t += stepper.step(0.2 - t)
        obs = stepper.observe()
        assert obs.mass == pytest.approx(1.0, abs=1e-13)
        energies.append(obs.energy)
    assert np.all(np.diff(energies) < 0), energies


def test_particles_run_a_unit_through_the_numpy_path():
    from gflow.solvers.particle import ParticleStepper

    problem = unit_problem('unit = "gaussian"')
    stepper = ParticleStepper(problem, {"particles": 200, "kernel": "numba", "lr": 0.05})
    risks = [stepper.observe().risk]
    for _ in range(5):
        stepper.step(0.05, fixed=True)
        risks.append(stepper.observe().risk)
    assert np.all(np.diff(risks) < 0), risks


def test_every_family_gives_an_expression_in_its_default_axes():
    for name, family in FAMILIES.items():
        for d in (1, 3):
            inputs = ["x"] if d == 1 else [f"x{i + 1}" for i in range(d)]
            axes = family.default_axes(d)
            params = {k: default for k, (default, _) in family.parameters.items()}
            phi = parse_expression(family.expression(inputs, axes, params), [*inputs, *axes])
            assert all(phi.uses(v) for v in (*inputs, *axes)), name
            assert all(set(members) <= set(axes) for members in family.groups(d).values()), name


def test_a_unit_model_holds_its_data_measure():
    """A DataMeasure handed to the model directly (e.g. the Lebesgue rule of the closed-form
    test) is used as given: weights summing to the interval's length."""
    spec = case_from_text(unit_case('unit = "gaussian"')).model
    t, w = np.polynomial.legendre.leggauss(40)
    model = UnitNetworkModel(spec, DataMeasure(3 * t[:, None], 3 * w, None), lambda x: np.exp(-x[:, 0] ** 2))
    assert model.p.sum() == pytest.approx(6.0, rel=1e-14)
    np.testing.assert_allclose(model.y, np.exp(-(3 * t) ** 2), rtol=1e-15)
