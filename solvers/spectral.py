"""Pseudo-spectral solver on the zero-flux box (cosines) or the periodic one (Fourier).

The density is carried as point values rho_j at the cell centres, i.e. as its interpolant in
the basis of `gflow.solvers.spectral_bases`: cosines (`basis = "cosine"`, the default), whose
weak form has the zero-flux walls of every other gflow grid solver as its natural boundary
condition, or Fourier modes (`basis = "fourier"`), the periodic box. In coefficient space

    d_t rho_hat = -T |k|^2 rho_hat + N_hat(rho),   N(rho) = -div(rho v),   v = -grad V,

(|k|^2 summed over trained axes: frozen axes do not diffuse). The flux rho v is formed in
physical space from the exact velocity at the centres (`grid_operator.centre_velocities`, no
differencing of V for two-layer models) and its divergence is taken in the basis, then
filtered by sigma(k) = prod_axes sigma(|k_axis| / k_max). The stiff linear part is integrated
exactly by the integrating factor exp(-T |k|^2 t) and the rest by classical RK4 on the
transformed variable (Lawson's integrating-factor RK4; Kassam & Trefethen, SIAM J. Sci.
Comput. 26 (2005), section 2, "IFRK4"). The mean mode is never touched (the divergence has
none, sigma(0) = 1, exp(0) = 1): mass is exact to round-off in both bases.

Cell averages and point values differ by the multiplier prod_axes sinc(k h / 2) in both bases
(the cell average of cos(k (x - lo)) is sinc(k h / 2) cos(k (x_j - lo))): the initial cell
averages (`Problem.initial_density`) are turned into point values by dividing by it, and the
snapshot density is turned back into cell averages, so that snapshots compare cell by cell
with the finite-volume solvers and the pipeline stays spectrally accurate. Risk and energy
are evaluated on the point values (the midpoint rule, spectrally accurate for either basis).

Fronts and kinks. Where V has kinks (a relu unit: V is not differentiable where w.x + b = 0
at a data point), the density leans on a wall (its even extension has a kink) or the flow
builds edges (a singular interaction's compactly supported steady states), the density is not
smooth and its interpolant oscillates (Gibbs). The default filter is Hou & Li's
exp(-36 (|k| / k_max)^36), which removes only the last ~15% of each axis' modes, and the
stronger exp(-36 (|k| / k_max)^8) (Vandeven order 8) where the model has a singular
interaction; `chosen_filter` gives the measurements behind the choice. Negative values
are never clipped: each snapshot records `min_density` and `negative_mass` (the mass of the
negative part) of the stored cell averages. Once the negative mass of the point values passes
NEGATIVE_MASS_LIMIT the run stops with a `RunError` saying so, keeping the snapshots written
until then: beyond a few percent the undershoot is no longer a small error but the solution.

Refused cases (ValueError, one line, before any work): more than 3 axes; for the Fourier
basis an initial density on the box's boundary cells above EDGE_TOLERANCE of its maximum (the
periodic box would wrap it around); a grid too coarse for the initial density (the negative
mass of its interpolant above INITIAL_NEGATIVE_LIMIT).

Options (`[solver]` table, kind = "spectral"):

basis : "cosine" | "fourier"
    The zero-flux box (the problem every other solver solves) or the periodic one.
filter : "auto" | "exponential" | "dealias" | "none"
    sigma(k) applied to the flux divergence. "auto": "exponential" of order 36, or of order 8
    where the model has a singular interaction (`Model.singular_interaction`); "exponential":
    exp(-36 (|k| / k_max)^filter_order); "dealias": the 2/3 rule, modes with |k| > 2/3 k_max
    dropped on each axis; "none": no filter (the Fourier Nyquist mode's odd derivative is
    always dropped).
filter_order : int
    The exponential filter's order; 0: as "auto" says. Refused with "dealias" and "none".
cfl : float
    The step is `cfl` times the RK4 advective limit 2 sqrt(2) / sum_k (max|v_k| k_max,k),
    re-evaluated every step from the current velocity (adaptive); a case `[time].dt` caps it
    (fixed steps while it is below the limit; the run loop counts the shortened ones).
threads : int
    FFTW threads; 0 picks them: 1 below 2^18 cells, all available cores above. Measured on
    the project's 2-core machines (pyFFTW 0.15, one forward + backward real transform,
    `python -m benchmarks.eulerian_steps --fft-threads`): idle, 128^2 took 0.07-0.10 ms with
    1 thread and 0.1-6 ms with 2, while 512^2 and 64^3 gained 1.3-1.8x from 2 threads; with
    other processes running, 2 threads lost at every size (128^2: 0.11 vs 2.6 ms, 512^2:
    4.2 vs 58 ms). The FFTs are a small part of a step on the quickstart grid anyway (the
    velocity and the products dominate).
"""
from __future__ import annotations

import numpy as np

from gflow.errors import RunError
from gflow.fft import available_threads
from gflow.solvers.base import Observation, Stepper, grid_of
from gflow.solvers.birth_death import Reactor, reaction_of
from gflow.solvers.spectral_bases import BASES, filter_factor
from gflow.solvers.wfr import refuse_fisher_rao

#: largest initial density on the box's boundary cells, relative to its maximum, that the
#: periodic box may wrap around: the jump it leaves in the periodic extension perturbs the
#: solution by about that relative amount (Gibbs), far below any grid's discretisation
#: error at 1e-6; much larger and the oscillations would be the solution's main error
EDGE_TOLERANCE = 1e-6
#: cells from which all available cores are used for the FFTs by default (threads = 0)
THREADED_CELLS = 1 << 18
#: negative mass (of the point values), as a fraction of the mass, at which the run stops:
#: beyond a few percent the undershoot is no longer a small error but the solution (and with
#: an interaction it feeds back: negative density attracts where it should repel)
NEGATIVE_MASS_LIMIT = 0.05
#: negative mass of the initial point values above which the grid is refused: their
#: interpolant already oscillates, the grid does not resolve the initial density
INITIAL_NEGATIVE_LIMIT = 1e-3
#: RK4's stability limit on the imaginary axis, |lambda dt| <= 2 sqrt(2)
RK4_IMAGINARY_LIMIT = 2.0 * np.sqrt(2.0)
#: the exponential filter's order by default: Hou & Li's 36, and 8 for the edges of singular interactions
KINK_ORDER, EDGE_ORDER = 36, 8
#: point values above -ROUNDOFF * max|rho| are round-off, not an undershoot worth reporting
ROUNDOFF = 1e-12


def edge_fraction(rho: np.ndarray, first: int = 0) -> float:
    """Largest |rho| on the boundary cells of the box, relative to max |rho|, over the axes from
    `first` on (a layered model's layer axis 0 has no edge: its cells are the layers)."""
    top = float(np.abs(rho).max())
    if top == 0:
        return 0.0
    edge = max(float(np.abs(np.take(rho, i, axis=k)).max()) for k in range(first, rho.ndim) for i in (0, -1))
    return edge / top


def negative_mass(rho: np.ndarray, cell_volume: float) -> float:
    """The mass of the negative part of rho (point values or cell averages)."""
    return float(-np.minimum(rho, 0.0).sum()) * cell_volume


def default_threads(cells: int, requested: int = 0) -> int:
    """FFT threads: as requested, or for 0, serial below THREADED_CELLS (see `threads`)."""
    if requested > 0:
        return requested
    return available_threads() if cells >= THREADED_CELLS else 1


def chosen_filter(options: dict, model) -> tuple[str, int]:
    """(kind, order) of the filter the options ask for; "auto" and order 0 resolved by the model.

    "auto" is Hou & Li's exp(-36 (k/k_max)^36), or order 8 where the model has a singular
    interaction (`Model.singular_interaction`: its steady states have edges). Measured
    (docs/solvers.md): with a relu kink no filter stalls with a growing undershoot while order
    36 converges best (orders 8 to 24 smear more); a density touching the walls (the even
    extension's kink) undershoots 20x more without it; at edges order 8 beats 36 by 2x; and a
    smooth density strictly inside the box loses little (4e-7 against 3e-8 unfiltered on the
    quickstart's 38 x 32 cells, both past 1e-6).
    """
    if options["filter"] == "auto":
        return "exponential", options["filter_order"] or (EDGE_ORDER if model.singular_interaction else KINK_ORDER)
    if options["filter_order"] and options["filter"] != "exponential":
        raise ValueError(f"filter_order = {options['filter_order']} is for the exponential filter, "
                         f"not filter = {options['filter']!r}")
    return options["filter"], options["filter_order"] or KINK_ORDER


class SpectralStepper(Stepper):
    """Pseudo-spectral flux divergence with integrating-factor RK4, cosine or Fourier basis."""

    kind = "spectral"

    def __init__(self, problem, options):
        super().__init__(problem, options)
        refuse_fisher_rao(problem, self.kind)
        grid = self.grid = grid_of(problem)
        averages = problem.initial_density()
        basis_kind = BASES[self.options["basis"]]
        if basis_kind.periodic:
            edge = edge_fraction(averages, 1 if problem.layers else 0)
            if edge > EDGE_TOLERANCE:
                raise ValueError(f"the initial density on the box edge is {edge:.3g} of its maximum "
                                 f"(> {EDGE_TOLERANCE:g}): the periodic box would wrap it around; "
                                 "widen [grid].bounds or take basis = \"cosine\" (zero flux)")
        self.threads = threads = default_threads(grid.size, self.options["threads"])
        self.cfl = self.options["cfl"]
        self.filter, self.filter_order = chosen_filter(self.options, problem.model)
        self.operator = problem.grid_operator(threads=threads)
        self.basis = basis = basis_kind(grid, threads=threads)

        k = basis.wavenumbers
        kmax = np.pi / grid.spacing
        # a layered model's layer axis is discrete: its cells are the layers, which neither
        # exchange flux nor are averages of a field, so it is neither filtered nor averaged
        # (the transform along it is exact and invertible, and couples nothing)
        smooth = [not (problem.layers and axis == 0) for axis in range(grid.ndim)]
        self.sigma = np.ones(basis.shape)
        for kk, km, along in zip(k, kmax, smooth):
            if along:
                self.sigma = self.sigma * filter_factor(self.filter, np.abs(kk) / km, self.filter_order)
        # the exact linear part; frozen axes of a two-layer model do not diffuse
        self.decay = -problem.temperature * sum(kk * kk for kk, moves in zip(k, problem.model.trained) if moves)
        # cell average = point value * prod sinc(k h / 2) (np.sinc(x) = sin(pi x) / (pi x))
        self.to_average = np.ones(basis.shape)
        for kk, h, along in zip(k, grid.spacing, smooth):
            if along:
                self.to_average = self.to_average * np.sinc(kk * h / (2 * np.pi))
        self.kmax = kmax
        self.mass = problem.grid.mass(averages)
        self.rho_hat = basis.forward(averages) / self.to_average
        self.rho = basis.backward(self.rho_hat)
        negative = negative_mass(self.rho, grid.cell_volume)
        if negative > INITIAL_NEGATIVE_LIMIT * self.mass:
            raise ValueError(f"the grid does not resolve the initial density (its {basis.name} interpolant has "
                             f"negative mass {negative:.3g} > {INITIAL_NEGATIVE_LIMIT:g}); refine [grid].cells")
        self.limited_steps = 0
        self.min_seen = float(self.rho.min())
        #: the initial maximum, the scale of round-off in the point values
        self.top = float(np.abs(self.rho).max())
        #: birth-death (`gflow.solvers.birth_death`): the reaction on the point values after each step, or None
        self.birth_death = reaction_of(problem)
        if self.birth_death is not None:
            self._reactor = Reactor(lambda: self.rho, lambda: self.operator.potential(self.rho), self._react,
                                    lambda: (self.rho.copy(), self.rho_hat.copy()), self._unreact)
            self.birth_death.prime(self._reactor)
            self.conserves_mass = self.birth_death.conserves_mass

    # ------------------------------------------------------------------ birth-death
    def _react(self, Vc: np.ndarray, h: float) -> None:
        """One exact reaction step on the point values; the coefficients follow, and the point
        values are taken back from them (as `restore` takes them), so a resumed run is bitwise."""
        self.birth_death.scale(self.rho, Vc, h)
        self.rho_hat = self.basis.forward(self.rho)
        self.rho = self.physical(self.rho_hat)

    def _unreact(self, saved) -> None:
        self.rho, self.rho_hat = saved

    # ------------------------------------------------------------------ the scheme
    def tendency(self, rho: np.ndarray, velocities=None) -> np.ndarray:
        """N_hat = sigma(k) (-div(rho v))_hat for point values `rho`."""
        velocities = self.operator.centre_velocities(rho) if velocities is None else velocities
        return self.sigma * self.basis.divergence([None if v is None else rho * v for v in velocities])

    def physical(self, spec: np.ndarray) -> np.ndarray:
        return self.basis.backward(spec)

    def stable_dt(self, velocities) -> float:
        """RK4's advective limit for the spectral derivative (the diffusion is exact)."""
        rate = sum(float(np.abs(v).max()) * km for v, km in zip(velocities, self.kmax) if v is not None)
        return np.inf if rate == 0 else RK4_IMAGINARY_LIMIT / rate

    def step(self, dt_max: float, fixed: bool = False) -> float:
        """One IFRK4 transport step, then birth-death's reaction over it where the case has one."""
        bd = self.birth_death
        dt = self._transport(dt_max if bd is None else bd.cap(dt_max, self.time))
        if dt < dt_max:
            self.limited_steps += 1
        if bd is not None:
            bd.advance(self.time, dt, self._reactor)
            self.time += dt
        return dt

    def _transport(self, dt_max: float) -> float:
        velocities = self.operator.centre_velocities(self.rho)
        dt = min(dt_max, self.cfl * self.stable_dt(velocities))
        half = np.exp(0.5 * dt * self.decay)
        full = half * half
        v = self.rho_hat
        a = self.tendency(self.rho, velocities)
        b = self.tendency(self.physical(half * (v + 0.5 * dt * a)))
        c = self.tendency(self.physical(half * v + 0.5 * dt * b))
        d = self.tendency(self.physical(full * v + dt * half * c))
        self.rho_hat = full * v + (dt / 6.0) * (full * a + 2.0 * half * (b + c) + d)
        self.rho = self.physical(self.rho_hat)
        least = float(self.rho.min())
        self.min_seen = min(self.min_seen, least)
        if least < 0:
            self._check_undershoot()
        return dt

    def _check_undershoot(self) -> None:
        negative = negative_mass(self.rho, self.grid.cell_volume)
        if not negative <= NEGATIVE_MASS_LIMIT * self.mass:
            raise RunError(f"spectral: negative mass {negative:.3g} (> {NEGATIVE_MASS_LIMIT:g} of the mass), "
                           f"the least point value {self.rho.min():.3g} at {self._where(self.rho.argmin())}: "
                           "the density has fronts or concentrates (on a kink, against a wall) where no smooth "
                           "basis follows it; use fv or fipy there")

    def _where(self, flat: int) -> str:
        """The axes' values at a flat cell index, e.g. "a = 0.12, w = -3.9 (a boundary cell)"."""
        index = np.unravel_index(flat, self.grid.shape)
        words = ", ".join(f"{name} = {centres[i]:.3g}"
                          for name, centres, i in zip(self.problem.model.axes, self.grid.centres, index))
        wall = any(i in (0, n - 1) for i, n in zip(index, self.grid.cells))
        return words + (" (a boundary cell)" if wall else "")

    # ------------------------------------------------------------------ output
    def cell_averages(self) -> np.ndarray:
        return self.physical(self.rho_hat * self.to_average)

    def observe(self) -> Observation:
        density = self.cell_averages()
        risk = self.operator.risk(self.rho)
        vol = self.grid.cell_volume
        extras = {"min_density": float(density.min()),
                  "negative_mass": negative_mass(density, vol),
                  "edge_density": edge_fraction(density)}
        return Observation(density, risk, self.operator.energy(self.rho, risk), self.grid.mass(density),
                           extras=extras)

    def restart_state(self) -> dict:
        """The spectral coefficients themselves: rebuilding them from the stored cell averages
        is a transform round trip, ~1e-16 off, and a resumed run would not be bitwise the same."""
        state = {"rho_hat": self.rho_hat, "basis": self.basis.name, "min_seen": float(self.min_seen),
                 "limited_steps": int(self.limited_steps)}
        return state if self.birth_death is None else {**state, **self.birth_death.state()}

    def state_problem(self, state: dict) -> str | None:
        """A run written in the other basis (files from before `basis` existed are Fourier's)."""
        hat = state.get("rho_hat")
        written = state.get("basis", "fourier" if np.iscomplexobj(hat) else "cosine")
        if hat is not None and written != self.basis.name:
            return (f"it was written with basis = {written!r}, the case now gives {self.basis.name!r}; "
                    f"resume with --set solver.basis='{written}'")
        return None

    def restore(self, density: np.ndarray, positions, state) -> None:
        """Continue from a snapshot: its coefficients where they are this basis', else its cell
        averages, which determine the point values to round-off."""
        hat = state.get("rho_hat")
        if hat is not None and self.state_problem(state) is None and np.shape(hat) == self.basis.shape:
            self.rho_hat = np.array(hat, dtype=self.basis.dtype)
        else:
            self.rho_hat = self.basis.forward(np.asarray(density, dtype=float)) / self.to_average
        self.min_seen = float(state.get("min_seen", self.min_seen))
        self.limited_steps = int(state.get("limited_steps", 0))
        self.rho = self.physical(self.rho_hat)
        if self.birth_death is not None:
            self.birth_death.restore(state)

    def extra_names(self) -> tuple[str, ...]:
        return ("min_density", "negative_mass", "edge_density")

    def summary(self) -> str:
        words = [f"{self.basis.name} basis ({self.basis.boundary})",
                 f"filter {self.filter}" + (f" order {self.filter_order}" if self.filter == "exponential" else ""),
                 f"{self.threads} FFT thread{'s' * (self.threads > 1)}",
                 f"{'FFTW' if self.basis.fftw else 'scipy.fft'}"]
        if self.min_seen < -ROUNDOFF * self.top:
            words.append(f"min point value {self.min_seen:.3g} (undershoot)")
        if self.birth_death is not None:
            words.append(self.birth_death.summary())
        return ", ".join(words)
