"""The implicit FiPy solver: grid mapping, signs, stability beyond the explicit CFL step, mass."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import TANH_TEACHER, check_snapshot, has_module
from gflow.case import case_from_text
from gflow.problem import build_problem
from gflow.solvers.loop import run
from gflow.solvers.trackers import standard_trackers
from gflow.snapshots import SnapshotWriter, open_run
from gflow.solver_options import defaults
from gflow.grids import CartesianGrid

pytestmark = pytest.mark.skipif(not has_module("fipy"), reason="needs FiPy")

ONE_D = """
[model]
kind = "potential"
axes = ["x"]
potential = "POTENTIAL"
[regularization]
temperature = TEMPERATURE
[initial]
distribution = "gaussian"
mean = [1.0]
std = [0.3]
[grid]
bounds = [[-4.0, 4.0]]
cells = [64]
[time]
end = 1.0
"""


def options(kind="fipy", **changes):
    opts = defaults(kind)
    opts.update(changes)
    return opts


def advance(stepper, end: float, each=None) -> int:
    """Step to `end` as the stepper chooses; return the number of steps."""
    t, steps = 0.0, 0
    while t < end * (1 - 1e-14):
        t += stepper.step(end - t)
        steps += 1
        if each is not None:
            each(stepper.observe())
    return steps


def one_d(potential: str, temperature: float = 0.0, cells: int = 64):
    text = ONE_D.replace("POTENTIAL", potential).replace("TEMPERATURE", repr(temperature))
    return build_problem(case_from_text(text, overrides=[f"grid.cells=[{cells}]"]))


@pytest.mark.parametrize("bounds, cells", [
    (((-1.0, 2.0),), (7,)),
    (((-4.0, 4.0), (-5.0, 3.0)), (5, 4)),
    (((-1.0, 1.0), (0.0, 3.0), (-2.0, -1.0)), (3, 4, 2)),
])
def test_mesh_cells_and_faces_map_onto_the_case_grid(bounds, cells):
    from gflow.solvers.fipy_solver import cell_order, face_orders, fipy_mesh

    grid = CartesianGrid(bounds, cells)
    mesh = fipy_mesh(grid)
    D = grid.ndim
    centres = np.asarray(mesh.cellCenters.value).reshape(D, -1)
    assert np.allclose(centres.T, grid.points()[cell_order(mesh, grid)])
    faces = np.asarray(mesh.faceCenters.value).reshape(D, -1)
    for k, ids in enumerate(face_orders(mesh, grid)):
        full = np.meshgrid(*[grid.faces[j] if j == k else grid.centres[j] for j in range(D)], indexing="ij")
        assert np.allclose(faces[:, ids], np.stack([c.ravel() for c in full]))
        normals = np.asarray(mesh.faceNormals).reshape(D, -1)[:, ids]
        assert np.allclose(np.abs(normals[k]), 1.0)


def test_velocity_sign_and_exact_drift():
    """P = x: v = -1 moves the mean left at speed 1 exactly (fluxes telescope), mass stays.

    (Exact while the density is off the walls: the implicit upwind tail reaches downstream
    geometrically, so the steps are kept short enough for the tail to stay clear. Upwind
    only: the limited slopes of "tvd" do not sum to zero where the limiter clips the peak, so
    its mean moves at 1 + O(h^2), measured 0.5008 for 0.5 here.)"""
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = one_d("x")
    # short steps: the implicit tail stays off the wall
    stepper = FiPyStepper(problem, options(cfl=1.0, convection="upwind"))
    x, h = problem.grid.centres[0], problem.grid.spacing[0]
    mean0 = (x * stepper.observe().density).sum() * h
    advance(stepper, 0.5)
    rho = stepper.observe().density
    assert (x * rho).sum() * h == pytest.approx(mean0 - 0.5, abs=1e-10)
    assert rho.sum() * h == pytest.approx(1.0, abs=1e-13)
    assert stepper.summary().startswith("1.00 sweeps")      # V does not depend on rho: one solve


def test_zero_flux_boundary_keeps_the_mass():
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = one_d("3*x", cells=32)
    stepper = FiPyStepper(problem, options(cfl=100.0))
    advance(stepper, 6.0)     # the whole blob is pushed against the left wall
    rho = stepper.observe().density
    assert rho.sum() * problem.grid.spacing[0] == pytest.approx(1.0, abs=1e-13)
    assert rho[0] > 0.5 * rho.max() and rho.min() > -1e-14 * rho.max()     # >= 0 up to LU round-off


def test_exponential_convection_reaches_the_gibbs_steady_state():
    """OU, P = x^2/2, T = 1/4: the steady state exp(-x^2 / 2T) / Z; Scharfetter-Gummel is
    ~1e4x closer to it than upwind (measured L1 5e-6 vs 0.13 on 32 cells)."""
    from gflow.solvers.fipy_solver import FiPyStepper

    errors = {}
    for convection in ("exponential", "upwind"):
        problem = one_d("0.5*x**2", 0.25, cells=32)
        stepper = FiPyStepper(problem, options(cfl=50.0, convection=convection))
        advance(stepper, 20.0)
        x, h = problem.grid.centres[0], problem.grid.spacing[0]
        gibbs = np.exp(-x**2 / 0.5)
        gibbs /= gibbs.sum() * h
        errors[convection] = np.abs(stepper.observe().density - gibbs).sum() * h
    assert errors["exponential"] < 1e-4
    assert errors["upwind"] > 100 * errors["exponential"]


def tanh_teacher(cells: int, end: float):
    return build_problem(case_from_text(TANH_TEACHER, overrides=[f"grid.cells=[{cells}, {cells}]",
                                                               f"time.end={end}"]))


def test_stable_and_accurate_at_five_times_the_explicit_step():
    """TANH_TEACHER (the first quickstart), 64^2, t = 1, dt = 5 x the explicit limit.

    Stated tolerance, with the default convection = "tvd": risk within 0.5% of fv's
    (measured 0.23%; upwind 0.39%), L1 distance to fv's density below 0.08 (measured 0.048,
    the backward-Euler time error: 0.011 at cfl 1; upwind 0.117, its first-order smearing),
    rho >= 0 and mass to round-off at every step (every sweep solves an upwind M-matrix
    system), the energy falling at every step.
    """
    from gflow.solvers.fipy_solver import FiPyStepper
    from gflow.solvers.fv import FiniteVolumeStepper

    problem = tanh_teacher(64, 1.0)
    stepper = FiPyStepper(problem, options(cfl=5.0))
    seen = [stepper.observe()]
    advance(stepper, 1.0, seen.append)
    fv = FiniteVolumeStepper(problem, options("fv"))
    steps_fv = advance(fv, 1.0)
    final, ref = seen[-1], fv.observe()
    assert len(seen) - 1 <= steps_fv / 5          # it did take the long steps (9 vs 53)
    assert abs(final.risk - ref.risk) < 0.005 * ref.risk
    assert np.abs(final.density - ref.density).sum() * problem.grid.cell_volume < 0.08
    assert min(o.density.min() for o in seen) > -1e-14
    assert max(abs(o.mass - 1.0) for o in seen) < 1e-12
    assert np.all(np.diff([o.energy for o in seen]) < 0)


def test_the_long_step_adds_less_error_than_the_grid():
    """Upwind at 32^2: the 5x step changes the risk by less than fipy's distance to fv (t = 1).

    Not so with "tvd": its space discretisation is fv's, so the distance to fv at cfl 1 is
    the backward-Euler time error alone (3.3e-4) and the 5x step's change is larger (1.3e-3)."""
    from gflow.solvers.fipy_solver import FiPyStepper
    from gflow.solvers.fv import FiniteVolumeStepper

    problem = tanh_teacher(32, 1.0)
    risks = {}
    for cfl in (1.0, 5.0):
        stepper = FiPyStepper(problem, options(cfl=cfl, convection="upwind"))
        advance(stepper, 1.0)
        risks[cfl] = stepper.observe().risk
    fv = FiniteVolumeStepper(problem, options("fv"))
    advance(fv, 1.0)
    grid_error = abs(risks[1.0] - fv.observe().risk)
    assert abs(risks[5.0] - risks[1.0]) < grid_error


def test_far_beyond_the_explicit_step_stays_positive_and_conservative():
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = tanh_teacher(32, 2.0)
    stepper = FiPyStepper(problem, options(cfl=50.0))
    E0 = stepper.observe().energy
    assert stepper.step(2.0) == 2.0      # one step of 2.0, about 60 explicit steps
    obs = stepper.observe()
    assert obs.density.min() > -1e-14 and abs(obs.mass - 1.0) < 1e-13 and obs.energy < E0
    assert np.all(np.isfinite(obs.density))


def test_sweeps_converge_to_the_implicit_solution():
    """After a step, one more sweep with the velocity (and, for "tvd", the limiter's face
    factors) of the result changes it by < tolerance: the step is backward Euler with the
    limited second-order flux."""
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = tanh_teacher(32, 1.0)
    stepper = FiPyStepper(problem, options(tolerance=1e-9, sweeps=60))
    dt = stepper.step(1.0)
    assert stepper.unconverged == 0
    before = stepper.density()
    stepper.set_velocity(stepper.limited_face_velocities(before, stepper.operator.face_velocities(before)))
    stepper.equation.sweep(var=stepper.rho, dt=dt, solver=stepper.solver)
    assert np.abs(stepper.density() - before).max() < 1e-8 * before.max()
    lagged = FiPyStepper(problem, options(sweeps=1))
    lagged.step(1.0)
    assert np.abs(lagged.density() - before).max() > 1e-6 * before.max()   # the sweeps mattered


def test_bicgstab_agrees_with_lu():
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = tanh_teacher(32, 0.5)
    results = {}
    for name in ("lu", "bicgstab"):
        stepper = FiPyStepper(problem, options(linear_solver=name))
        advance(stepper, 0.5)
        results[name] = stepper.observe()
    assert np.abs(results["lu"].density - results["bicgstab"].density).max() < 1e-9
    assert abs(results["bicgstab"].mass - 1.0) < 1e-12


def test_langevin_run_writes_valid_snapshots_and_conserves_mass(tmp_path):
    """T > 0 (the DiffusionTerm) and weight decay through the run loop and the snapshot writer."""
    from gflow.solvers.fipy_solver import FiPyStepper

    text = TANH_TEACHER + "\n[regularization]\nweight_decay = 1.0\ntemperature = 0.1\n"
    problem = build_problem(case_from_text(text, overrides=["grid.cells=[24, 24]"]))
    stepper = FiPyStepper(problem, options())
    path = tmp_path / "fipy.h5"
    writer = SnapshotWriter(path, case_text=text, solver="fipy", axes=problem.axes,
                            coordinates=problem.grid.centres, extras=stepper.extra_names())
    run(stepper, np.linspace(0.0, 1.0, 3), standard_trackers(writer, stepper, end=1.0, progress=False))
    check_snapshot(path)
    result = open_run(path)
    assert np.abs(result.mass - 1.0).max() < 1e-12
    assert np.all(np.diff(result.energy) < 0)
    assert result.density(-1).min() > -1e-14


def test_restore_from_a_snapshot_continues_exactly():
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = tanh_teacher(16, 1.0)
    straight = FiPyStepper(problem, options())
    straight.step(0.2)
    resumed = FiPyStepper(problem, options())
    resumed.restore(straight.observe().density, None, straight.restart_state())
    straight.step(0.2)
    resumed.step(0.2)
    assert np.abs(straight.observe().density - resumed.observe().density).max() < 1e-13


def test_tvd_face_velocities_make_fipys_upwind_term_the_limited_second_order_flux():
    """FiPy's implicit upwind residual is -|cell| fv_rhs with zero slopes (F_LO, zero flux
    through the boundary faces) for the face velocities v, and -|cell| fv_rhs with the limited
    slopes (F_HO, the explicit fv solver's divergence) for tvd's w = v F_HO / F_LO, to round-off."""
    import fipy
    from gflow.solvers.fipy_solver import FiPyStepper
    from gflow.solvers.fv_flux import fv_rhs

    problem = tanh_teacher(12, 1.0)
    stepper = FiPyStepper(problem, options())
    grid = stepper.grid
    rng = np.random.default_rng(1)
    rho = rng.random(grid.shape) ** 3          # rough, with near-zero cells: the limiter is active
    velocities = []
    for k in range(grid.ndim):
        shape = list(grid.shape)
        shape[k] += 1
        velocities.append(rng.standard_normal(shape))
    var = fipy.CellVariable(mesh=stepper.mesh, value=stepper._to_fipy(rho))
    term = fipy.UpwindConvectionTerm(coeff=stepper.velocity)
    for face_velocities, theta in ((velocities, 0.0), (stepper.limited_face_velocities(rho, velocities), 2.0)):
        stepper.set_velocity(face_velocities)
        residual = np.empty(grid.size)
        residual[stepper.cells] = np.asarray(term.justResidualVector(var=var))
        zero_flux = [np.where(np.reshape(mask, v.shape), v, 0.0) for mask, v in zip(stepper.interior, velocities)]
        expected = -grid.cell_volume * fv_rhs(rho, zero_flux, grid.spacing, theta, 0.0)
        assert np.abs(residual.reshape(grid.shape) - expected).max() < 1e-13 * np.abs(expected).max()
    upwind = -grid.cell_volume * fv_rhs(rho, zero_flux, grid.spacing, 0.0, 0.0)
    assert np.abs(expected - upwind).max() > 0.1 * np.abs(expected).max()     # the limiter did act


OU = """
[model]
kind = "potential"
axes = ["x"]
potential = "0.5*x**2"
[regularization]
temperature = 0.05
[initial]
distribution = "gaussian"
mean = [1.0]
std = [0.3]
[grid]
bounds = [[-1.5, 2.5]]
cells = [40]
[time]
end = 0.5
"""


def test_tvd_is_second_order_in_space_on_the_ornstein_uhlenbeck_transient():
    """V = x^2/2, T = 0.05, Gaussian start (mean 1, variance 0.09): the density stays Gaussian,
    mean e^-t, variance T + (0.09 - T) e^-2t; L1 error against its exact cell averages at t = 0.5.

    The backward-Euler error is first order in dt with a leading term independent of h; the
    Richardson combination 2 rho(dt/2) - rho(dt) of dt = 0.01 removes it (what is left moves
    the error at 160 cells by 4%: 9.6e-4 with dt = 0.01, 9.2e-4 with 0.005). Measured L1
    1.08e-2, 3.22e-3, 9.58e-4 at 40, 80, 160 cells: order 1.75, 1.75 ("upwind": 0.83, 0.90).
    """
    from scipy.special import ndtr
    from gflow.solvers.fipy_solver import FiPyStepper

    end, dt, T = 0.5, 0.01, 0.05
    cells, errors = (40, 80, 160), []
    for n in cells:
        problem = build_problem(case_from_text(OU, overrides=[f"grid.cells=[{n}]"]))
        grid = problem.grid
        mean, variance = np.exp(-end), T + (0.09 - T) * np.exp(-2 * end)
        exact = np.diff(ndtr((grid.faces[0] - mean) / np.sqrt(variance))) / grid.spacing[0]
        final = {}
        for step in (dt, dt / 2):
            stepper = FiPyStepper(problem, options(cfl=1e9))    # the fixed step, never the CFL one
            for _ in range(round(end / step)):
                assert stepper.step(step) == step
            final[step] = stepper.observe().density
        errors.append(np.abs(2 * final[dt / 2] - final[dt] - exact).sum() * grid.spacing[0])
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders >= 1.7), (errors, orders)
    assert errors[-1] < 1.5e-3


@pytest.mark.parametrize("sweeps", [1, 3])
def test_tvd_iterates_stay_positive_before_they_converge(sweeps):
    """cfl 50 from the tanh teacher's start: one or three sweeps are far from converged (the
    explicit-source form of the deferred correction gave min rho -3.5e-3 after one), yet each
    solves an upwind M-matrix system: rho >= 0 and mass to round-off."""
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = tanh_teacher(32, 2.0)
    stepper = FiPyStepper(problem, options(cfl=50.0, sweeps=sweeps))
    stepper.step(2.0)
    obs = stepper.observe()
    assert stepper.unconverged == (sweeps > 1)
    assert obs.density.min() > -1e-14 * obs.density.max() and abs(obs.mass - 1.0) < 1e-13


def test_tvd_refuses_a_limiter_beyond_two():
    from gflow.solvers.fipy_solver import FiPyStepper

    with pytest.raises(ValueError, match="theta"):
        FiPyStepper(tanh_teacher(8, 1.0), options(theta=2.5))
