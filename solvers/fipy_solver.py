"""Implicit finite volume on FiPy: backward Euler, second order in space, with Picard sweeps.

The case grid becomes a FiPy `Grid1D/2D/3D` (same cells, translated to the box), the density
a `CellVariable`, and the equation d_t rho = div(rho grad V[rho]) + T lap rho is written in
FiPy's convention (ConvectionTerm(u) is +div(u rho)) as

    TransientTerm() + UpwindConvectionTerm(coeff=w) == DiffusionTerm(coeff=T),

with zero flux through the boundary faces (w = 0 there; FiPy's diffusion default is zero
flux too). Each step is backward Euler; the system is nonlinear (V depends on rho, and so
does the limiter), so it is solved by Picard sweeps: w is re-evaluated from the latest
iterate and the linear system solved again, until the iterate changes by less than
`tolerance` (relative, max norm) or `sweeps` solves were made.

Convection (`convection`):

- "tvd" (default): w_f = v_f F_HO / F_LO, v = -grad V[rho_k] the model's exact face
  velocities and, on each face, F_HO = v^+ rho^- + v^- rho^+ the limited second-order flux of
  the explicit solver `fv` (`fv_flux.axis_flux`: piecewise-linear reconstruction with the
  generalised minmod limiter `theta`, Carrillo, Chertock, Huang, Commun. Comput. Phys. 17
  (2015), eqs. 2.5 and 2.8) and F_LO = v_f rho_upwind the same flux with zero slopes, both
  at the latest iterate rho_k. So FiPy's upwind flux w_f rho_upwind equals F_HO at rho_k
  (`tests/test_fipy.py` checks FiPy's residual against `fv_rhs` to round-off), and at a
  converged sweep the step is backward Euler with fv's second-order limited flux. It is the
  deferred correction "upwind matrix + explicit source F_HO(rho_k) - F_LO(rho_k)", with the
  correction put in the matrix instead of the right-hand side: for rho >= 0 and theta <= 2
  the face value lies in [0, 2 rho_upwind], so F_HO / F_LO is in [0, 2], w_f has v_f's sign,
  and every sweep solves an upwind M-matrix system, whose inverse is >= 0: every iterate,
  converged or not, is >= 0 at any step (the explicit source form measured min rho -4e-5
  after two sweeps at cfl 5 and -3.5e-3 after one at cfl 50, tanh teacher 32^2, and was
  still at -4e-10 after 30 sweeps at cfl 5). The converged scheme is positive at any step as well:
  backward Euler has an unbounded SSP coefficient (Gottlieb, Ketcheson, Shu, "Strong
  Stability Preserving Runge-Kutta and Multistep Time Discretizations", 2011, ch. 2;
  Gottlieb, Shu, Tadmor, SIAM Review 43 (2001)) and the minmod-limited forward-Euler step is
  positive. The fluxes are conservative, so mass is exact to round-off. Measured order in
  space: 1.75 in L1 on the 1-D Ornstein-Uhlenbeck transient, 40 -> 80 -> 160 cells, against
  upwind's 0.83, 0.90 (the time error removed by Richardson extrapolation in dt).
- "exponential" (Scharfetter-Gummel) blends upwind and central by the cell Peclet number
  v h / T, exact for the flux between two cells at constant velocity, so steady states
  exp(-V / T) / Z come out nearly exact (OU on 32 cells: L1 error 5e-6, upwind's 0.13); with
  T = 0 it is plain upwind. First order in space for transients.
- "upwind": FiPy's upwind term with w = v, first order in space (the smearing that put the
  risk 1.7e-2 of the initial risk off a closed-form curve on 160^2). For these two, where V
  does not depend on rho (a potential model without interaction) one solve is exact and the
  sweeps stop there; "tvd" sweeps on, since its limiter factors do depend on rho.

Time: backward Euler is first order, and at the default cfl = 5 its error dominates "tvd"'s:
tanh teacher 64^2, t = 1, L1 distance to fv's density (the same space discretisation, so this
is the time error) 0.048 at cfl 5, 0.011 at cfl 1, 0.0022 at cfl 0.2, while the space error
(fv 64^2 against 256^2) is 0.008; risk 9.2e-4, 1.8e-4, 3.5e-5 against 3.8e-4. Upwind:
0.117, 0.091, 0.085 (space-dominated). For accuracy at "tvd"'s level, take cfl ~1.

Options (`[solver]` table, kind = "fipy"):

sweeps : int
    Most Picard sweeps (linear solves) per step.
tolerance : float
    Sweeps stop once max|rho_k - rho_(k-1)| <= tolerance * max|rho_k|. "tvd"'s sweeps converge
    linearly (per sweep by ~0.35 at cfl 5, ~0.9 at cfl 50, slower where the limiter switches):
    the defaults, 1e-6 within 12 sweeps, converge at cfl 5 in ~7 sweeps (quickstart 64^2 to
    t = 1: 7.1 per step, every step converged; 1e-8 within 8 stopped every step at the cap),
    an iteration error far below the time error. A step that stops at the cap is kept if its
    energy fell (`step`).
cfl : float
    The step as a multiple of the explicit limit `solvers.fv_flux.stable_dt` (the forward-Euler
    positivity step of the explicit scheme, re-evaluated from the current velocity every step);
    a case `[time].dt` caps it, and so do the step control's growth cap and retries (`step`).
    The fv solver steps at 0.8 of the same limit, so cfl = 5 is 6.25 fv steps.
convection : "tvd" | "exponential" | "upwind"
    Above. All are implicit and keep rho >= 0 at any step (BACKGROUND.md: FiPy's explicit
    VanLeer term does not beyond ~8x CFL).
theta : float
    The generalised minmod parameter of "tvd", in [1, 2] (2, fv's default: least diffusive).
linear_solver : "lu" | "bicgstab"
    "lu" (default): SciPy's sparse LU through FiPy, exact to round-off, so mass is conserved
    to round-off. "bicgstab": SciPy's unpreconditioned BiCGSTAB to a relative residual of
    1e-12, which mass conservation at the run loop's 1e-10 needs; BACKGROUND.md found BiCGSTAB
    ~2.5x faster than LU at FiPy's default tolerance, but at 1e-12 it was no faster here
    (quickstart 192 x 128: 1.6 s per step against LU's 1.4 s).

Cost: about half of each sweep is FiPy assembling the matrix from its variable expressions,
half the linear solve; the velocity and "tvd"'s face factors (numpy) are negligible, so a
"tvd" sweep costs an upwind one (16 ms on 64^2) and "tvd" costs more per step only by its
sweeps: 64^2 tanh teacher, 132 ms per step (8 sweeps) against upwind's 95 (5.8) at cfl 5,
131 against 60 (4.0) at cfl 1. It buys steps beyond the explicit limit and an independent
implementation, not speed (fv: 53 steps in 0.14 s; see `benchmarks/eulerian_steps.py`).
"""
from __future__ import annotations

import numpy as np

import fipy
from fipy.solvers.scipy import LinearBicgstabSolver, LinearLUSolver

from gflow.solvers.base import Observation, Stepper, grid_of
from gflow.solvers.birth_death import refuse_reaction
from gflow.solvers.wfr import refuse_fisher_rao
from gflow.solvers.fv_flux import axis_flux, stable_dt

#: the implicit FiPy term of each `convection` choice; "tvd" is the upwind term with the
#: limiter's face factor folded into its coefficient (`limited_face_velocities`)
CONVECTION = {"tvd": fipy.UpwindConvectionTerm, "exponential": fipy.ExponentialConvectionTerm,
              "upwind": fipy.UpwindConvectionTerm}
#: relative residual of the iterative linear solver
KRYLOV_TOLERANCE = 1e-12
#: a step may be at most this multiple of the last one; one whose sweeps do not converge and
#: whose energy rose is retried at half the step, at most RETRIES times (then taken, and
#: counted as unconverged)
GROWTH = 1.25
RETRIES = 6


def fipy_mesh(grid):
    """The case grid as a uniform FiPy mesh with the same cells, at the same place."""
    h, n = grid.spacing, grid.cells
    origin = tuple((lo,) for lo, _ in grid.bounds)
    if grid.ndim == 1:
        mesh = fipy.Grid1D(dx=h[0], nx=n[0])
    elif grid.ndim == 2:
        mesh = fipy.Grid2D(dx=h[0], dy=h[1], nx=n[0], ny=n[1])
    else:
        mesh = fipy.Grid3D(dx=h[0], dy=h[1], dz=h[2], nx=n[0], ny=n[1], nz=n[2])
    return mesh + origin


def cell_order(mesh, grid) -> np.ndarray:
    """index[i] = the C-order position in the case grid of FiPy cell i."""
    x = np.asarray(mesh.cellCenters.value).reshape(grid.ndim, -1)
    lo = np.array([b[0] for b in grid.bounds])[:, None]
    index = np.rint((x - lo) / grid.spacing[:, None] - 0.5).astype(int)
    flat = np.ravel_multi_index(tuple(index), grid.shape)
    if not np.array_equal(np.sort(flat), np.arange(grid.size)):
        raise RuntimeError("FiPy's cells do not match the case grid")
    return flat


def face_orders(mesh, grid) -> list[np.ndarray]:
    """ids[k][j] = the FiPy face holding entry j (C order) of gflow's face array for axis k.

    gflow's face array for axis k has the grid's shape with n_k + 1 along axis k
    (`grid.face_mesh(k)`); FiPy numbers all faces of all orientations in one list.
    """
    D = grid.ndim
    x = np.asarray(mesh.faceCenters.value).reshape(D, -1)
    normal_axis = np.abs(np.asarray(mesh.faceNormals).reshape(D, -1)).argmax(axis=0)
    lo = np.array([b[0] for b in grid.bounds])
    out = []
    for k in range(D):
        ids = np.flatnonzero(normal_axis == k)
        # along k a face sits at lo + i h; across, at cell centres lo + (i + 1/2) h
        index = tuple(np.rint((x[j, ids] - lo[j]) / grid.spacing[j] - (0.0 if j == k else 0.5)).astype(int)
                      for j in range(D))
        shape = list(grid.shape)
        shape[k] += 1
        flat = np.ravel_multi_index(index, shape)
        if len(ids) != np.prod(shape) or not np.array_equal(np.sort(flat), np.arange(len(ids))):
            raise RuntimeError(f"FiPy's faces normal to axis {k} do not match the case grid")
        order = np.empty(len(ids), dtype=int)
        order[flat] = ids
        out.append(order)
    return out


class FiPyStepper(Stepper):
    """Backward Euler on FiPy with Picard sweeps for the nonlocal velocity."""

    kind = "fipy"

    def __init__(self, problem, options):
        super().__init__(problem, options)
        refuse_reaction(problem, self.kind)
        refuse_fisher_rao(problem, self.kind)
        grid = self.grid = grid_of(problem)
        self.operator = problem.grid_operator()
        self.sweeps = self.options["sweeps"]
        self.tolerance = self.options["tolerance"]
        self.cfl = self.options["cfl"]
        self.temperature = problem.temperature
        if grid.ndim > 3:
            raise ValueError(f"FiPy meshes have at most 3 axes; this case has {grid.ndim}"
                             + (" (the layer axis and 3 per layer)" if problem.layers else "") + ": use fv")
        if self.temperature > 0 and not np.all(problem.model.trained):
            raise ValueError("diffusion along trained axes only (a frozen axis with temperature > 0) "
                             "is not supported by the fipy solver; use fv")
        self.mesh = fipy_mesh(grid)
        self.cells = cell_order(self.mesh, grid)
        self.faces = face_orders(self.mesh, grid)
        # boundary faces carry no flux: their velocity stays zero
        self.interior = []
        for k in range(grid.ndim):
            shape = list(grid.shape)
            shape[k] += 1
            mask = np.ones(shape, dtype=bool)
            np.moveaxis(mask, k, 0)[[0, -1]] = False
            self.interior.append(mask.ravel())
        self.rho = fipy.CellVariable(mesh=self.mesh, value=self._to_fipy(problem.initial_density()), hasOld=True)
        self._velocity_value = np.zeros((grid.ndim, self.mesh.numberOfFaces))
        self.velocity = fipy.FaceVariable(mesh=self.mesh, rank=1, value=self._velocity_value)
        term = CONVECTION[self.options["convection"]]
        rhs = fipy.DiffusionTerm(coeff=self.temperature) if self.temperature > 0 else 0.0
        #: the upwind coefficient carries the limiter's face factor of the latest iterate
        self.deferred = self.options["convection"] == "tvd"
        self.theta = self.options["theta"]
        # the case check refuses theta outside [1, 2] already; this guards options given in Python
        if self.deferred and not 1.0 <= self.theta <= 2.0:
            raise ValueError(f"theta = {self.theta:g}: the fipy solver's tvd convection needs 1 <= theta <= 2 "
                             "(beyond 2 the limited face values, hence the implicit matrix, can lose positivity)")
        self.equation = fipy.TransientTerm() + term(coeff=self.velocity) == rhs
        if self.options["linear_solver"] == "lu":
            self.solver = LinearLUSolver(tolerance=1e-15, iterations=10)
        else:
            self.solver = LinearBicgstabSolver(tolerance=KRYLOV_TOLERANCE, iterations=10000)
        self.steps = self.total_sweeps = self.unconverged = self.limited_steps = self.rejected = 0
        #: the last step not cut short by a snapshot time (the growth cap's reference)
        self._last_step = np.inf

    # ------------------------------------------------------------------ layout
    def _to_fipy(self, rho: np.ndarray) -> np.ndarray:
        return rho.ravel()[self.cells]

    def density(self) -> np.ndarray:
        out = np.empty(self.grid.size)
        out[self.cells] = np.asarray(self.rho.value)
        return out.reshape(self.grid.shape)

    def set_velocity(self, velocities) -> None:
        """Put gflow's per-axis face velocities into FiPy's face variable (zero at the boundary)."""
        value = self._velocity_value
        for k, v in enumerate(velocities):
            if v is not None:
                value[k, self.faces[k]] = np.where(self.interior[k], np.ravel(v), 0.0)
        self.velocity.setValue(value)

    def limited_face_velocities(self, rho: np.ndarray, velocities) -> list:
        """v_f F_HO / F_LO on each face: with it FiPy's implicit upwind flux w_f rho_upwind is,
        at rho, the limited second-order flux F_HO = v^+ rho^- + v^- rho^+ of `fv_flux.axis_flux`.

        F_LO = v rho_upwind is the same flux with zero slopes (theta = 0: the generalised
        minmod of 0, the central difference and 0 is 0). For rho >= 0 and theta <= 2 the
        reconstructed face value lies in [0, 2 rho_upwind], so the factor is in [0, 2] (clipped
        there against round-off; 1 where F_LO = 0, where F_HO = 0 too) and w_f has the sign of
        v_f: the matrix stays the upwind M-matrix.
        """
        out = []
        for k, v in enumerate(velocities):
            if v is None:
                out.append(None)
                continue
            r, vk = np.moveaxis(rho, k, 0), np.moveaxis(v, k, 0)
            high = axis_flux(r, vk, 1.0, self.theta, 0.0)
            low = axis_flux(r, vk, 1.0, 0.0, 0.0)
            nonzero = low != 0
            factor = np.ones_like(vk)
            factor[1:-1] = np.clip(np.where(nonzero, high / np.where(nonzero, low, 1.0), 1.0), 0.0, 2.0)
            out.append(np.moveaxis(vk * factor, 0, k))
        return out

    # ------------------------------------------------------------------ stepping
    def step(self, dt_max: float, fixed: bool = False) -> float:
        """One backward-Euler step; one whose Picard sweeps do not converge and whose energy
        rose is retried at half the step (up to RETRIES times), and steps grow at most GROWTH
        times the last one.

        Near equilibrium the velocity, hence the explicit limit, vanishes while the nonlocal
        V[rho] still couples the cells: with the explicit limit alone, small.toml to t = 200
        (three snapshots) took steps whose sweeps never converged and its energy rose.
        """
        rho = self.density()
        velocities = self.operator.face_velocities(rho)
        dt = min(dt_max, self.cfl * stable_dt(velocities, self.grid.spacing, self.temperature),
                 GROWTH * self._last_step)
        self.rho.updateOld()
        start = np.asarray(self.rho.value).copy()
        energy = None
        for retry in range(RETRIES + 1):
            converged = self._sweep(velocities, dt, start.copy())
            if converged or self.sweeps == 1 or retry == RETRIES:
                break
            energy = self.operator.energy(rho) if energy is None else energy
            if self.operator.energy(self.density()) <= energy:
                break      # not the implicit solution yet, but a step that dissipates
            self.rejected += 1
            self.rho.setValue(start)
            dt *= 0.5
        if dt < dt_max:
            self.limited_steps += 1
        # a step cut short to land on a snapshot time says nothing against the next one
        self._last_step = max(self._last_step, dt) if dt >= dt_max else dt
        self.unconverged += not converged and self.sweeps > 1
        self.steps += 1
        return dt

    def _sweep(self, velocities, dt: float, previous: np.ndarray) -> bool:
        """The Picard sweeps of one step of dt from the old value; whether they converged."""
        converged = False
        rho = None
        for sweep in range(self.sweeps):
            if self.deferred:
                rho = self.density() if rho is None else rho
                self.set_velocity(self.limited_face_velocities(rho, velocities))
            else:
                self.set_velocity(velocities)
            self.equation.sweep(var=self.rho, dt=dt, solver=self.solver)
            self.total_sweeps += 1
            current = np.asarray(self.rho.value)
            change = np.abs(current - previous).max()
            previous = current.copy()
            if sweep and change <= self.tolerance * np.abs(current).max():
                converged = True
                break
            if sweep + 1 < self.sweeps:
                rho = self.density()
                refreshed = self.operator.face_velocities(rho)
                if not self.deferred and all(v is w or np.array_equal(v, w) for v, w in zip(refreshed, velocities)):
                    converged = True      # V does not depend on rho (no interaction): done
                    break
                velocities = refreshed
        return converged

    def observe(self) -> Observation:
        rho = self.density()
        risk = self.operator.risk(rho)
        return Observation(rho, risk, self.operator.energy(rho, risk), self.grid.mass(rho))

    def restore(self, density: np.ndarray, positions, state) -> None:
        """Continue from a snapshot: the density is the whole state of a backward-Euler step."""
        self.rho.setValue(self._to_fipy(np.asarray(density, dtype=float)))
        self.rho.updateOld()
        self._last_step = float(state.get("last_step", np.inf))

    def restart_state(self) -> dict:
        """The growth cap's reference step, so that a resumed run steps as if never stopped."""
        return {"last_step": float(self._last_step)}

    def summary(self) -> str:
        if not self.steps:
            return ""
        text = f"{self.total_sweeps / self.steps:.2f} sweeps per step"
        if self.rejected:
            text += f", {self.rejected} steps retried at half the step (sweeps unconverged, energy rising)"
        if self.unconverged:
            text += f", {self.unconverged} steps stopped at {self.sweeps} sweeps above tolerance"
        return text
