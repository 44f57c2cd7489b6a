"""The solver registry: every solver kind, its stepper class and the keys of its `[solver]` table.

This is the single list of solver kinds (the case reader's choices, `gflow.solvers.REGISTRY`,
the generic tests) and the one place each option's default is written. It sits beside the
case-file reader, not in `gflow/solvers/`, because it is part of the case-file contract: a typo
in any solver key stops the run before any solver is built, and reading it imports no solver
(the stepper is named by its "module:Class" path, imported by `gflow.solvers.make_stepper`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gflow.schema import Table


#: the step budget: a case whose step count is known when it is read ([time].dt, or the particles'
#: `lr`) may take at most MAX_STEPS steps; while running, a solver's own step that would need
#: more than MAX_STEPS_PER_SNAPSHOT steps to reach the next snapshot stops the run
#: (`gflow.solvers.loop`). Both stop runs that would otherwise never end (dt = 1e-300, a
#: stiffness the solver cannot step over), each in one line.
MAX_STEPS = 10**8
MAX_STEPS_PER_SNAPSHOT = 10**6


@dataclass(frozen=True)
class Option:
    kind: str                      # "int" | "float" | "choice" | "bool"
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    doc: str = ""


def _int(default, minimum=0, doc="", maximum=2**31):
    return Option("int", default, minimum=minimum, maximum=maximum, doc=doc)


def _float(default, positive=True, minimum=None, doc="", maximum=None):
    return Option("float", default, positive=positive, minimum=minimum, maximum=maximum, doc=doc)


def _choice(default, *choices, doc=""):
    return Option("choice", default, choices=choices, doc=doc)


_PARTICLE_INIT = {
    "particles": _int(10000, 1, "number of particles m", maximum=10**8),
    "seed": _int(0, 0, "seed of the initial draw, minibatches and noise", maximum=2**63),
    "init": _choice("random", "random", "quadrature", doc="random draws or quadrature nodes"),
    "nodes": _int(0, 0, "quadrature nodes per axis (init = quadrature); 0: from particles (Gauss-Hermite) or the case grid (midpoint)", maximum=4096),
    "kernel": _choice("numba", "numba", "numpy", doc="fused numba kernel or the numpy path (two_layer models; "
                      "a unit without a kernel, `unit` or activation gaussian, runs the numpy path)"),
    "neighbour_cap": Option("bool", True, doc="cap steps by the nearest-neighbour distance over the relative "
                            "speed where the interaction is singular at r = 0 (-log r); false: take dt or lr as given"),
}

#: the particle schemes of birth-death ([dynamics] birth_death; `gflow.solvers.birth_death`, docs/birth_death.md)
_BIRTH_DEATH = {
    "birth_death_scheme": _choice("weights", "weights", "stochastic",
                                  doc="with [dynamics] birth_death: weights (dq_j/dt = -kappa (V(u_j) - <V>) q_j, "
                                      "exact per step) or stochastic (each particle killed or cloned with "
                                      "probability kappa |V_j - <V>| dt, the population restored to m; equal weights "
                                      "only)"),
}

#: kind -> key -> Option. `kind` itself is read by the case reader.
_OPTIONS: dict[str, dict[str, Option]] = {
    "fv": {
        "theta": _float(2.0, minimum=1.0, maximum=2.0, doc="generalised minmod limiter parameter, 1..2"),
        "cfl": _float(0.8, doc="fraction of the positivity-preserving step"),
        "kernel": _choice("numba", "numba", "numpy", doc="fused numba kernel or the plain numpy path"),
    },
    "fipy": {
        "sweeps": _int(12, 1, "maximum sweeps per step to refresh the nonlocal V and the tvd limiter"),
        "tolerance": _float(1e-6, doc="sweeps stop once the iterate changes by less than this (relative)"),
        "cfl": _float(5.0, doc="step as a multiple of the explicit CFL step"),
        "convection": _choice("tvd", "tvd", "exponential", "upwind", doc="tvd: implicit upwind whose coefficient "
                              "carries the limiter's face factors of the latest sweep (converged: fv's limited "
                              "second-order flux; every iterate >= 0); exponential (Scharfetter-Gummel) or upwind: "
                              "FiPy's first-order terms"),
        "theta": _float(2.0, minimum=1.0, maximum=2.0, doc="generalised minmod limiter parameter of convection = tvd, 1..2"),
        "linear_solver": _choice("lu", "lu", "bicgstab", doc="FiPy (SciPy) linear solver"),
    },
    "spectral": {
        "basis": _choice("cosine", "cosine", "fourier", doc="cosine: the zero-flux box (DCT/DST); fourier: a periodic box"),
        "filter": _choice("auto", "auto", "exponential", "dealias", "none",
                          doc="auto: exponential, of order 36 (Hou-Li), or 8 where a singular interaction builds edges"),
        "filter_order": _int(0, 0, "order p of the exponential filter exp(-36 (k/k_max)^p); 0: as auto says",
                             maximum=64),
        "cfl": _float(0.5, doc="fraction of the advective stability step"),
        "threads": _int(0, 0, "FFTW threads; 0: 1 below 2^18 cells, all available cores above"),
    },
    "particle": {
        **_PARTICLE_INIT,
        **_BIRTH_DEATH,
        "batch": _int(0, 0, "data points per step (SGD); 0: full batch"),
        "integrator": _choice("auto", "auto", "euler", "rk4", "adaptive", doc="auto: euler (GD) for random, rk4 for quadrature particles"),
        "scaling": _choice("mean_field", "mean_field", "conventional",
                           doc="mean_field: f = (1/m) sum a sigma(w.x + b); conventional: the plain sum, "
                               "whose velocities grow with m (two_layer only)"),
        "tolerance": _float(1e-6, doc="error tolerance of the adaptive integrator"),
        "lr": _float(0.05, doc="step (learning rate) when the case gives no dt"),
        "precision": _choice("float64", "float64", "float32",
                             doc="float type of the velocity's particle x datum work (kernel = numba, two_layer "
                                 "models with a fused unit; refused otherwise): float32 runs the fused kernel in "
                                 "float32, ~2.5x faster; positions, residual, velocities, risk and the run file stay "
                                 "float64. Quickstart to t = 2 (m = 10^4 and 10^5, euler): risk within 5e-9 relative "
                                 "of float64's, positions within 1e-7 (2e-8 of the largest)"),
        "fluctuation": Option("bool", False, doc="store risk_fluctuation: the predicted sqrt(m) x standard deviation "
                              "of the risk of m random neurons, from the discrete adjoint along this run (init = "
                              "quadrature, integrator euler, full batch, T = 0; docs/fluctuations.md)"),
    },
    "blob": {
        **_PARTICLE_INIT,
        **_BIRTH_DEATH,
        "particles": _int(4096, 1, "number of blobs m", maximum=10**8),
        "epsilon": _float(0.0, positive=False, minimum=0.0, doc="mollifier variance; 0: from m"),
        "cutoff": _float(4.0, doc="mollifier truncation radius in units of sqrt(epsilon)"),
    },
}


@dataclass(frozen=True)
class SolverKind:
    """A registered solver: its stepper ("module:Class"), its options, and whether it moves
    particles (whose file holds `positions` and `weights`; the grid only bins them)."""

    name: str
    stepper: str
    options: dict[str, Option]
    doc: str = ""
    particles: bool = False


#: kind -> SolverKind, in the order `gflow run` lists them
SOLVERS: dict[str, SolverKind] = {k.name: k for k in (
    SolverKind("fv", "gflow.solvers.fv:FiniteVolumeStepper", _OPTIONS["fv"],
               "explicit second-order finite volume, SSP-RK3"),
    SolverKind("spectral", "gflow.solvers.spectral:SpectralStepper", _OPTIONS["spectral"],
               "pseudo-spectral, cosines on the zero-flux box (or Fourier, periodic)"),
    SolverKind("fipy", "gflow.solvers.fipy_solver:FiPyStepper", _OPTIONS["fipy"],
               "implicit finite volume on FiPy"),
    SolverKind("particle", "gflow.solvers.particle:ParticleStepper", _OPTIONS["particle"],
               "particles: gradient descent, SGD, Langevin", particles=True),
    SolverKind("blob", "gflow.solvers.blob:BlobStepper", _OPTIONS["blob"],
               "the blob method for diffusion", particles=True),
)}

#: the Lagrangian kinds: resolution is their particle count, their files hold particles
PARTICLE_KINDS = tuple(name for name, k in SOLVERS.items() if k.particles)

#: kind -> key -> Option
SOLVER_OPTIONS: dict[str, dict[str, Option]] = {name: k.options for name, k in SOLVERS.items()}


def defaults(kind: str) -> dict[str, Any]:
    """Every option of `kind` at its default (what an empty `[solver]` table gives)."""
    return {name: opt.default for name, opt in SOLVER_OPTIONS[kind].items()}


def complete(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with every missing key at its default; an unknown key is a ValueError."""
    unknown = sorted(set(options) - set(SOLVER_OPTIONS[kind]))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for solver {kind} (have: {', '.join(SOLVER_OPTIONS[kind])})")
    return {**defaults(kind), **options}


def over_budget(kind: str, options: dict[str, Any], end: float, dt: float | None) -> tuple[str, str] | None:
    """(key, problem) when the steps a case needs, known when it is read, exceed MAX_STEPS:
    end / [time].dt, or end / lr for particles stepping by their learning rate."""
    if dt is not None:
        key, step = "dt", dt
    elif kind == "particle" and options["integrator"] != "adaptive":
        key, step = "lr", options["lr"]
    else:
        return None
    if end / step <= MAX_STEPS:
        return None
    return key, (f"{step:g} would take {end / step:.3g} steps to the end time {end:g}, over the budget of "
                 f"{MAX_STEPS:.0e} steps")


def read_options(kind: str, table: Table) -> dict[str, Any]:
    """Read and check one solver table's keys, filling defaults."""
    options = {}
    for name, opt in SOLVER_OPTIONS[kind].items():
        if opt.kind == "int":
            options[name] = table.integer(name, opt.default, minimum=opt.minimum, maximum=opt.maximum)
        elif opt.kind == "float":
            options[name] = table.number(name, opt.default, minimum=opt.minimum, positive=opt.positive,
                                         maximum=opt.maximum)
        elif opt.kind == "bool":
            options[name] = table.boolean(name, opt.default)
        else:
            options[name] = table.string(name, opt.default, choices=opt.choices)
    return options
