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
    geometrically, so the steps are kept short enough for the tail to stay clear.)"""
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = one_d("x")
    stepper = FiPyStepper(problem, options(cfl=1.0))     # short enough that the implicit tail stays off the wall
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

    Stated tolerance: risk within 1% of fv's (measured 0.39%), L1 distance to fv's density
    below 0.15 (measured 0.117, the first-order upwind smearing), rho >= 0, mass to
    round-off, the energy falling at every step.
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
    assert abs(final.risk - ref.risk) < 0.01 * ref.risk
    assert np.abs(final.density - ref.density).sum() * problem.grid.cell_volume < 0.15
    assert min(o.density.min() for o in seen) > -1e-14
    assert max(abs(o.mass - 1.0) for o in seen) < 1e-12
    assert np.all(np.diff([o.energy for o in seen]) < 0)


def test_the_long_step_adds_less_error_than_the_grid():
    """At 32^2 the 5x step changes the risk by less than fipy's distance to fv (t = 1)."""
    from gflow.solvers.fipy_solver import FiPyStepper
    from gflow.solvers.fv import FiniteVolumeStepper

    problem = tanh_teacher(32, 1.0)
    risks = {}
    for cfl in (1.0, 5.0):
        stepper = FiPyStepper(problem, options(cfl=cfl))
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
    """After a step, one more sweep with the velocity of the result changes it by < tolerance."""
    from gflow.solvers.fipy_solver import FiPyStepper

    problem = tanh_teacher(32, 1.0)
    stepper = FiPyStepper(problem, options(tolerance=1e-9, sweeps=20))
    dt = stepper.step(1.0)
    before = stepper.density()
    stepper.set_velocity(stepper.operator.face_velocities(before))
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
