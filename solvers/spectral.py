"""Fourier pseudo-spectral solver on the periodic box, diffusion integrated exactly.

The box of the case grid is taken as periodic (SPEC.md), and the density is carried as
point values rho_j at the cell centres, i.e. as its trigonometric interpolant. In Fourier
space the equation

    d_t rho = div(rho grad V[rho]) + T lap rho

reads d_t rho_hat = -T |k|^2 rho_hat + N_hat(rho) with N(rho) = -div(rho v), v = -grad V.
The flux rho v is formed in physical space from the exact velocity at the centres
(`grid_operator.centre_velocities`, no differencing of V for two-layer models), and its
divergence is taken by FFT, filtered by sigma(k). The stiff linear part is integrated exactly
by the integrating factor exp(-T |k|^2 t) and the rest by classical RK4 on the transformed
variable (Lawson's integrating-factor RK4; Kassam & Trefethen, SIAM J. Sci. Comput. 26
(2005), section 2, give it as "IFRK4" among the exponential integrators). The k = 0 mode is
never touched (sigma(0) = 1, the divergence has no mean, exp(0) = 1): mass is exact to
round-off.

Cell averages and point values differ by the Fourier multiplier prod_k sinc(k h / 2): the
initial cell averages (`Problem.initial_density`) are turned into point values by dividing
by it, and the snapshot density is turned back into cell averages, so that snapshots compare
cell by cell with the finite-volume solvers and the whole pipeline stays spectrally accurate.
Risk and energy are evaluated on the point values (periodic trapezoid rule).

A spectral scheme is not positivity preserving: near steep fronts the density undershoots.
Each snapshot records `min_density` and `negative_mass` (the mass of the negative part) of
the stored density, and `edge_density`, the largest density on the box's boundary cells
relative to the maximum: where it is not negligible the periodic solution differs from the
zero-flux one of the other solvers (mass leaving one side comes in at the other). Once the
negative mass passes NEGATIVE_MASS_LIMIT the run stops with a `RunError` saying so (e.g. the
compactly supported aggregation steady states, whose sqrt edges no Fourier basis resolves,
would otherwise go unstable), keeping the snapshots written until then.

Refused cases (ValueError, one line, before any work): more than 3 axes; an initial density
on the box's boundary cells above EDGE_TOLERANCE of its maximum (the periodic box would wrap
it around); a grid too coarse for the initial density (the negative mass of its Fourier
interpolant above INITIAL_NEGATIVE_LIMIT).

Options (`[solver]` table, kind = "spectral"):

filter : "exponential" | "dealias" | "none"
    sigma(k) applied to the flux divergence. "exponential": prod_k exp(-36 (|k| / k_max)^36)
    (Hou & Li 2007), leaves ~85% of each axis' modes untouched and removes the last few to
    round-off; "dealias": the 2/3 rule, modes with |k| > 2/3 k_max dropped on each axis;
    "none": only the Nyquist mode's odd derivative is dropped.
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
    4.2 vs 58 ms). BACKGROUND.md saw the same with scipy.fft at 256^2. The FFTs are a small
    part of a step on the quickstart grid anyway (the velocity and the products dominate).
"""
from __future__ import annotations

import numpy as np

from gflow.errors import RunError
from gflow.fft import RealFFT, available_threads
from gflow.solvers.base import Observation, Stepper, grid_of

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
#: trigonometric interpolant already oscillates, the grid does not resolve the initial density
INITIAL_NEGATIVE_LIMIT = 1e-3
#: RK4's stability limit on the imaginary axis, |lambda dt| <= 2 sqrt(2)
RK4_IMAGINARY_LIMIT = 2.0 * np.sqrt(2.0)


def edge_fraction(rho: np.ndarray) -> float:
    """Largest |rho| on the boundary cells of the box, relative to max |rho|."""
    top = float(np.abs(rho).max())
    if top == 0:
        return 0.0
    edge = max(float(np.abs(np.take(rho, i, axis=k)).max()) for k in range(rho.ndim) for i in (0, -1))
    return edge / top


def default_threads(cells: int, requested: int = 0) -> int:
    """FFT threads: as requested, or for 0, serial below THREADED_CELLS (see `threads`)."""
    if requested > 0:
        return requested
    return available_threads() if cells >= THREADED_CELLS else 1


def wavenumbers(cells, spacing) -> list[np.ndarray]:
    """k along each axis in rfftn layout (full axes, then the halved last one), broadcastable."""
    D = len(cells)
    out = []
    for axis, (n, h) in enumerate(zip(cells, spacing)):
        k = 2 * np.pi * (np.fft.rfftfreq(n, h) if axis == D - 1 else np.fft.fftfreq(n, h))
        shape = [1] * D
        shape[axis] = len(k)
        out.append(k.reshape(shape))
    return out


def spectral_filter(kind: str, k: np.ndarray, n: int, h: float) -> np.ndarray:
    """sigma(k) along one axis (times the derivative's Nyquist cut)."""
    kmax = np.pi / h
    ratio = np.abs(k) / kmax
    if kind == "exponential":
        sigma = np.exp(-36.0 * ratio**36)
    elif kind == "dealias":
        sigma = (ratio <= 2.0 / 3.0).astype(float)
    elif kind == "none":
        sigma = np.ones_like(ratio)
    else:
        raise ValueError(f"unknown filter {kind!r} (have exponential, dealias, none)")
    if n % 2 == 0:
        # the Nyquist mode's derivative is not a real function's: drop it, as is standard
        sigma = np.where(np.isclose(ratio, 1.0), 0.0, sigma)
    return sigma


class SpectralStepper(Stepper):
    """Pseudo-spectral flux divergence with integrating-factor RK4 on a periodic box."""

    kind = "spectral"

    def __init__(self, problem, options):
        super().__init__(problem, options)
        grid = self.grid = grid_of(problem)
        averages = problem.initial_density()
        edge = edge_fraction(averages)
        if edge > EDGE_TOLERANCE:
            raise ValueError(f"the initial density on the box edge is {edge:.3g} of its maximum "
                             f"(> {EDGE_TOLERANCE:g}): the periodic box would wrap it around; "
                             "widen [grid].bounds")
        self.threads = threads = default_threads(grid.size, self.options["threads"])
        self.cfl = self.options["cfl"]
        self.filter = self.options["filter"]
        self.operator = problem.grid_operator(threads=threads)
        self.fft = RealFFT(grid.shape, threads=threads)

        k = wavenumbers(grid.cells, grid.spacing)
        self.derivative = [1j * kk * spectral_filter(self.filter, kk, n, h)
                           for kk, n, h in zip(k, grid.cells, grid.spacing)]
        # the exact linear part; frozen axes of a two-layer model do not diffuse
        self.decay = -problem.temperature * sum(kk * kk for kk, moves in zip(k, problem.model.trained) if moves)
        # cell average = point value * prod sinc(k h / 2) (np.sinc(x) = sin(pi x) / (pi x))
        self.to_average = np.ones(self.fft.spectral_shape)
        for kk, h in zip(k, grid.spacing):
            self.to_average = self.to_average * np.sinc(kk * h / (2 * np.pi))
        self.kmax = np.pi / grid.spacing
        self.mass = problem.grid.mass(averages)
        self.rho_hat = self.fft.forward(averages) / self.to_average
        self.rho = self.fft.backward(self.rho_hat).copy()
        negative = float(-np.minimum(self.rho, 0.0).sum()) * grid.cell_volume
        if negative > INITIAL_NEGATIVE_LIMIT * self.mass:
            raise ValueError(f"the grid does not resolve the initial density (its Fourier interpolant has "
                             f"negative mass {negative:.3g} > {INITIAL_NEGATIVE_LIMIT:g}); refine [grid].cells")
        self.limited_steps = 0
        self.min_seen = float(self.rho.min())

    # ------------------------------------------------------------------ the scheme
    def tendency(self, rho: np.ndarray, velocities=None) -> np.ndarray:
        """N_hat = -sigma(k) i k . FFT(rho v) for point values `rho`."""
        velocities = self.operator.centre_velocities(rho) if velocities is None else velocities
        out = np.zeros(self.fft.spectral_shape, dtype=complex)
        for ik, v in zip(self.derivative, velocities):
            if v is not None:
                out -= ik * self.fft.forward(rho * v)
        return out

    def physical(self, spec: np.ndarray) -> np.ndarray:
        return self.fft.backward(spec).copy()

    def stable_dt(self, velocities) -> float:
        """RK4's advective limit for the spectral derivative (the diffusion is exact)."""
        rate = sum(float(np.abs(v).max()) * km for v, km in zip(velocities, self.kmax) if v is not None)
        return np.inf if rate == 0 else RK4_IMAGINARY_LIMIT / rate

    def step(self, dt_max: float, fixed: bool = False) -> float:
        velocities = self.operator.centre_velocities(self.rho)
        dt = min(dt_max, self.cfl * self.stable_dt(velocities))
        if dt < dt_max:
            self.limited_steps += 1
        half = np.exp(0.5 * dt * self.decay)
        full = half * half
        v = self.rho_hat
        a = self.tendency(self.rho, velocities)
        b = self.tendency(self.physical(half * (v + 0.5 * dt * a)))
        c = self.tendency(self.physical(half * v + 0.5 * dt * b))
        d = self.tendency(self.physical(full * v + dt * half * c))
        self.rho_hat = full * v + (dt / 6.0) * (full * a + 2.0 * half * (b + c) + d)
        self.rho = self.physical(self.rho_hat)
        self.min_seen = min(self.min_seen, float(self.rho.min()))
        if self.min_seen < 0:
            self._check_undershoot()
        return dt

    def _check_undershoot(self) -> None:
        negative = float(-np.minimum(self.rho, 0.0).sum()) * self.grid.cell_volume
        if not negative <= NEGATIVE_MASS_LIMIT * self.mass:
            raise RunError(f"spectral: negative mass {negative:.3g} (> {NEGATIVE_MASS_LIMIT:g} of the mass): "
                           "the density has fronts this grid does not resolve; refine it or use fv or fipy")

    # ------------------------------------------------------------------ output
    def cell_averages(self) -> np.ndarray:
        return self.physical(self.rho_hat * self.to_average)

    def observe(self) -> Observation:
        density = self.cell_averages()
        risk = self.operator.risk(self.rho)
        vol = self.grid.cell_volume
        extras = {"min_density": float(density.min()),
                  "negative_mass": float(-np.minimum(density, 0.0).sum() * vol),
                  "edge_density": edge_fraction(density)}
        return Observation(density, risk, self.operator.energy(self.rho, risk), self.grid.mass(density),
                           extras=extras)

    def restart_state(self) -> dict:
        """The spectral coefficients themselves: rebuilding them from the stored cell averages
        is an FFT round trip, ~1e-16 off, and a resumed run would not be bitwise the same."""
        return {"rho_hat": self.rho_hat, "min_seen": float(self.min_seen), "limited_steps": int(self.limited_steps)}

    def restore(self, density: np.ndarray, positions, state) -> None:
        """Continue from a snapshot: its coefficients, or (without them) its cell averages,
        which determine the point values to round-off."""
        if "rho_hat" in state:
            self.rho_hat = np.array(state["rho_hat"], dtype=complex)
            self.min_seen, self.limited_steps = float(state["min_seen"]), int(state["limited_steps"])
        else:
            self.rho_hat = self.fft.forward(np.asarray(density, dtype=float)) / self.to_average
        self.rho = self.physical(self.rho_hat)

    def extra_names(self) -> tuple[str, ...]:
        return ("min_density", "negative_mass", "edge_density")

    def summary(self) -> str:
        words = [f"filter {self.filter}", f"{self.threads} FFT thread{'s' * (self.threads > 1)}",
                 f"{'FFTW' if self.fft.fftw else 'scipy.fft'}"]
        if self.min_seen < 0:
            words.append(f"min point value {self.min_seen:.3g} (undershoot)")
        return ", ".join(words)
