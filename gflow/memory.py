"""Peak memory of a run, estimated from its case before anything is allocated (issue 15).

A case can keep every key within its own limit (`MAX_CELLS`, the particle and data-node
maxima) and still ask for a product no machine holds: cells x axes velocity arrays, the
zero-padded FFT grid of an interaction (2^D cells per cell), (w, b) cells x data nodes of the
two-layer grid features, particles x data nodes of the particle kernels, particles x particles
of a pair interaction, quadrature nodes per axis to the power of the axes, the n x n matrix of a
Gauss rule of n data nodes, a minibatch of 2^31 points. `check_memory` adds up what one solver
of the case holds at its peak (solvers run one after the other) from the sizes alone, and
refuses a case whose estimate exceeds the memory this machine has available, in one line
naming the keys, the estimate and that memory, so an out-of-memory kill (or a swap storm)
becomes a refusal before any work.

The counts are float64 arrays alive at the peak, read from the code they model and checked
with tracemalloc on bundled cases grown to 10^4 - 10^6 cells (fv 60, spectral 230 with the cosine basis, FiPy 1210
bytes per cell for the two-layer quickstart in 2D; 770 (fv) and 1330 (FiPy) with the padded
convolution of the 2D aggregation case): each constant below is at or a little above what was
measured (tests/test_case_bounds.py measures fv, spectral and particles again), so a refusal
means the run would not fit, while a case near the limit may be refused by the headroom. The constants of solver modules are repeated here (this module may
not import solvers); tests/test_case_bounds.py holds them equal.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass

from gflow.errors import InputError

BYTES = 8                    # float64
GB = 1e9

#: float arrays per cell of the case grid, (base, per axis): the density, the integrator's
#: stages, velocities and fluxes per axis; FiPy adds its sparse matrix and its variables
#: (the cosine basis holds an FFTW input and output array for the forward and backward
#: transforms and for each axis' flux transform, and real filter and decay arrays of the grid's shape)
GRID_ARRAYS = {"fv": (12, 4), "spectral": (16, 8), "fipy": (96, 40)}
#: a particle solver's grid: the binned density and the deposit's temporaries
BINNING_ARRAYS = 4
#: per cell of the zero-padded grid (2^D cells per cell) of `models.convolution.GridConvolution`
CONVOLUTION_ARRAYS = 24
#: the two-layer grid operator's (w, b) cells x data nodes arrays: the features and the
#: temporaries that build them, plus two per trained w/b axis (face features and their
#: derivative), one more per axis for the spectral solver's centre features
FEATURE_ARRAYS, FEATURE_ARRAYS_PER_AXIS = 3, 2
#: the data measure per node: x and the meshgrid it is built from (per input), p, y, weights
DATA_ARRAYS, DATA_ARRAYS_PER_INPUT = 4, 3
#: n x n arrays of numpy's Gauss rules of n nodes (the companion matrix and its eigen-decomposition)
RULE_ARRAYS = 3
#: per particle: positions and the integrators' stages (Dormand-Prince holds 7) per axis,
#: weights, network weights, binning indices
PARTICLE_ARRAYS, PARTICLE_ARRAYS_PER_AXIS = 8, 12
#: (chunk, data nodes) temporaries of the two-layer numpy path (`TwoLayerModel.gradient`)
NUMPY_PATH_ARRAYS = 6
#: `gflow.models.two_layer.CHUNK`: neurons per chunk of the numpy path
TWO_LAYER_CHUNK = 1 << 15
#: `gflow.models.two_layer_kernels.chunk_size`: about m / 32 within [MIN_CHUNK, MAX_CHUNK];
#: the fused kernel holds one row of data-node sums per chunk
KERNEL_MIN_CHUNK, KERNEL_MAX_CHUNK = 128, 4096
#: `gflow.models.potential.CHUNK`: points per chunk of the O(m^2) pair sums, which hold
#: (chunk, m, D) differences and their squares, and (chunk, m) distances, W'(r) and its
#: temporaries (measured: 57 bytes per pair of a chunk in 2D; this gives 80)
PAIR_SUM_CHUNK, PAIR_SUM_ARRAYS, PAIR_SUM_ARRAYS_PER_AXIS = 1 << 11, 6, 2
#: `gflow.solvers.blob.PAIR_CHUNK`: neighbour pairs per chunk of the blob sums (i, j, r, D differences)
BLOB_PAIR_CHUNK, BLOB_PAIR_ARRAYS = 1 << 18, 6
#: per minibatch point: its index, x (per input), p, y
BATCH_ARRAYS = 4
#: the particle solver's upper limit on particles (`gflow.solver_options`), for quadrature nodes too
MAX_PARTICLES = 10**8
#: what any run holds besides its arrays: the interpreter, numpy, numba's compiled kernels, h5py
BASELINE_BYTES = 0.2 * GB


@dataclass(frozen=True)
class Need:
    """One allocation of a run: the case keys that size it, what it is, its bytes."""

    keys: str
    what: str
    nbytes: float


def _solver_key(case, index: int) -> str:
    return "solver" if "solver" in case.document else f"solvers[{index}]"


def _data_key(data, model) -> str:
    if data.dim:     # isotropic data: the reduced rule's nodes, or the full model's draws
        return "data.nodes" if model.symmetry == "rotations" else "data.samples"
    return {"file": "data.file", "samples": "data.samples", "sphere": "data.samples",
            "inline": "data.x"}.get(data.distribution, "data.nodes")


def particle_count(case, spec, key: str) -> tuple[int, str]:
    """The particles a Lagrangian solver starts from, before pruning, and the key that sets it.

    init = quadrature: Gauss-Hermite rules give components x n^D nodes, the midpoint rule
    (uniform densities, and every density for blobs) n^D, or the case grid's cells for n = 0;
    the larger is taken, since which rule a solver takes is its own business."""
    options, init = spec.options, case.initial
    # a layered model (resnet) has `particles` (or one rule) per layer
    layers = case.layers or 1
    if init.distribution == "points":       # inline or from a file: as many as there are points
        return len(init.points) * layers, "initial.file" if "initial.file" in case.files else "initial.points"
    if options["init"] != "quadrature":
        # a snapshot's particles are known only when the run reads it (bounded by the run file's reader)
        return options["particles"] * layers, f"{key}.particles"
    ndim, n = case.ndim - (1 if case.layers else 0), options["nodes"]
    midpoint = layers * (n**ndim if n else math.prod(case.cells) // layers)
    if init.distribution not in ("gaussian", "mixture"):      # the midpoint rule of any other density
        return midpoint, (f"{key}.nodes" if n else "grid.cells")
    comps = len(init.components)
    per_axis = n or max(1, round((options["particles"] / comps) ** (1.0 / ndim)))
    gauss = layers * comps * per_axis**ndim
    return max(gauss, midpoint), (f"{key}.nodes" if n else f"{key}.particles, grid.cells")


def solver_needs(case, index: int) -> list[Need]:
    """What solver `index` of `case` holds at its peak, largest first; InputError for a
    quadrature rule of more than MAX_PARTICLES nodes (a plain size limit, whatever the machine)."""
    spec = case.solvers[index]
    key = _solver_key(case, index)
    model = case.model
    ndim = case.ndim
    cells = math.prod(case.cells)
    shape = "x".join(map(str, case.cells))
    data = getattr(model, "data", None)                      # models with a data measure (two_layer)
    d = getattr(model, "input_dim", 0)
    if data is not None:
        from gflow.models.two_layer_case import data_nodes
        nodes, data_key = data_nodes(data, d, model), _data_key(data, model)
        if data.dim and model.symmetry == "rotations":
            d = 2 if "w_par" in model.axes else 1    # the reduced rule's inputs (x1, s c) or (s c)
    #: the coordinates of one particle: the case's axes, or all of R^(1 + d [+ 1]) for a full model
    particle_ndim = ndim if not getattr(data, "dim", 0) or model.symmetry == "rotations" else \
        ndim - len(model.radial_axes) * (1 + int("w_par" in model.axes)) + d
    needs = []
    if data is not None:
        # a Gauss rule (uniform, gaussian data) is built from an n x n matrix, n nodes per axis
        rule = data.nodes**2 * RULE_ARRAYS if data.distribution in ("uniform", "gaussian") else 0
        needs.append(Need(data_key, f"{nodes} data nodes in {d} inputs",
                          BYTES * (nodes * (DATA_ARRAYS + DATA_ARRAYS_PER_INPUT * d) + rule)))
    if spec.kind in GRID_ARRAYS:
        base, per_axis = GRID_ARRAYS[spec.kind]
        needs.append(Need("grid.cells", f"{shape} cells x {ndim} axes", BYTES * cells * (base + per_axis * ndim)))
        if getattr(model, "interaction", None):
            needs.append(Need("grid.cells, model.interaction", f"the interaction's padded FFT grid of "
                              f"{2**ndim} x {cells} cells", BYTES * 2**ndim * cells * CONVOLUTION_ARRAYS))
        if data is not None:
            # the (w, b) cells of one layer (a layered model evaluates its layers one by one)
            wb = cells // math.prod(case.cells[:2 if case.layers else 1])
            trained = sum(1 for axis in model.train if axis != model.axes[0])
            per_axis = FEATURE_ARRAYS_PER_AXIS + (spec.kind == "spectral")
            needs.append(Need(f"grid.cells, {data_key}", f"the grid features of {wb} (w, b) cells x {nodes} data nodes",
                              BYTES * wb * nodes * (FEATURE_ARRAYS + per_axis * trained)))
    else:
        m, m_key = particle_count(case, spec, key)
        if m > MAX_PARTICLES:
            raise InputError(f"{case.source}: {m_key}: the quadrature rule has {m} nodes in {ndim} axes, more than "
                             f"the {MAX_PARTICLES} particles allowed")
        needs.append(Need("grid.cells", f"{shape} cells to bin into", BYTES * cells * BINNING_ARRAYS))
        needs.append(Need(m_key, f"{m} particles x {particle_ndim} axes",
                          BYTES * m * (PARTICLE_ARRAYS + PARTICLE_ARRAYS_PER_AXIS * particle_ndim)))
        if data is not None:
            if spec.options["kernel"] == "numba" and importlib.util.find_spec("numba") is not None:
                chunk = max(KERNEL_MIN_CHUNK, min(KERNEL_MAX_CHUNK, -(-m // 32)))
                rows = -(-m // chunk)
            else:
                rows = min(m, TWO_LAYER_CHUNK) * NUMPY_PATH_ARRAYS
            needs.append(Need(f"{m_key}, {data_key}", f"{m} particles x {nodes} data nodes", BYTES * rows * nodes))
            if spec.options.get("batch"):
                batch = spec.options["batch"]
                needs.append(Need(f"{key}.batch", f"a minibatch of {batch} points",
                                  BYTES * batch * (BATCH_ARRAYS + d)))
        if spec.options.get("fluctuation"):
            # the prediction's adjoint walks back along every state of the run
            steps = math.ceil(case.end / (case.dt or spec.options["lr"])) + case.snapshots
            needs.append(Need(f"{key}.fluctuation, {key}.lr", f"the path of {m} particles x {ndim} axes over {steps} steps",
                              BYTES * m * ndim * (steps + 1)))
            if data is not None:
                from gflow.models.two_layer_fluctuation import ADJOINT_ARRAYS
                needs.append(Need(f"{key}.fluctuation, {m_key}, {data_key}", f"the adjoint's {m} particles x {nodes} "
                                  "data nodes", BYTES * m * nodes * ADJOINT_ARRAYS))
        if getattr(model, "interaction", None):
            needs.append(Need(f"{m_key}, model.interaction", f"the pair sums of {m} x {m} particles",
                              BYTES * min(m, PAIR_SUM_CHUNK) * m * (PAIR_SUM_ARRAYS + PAIR_SUM_ARRAYS_PER_AXIS * ndim)))
        if spec.kind == "blob":
            needs.append(Need(key, "the blob pair chunks", BYTES * BLOB_PAIR_CHUNK * (BLOB_PAIR_ARRAYS + ndim)))
    return sorted(needs, key=lambda n: -n.nbytes)


def available_memory() -> tuple[float, str]:
    """Bytes this process may still allocate, and where the number comes from: the kernel's
    MemAvailable (free plus reclaimable), lowered to a cgroup's memory.max less its usage where
    a container sets one; else the physical memory."""
    found = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found = (int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo")
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory")
        except (OSError, ValueError, AttributeError):
            return math.inf, "unknown"
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as handle:
            limit = handle.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as handle:
            used = int(handle.read().strip())
        if limit != "max" and int(limit) - used < found[0]:
            found = (max(0, int(limit) - used), "the cgroup's memory.max less its usage")
    except (OSError, ValueError):
        pass
    return found


def check_memory(case, available: tuple[float, str] | None = None) -> None:
    """Refuse, in one line, a case one of whose solvers would need more memory than `available`
    (bytes, where from; default `available_memory()`)."""
    have, where = available if available is not None else available_memory()
    for index, spec in enumerate(case.solvers):
        needs = solver_needs(case, index)
        total = BASELINE_BYTES + sum(n.nbytes for n in needs)
        if total > have:
            top = needs[0]
            raise InputError(f"{case.source}: {top.keys}: the {spec.kind} solver would need about {total / GB:.3g} GB "
                             f"at its peak ({top.what}: {top.nbytes / GB:.3g} GB), more than the {have / GB:.3g} GB "
                             f"of memory available ({where})")
