"""Case files: TOML in, typed and checked `Case` out (the keys the gflow contract, SPEC.md, fixes).

Everything a run needs is read and validated here, before any work, so that a bad case
stops with one line naming the file, the key and the problem (`InputError`, exit 2).
"""
from __future__ import annotations

import copy
import math
import tomllib
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from gflow.case_times import MAX_SNAPSHOTS, snapshot_times  # noqa: F401 (the bound, read from here too)
from gflow.errors import InputError
from gflow.memory import check_memory
from gflow.models import REGISTRY as MODEL_KINDS, model_kind
from gflow.grids import LAYER, layer_bounds
from gflow.initial_case import check_law_keys, parse_law, points_file
from gflow.schema import Table, check_float, decode_utf8, fail, open_regular
from gflow.solver_options import SOLVER_OPTIONS, over_budget, read_options

# Sizes beyond these would exhaust memory before the first step; refusing them up front
# turns an out-of-memory crash into one clear line.
MAX_CELLS = 2**27            # cells of the grid (1 GiB per density array)
MAX_CASE_BYTES = 1 << 20     # a case file is a page of TOML; larger is a wrong path (or /dev/zero)
SOLVER_KINDS = tuple(SOLVER_OPTIONS)
#: the datasets and groups of a run file besides the axes (`gflow.snapshots`: SCALARS, the
#: particle scales, the restart groups, every solver's `extra_names`), folded as axis names
#: are compared (tests/test_case_bounds.py holds this list to the writer and the solvers)
RUN_FILE_NAMES = {name.casefold(): name for name in (
    "time", "density", "risk", "energy", "mass", "positions", "weights", "particle", "component",
    "restart", "restart.new", "outside_mass", "min_density", "negative_mass", "edge_density", "layer",
    "layer_mass", "risk_fluctuation", "wall_time", "snapshot_weights")}


@dataclass(frozen=True)
class InitialSpec:
    distribution: str                  # one of INITIAL_LAWS
    components: tuple[tuple[float, tuple[float, ...], tuple[float, ...]], ...] = ()  # (weight, mean, std)
    #: layered models (resnet): the mean of each layer's Gaussian, (L, D); empty: `mean` for all
    layer_means: tuple[tuple[float, ...], ...] = ()
    #: distribution = "points": the point masses (P, D) and their weights (P,), summing to 1
    #: (tuples inline; read-only arrays from `file`, or from a particle run's snapshot)
    points: Any = ()
    point_weights: Any = ()
    #: distribution = "sphere": uniform on |u - center| = radius; grids hold a shell of `width`
    radius: float = 0.0
    center: tuple[float, ...] = ()
    width: float | None = None
    #: distribution = "product": one ("gaussian", mean, std) or ("uniform", low, high) per axis
    factors: tuple[tuple[str, float, float], ...] = ()
    #: distribution = "snapshot": the run file and the snapshot's index; the run's arrays come
    #: when it starts (`gflow.initial_snapshot.load_initial`): `points` and `point_weights` from a
    #: run with particles, else its density on the faces `grid_faces`
    snapshot: Path | None = None
    snapshot_index: int = -1
    grid_faces: tuple = ()
    grid_density: Any = None
    #: `mass`: the initial total mass M of Wasserstein-Fisher-Rao dynamics (docs/wfr.md): the law's
    #: density and particle weights (each law normalised to 1, point weights included) times M
    mass: float = 1.0

    @property
    def loaded(self) -> bool:
        """Whether a snapshot law holds its run's arrays (always true of the other laws)."""
        return self.distribution != "snapshot" or self.grid_density is not None or len(self.points) > 0


@dataclass(frozen=True)
class DynamicsSpec:
    """`[dynamics]`: terms beside transport (docs/birth_death.md)."""

    #: kappa of birth-death, d_t rho = div(rho grad V) - kappa (V - <V>) rho; 0: plain transport
    birth_death: float = 0.0
    #: the time from which birth-death stops (the quench of Rotskoff et al.'s notebook); None: never
    birth_death_until: float | None = None
    #: alpha of Wasserstein-Fisher-Rao dynamics, d_t mu = -alpha V mu + beta div(mu grad V), mass not
    #: conserved (Chizat 2022; docs/wfr.md); 0: no reaction
    fisher_rao: float = 0.0
    #: beta, the factor of the transport velocity -grad V beside fisher_rao (0: pure Fisher-Rao)
    transport: float = 1.0


@dataclass(frozen=True)
class SolverSpec:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    table: dict[str, Any] = field(default_factory=dict)   # as written, for the snapshot's case text


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    #: the model kind's spec (`gflow.models`): a frozen dataclass with kind, axes, train, ...
    model: Any
    weight_decay: float
    temperature: float
    initial: InitialSpec
    bounds: tuple[tuple[float, float], ...]
    cells: tuple[int, ...]
    end: float
    snapshots: int
    dt: float | None
    solvers: tuple[SolverSpec, ...]
    output_dir: Path
    source: str
    document: dict[str, Any] = field(repr=False, default_factory=dict)
    #: `[sweep]` table (docs/sweeps.md): dotted key -> the values `gflow sweep` runs it with
    sweep: dict[str, list] = field(default_factory=dict)
    #: dotted key -> the absolute path it names (data files), for the stored case text
    files: dict[str, Path] = field(default_factory=dict)
    #: `[dynamics]`: birth-death beside transport (`DynamicsSpec`)
    dynamics: DynamicsSpec = field(default_factory=DynamicsSpec)
    #: the snapshot times 0 = t_0 < ... < t_K (`gflow.case_times`): end is t_K, snapshots K + 1
    times: tuple[float, ...] = ()
    #: `[regularization] mass_penalty`: lambda_M, E gains lambda_M mu(Omega) and V lambda_M (docs/wfr.md)
    mass_penalty: float = 0.0

    @property
    def layers(self) -> int | None:
        """L for a layered model (resnet): its grid and particles carry a frozen `layer` axis first."""
        return getattr(self.model, "layers", None)

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes solvers see: the model's, after the layer axis of a layered model."""
        return (LAYER, *self.model.axes) if self.layers else self.model.axes

    @property
    def parameter_axes(self) -> tuple[str, ...]:
        """The axes of one neuron (without the layer axis): those `[grid]` and `[initial]` name."""
        return self.model.axes

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def text_for(self, solver: SolverSpec) -> str:
        """The case as TOML with only `solver`: enough to rebuild this one run."""
        # one run is not a study: its [sweep] table stays with the case file
        doc = {k: v for k, v in self.document.items() if k not in ("solver", "solvers", "sweep")}
        doc["solver"] = dict(solver.table, kind=solver.kind)
        for key, path in self.files.items():   # a file must be found again from anywhere
            table, name = key.split(".")
            doc[table] = dict(doc[table], **{name: str(path)})
        return tomli_w.dumps(doc)


# ----------------------------------------------------------------------------- loading

def load_case(path: str | Path, overrides: list[str] = (), solver_kinds: list[str] | None = None) -> Case:
    """Read a case file, apply `--set KEY=VALUE` overrides and a `--solver` selection."""
    path = Path(path)
    return case_from_text(read_case_text(path), str(path), overrides, solver_kinds, base_dir=path.parent,
                          stem=path.stem)


def read_case_text(path: Path) -> str:
    """The text of a case file: a regular file of at most MAX_CASE_BYTES, UTF-8 (a BOM allowed).

    A directory, a device (/dev/zero) or a FIFO is refused before any byte is read, so that
    `gflow run` never hangs on a pipe nor fills memory from an endless file."""
    source = str(path)
    with open_regular(path, source, MAX_CASE_BYTES) as handle:
        try:
            data = handle.read(MAX_CASE_BYTES + 1)
        except OSError as exc:
            raise InputError(f"{source}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CASE_BYTES:
        raise InputError(f"{source}: more than the {MAX_CASE_BYTES} bytes a case file may have")
    return decode_utf8(data, source)


def case_from_text(text: str, source: str = "<case>", overrides: list[str] = (),
                   solver_kinds: list[str] | None = None, base_dir: Path | None = None,
                   stem: str = "case", memory: bool = True) -> Case:
    """A case from its TOML text. memory = False skips the comparison of its peak memory with
    this machine's (`gflow.memory`): for the stored case of a run file made elsewhere."""
    try:
        doc = tomllib.loads(text.removeprefix("\ufeff"))    # a BOM (from an editor) is no TOML
    except RecursionError:
        raise InputError(f"{source}: not valid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    except ValueError as exc:
        # an integer of thousands of digits: Python's int-from-text limit (CVE-2020-10735)
        raise InputError(f"{source}: not a usable TOML value: {exc.args[0].split(';')[0]}") from None
    if solver_kinds is not None:
        select_solvers(doc, solver_kinds, source)
    for item in overrides:
        apply_override(doc, item, source)
    case = parse_case(doc, source, base_dir or Path("."), stem)
    if memory:
        check_memory(case)
    return case


def parse_override_value(text: str) -> Any:
    """A `--set` value parses as TOML; a bare word that is not TOML is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text


def apply_override(doc: dict, item: str, source: str) -> None:
    """Apply one `KEY=VALUE` with a dotted KEY; `solver.X` reaches every solver table."""
    key, sep, value_text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(f"--set {item}: expected KEY=VALUE with a dotted key, e.g. grid.cells=[64,64]")
    value = parse_override_value(value_text.strip())
    parts = key.split(".")
    if parts[0] == "solver" and "solvers" in doc and len(parts) > 1:
        # `solver.X` reaches every listed solver whose kind has the key X
        tables = doc["solvers"] if isinstance(doc["solvers"], list) else []
        targets = [t for t in tables if isinstance(t, dict)
                   and (len(parts) > 2 or parts[1] in SOLVER_OPTIONS.get(t.get("kind", "fv"), {}))]
        if not targets:
            raise InputError(f"--set {item}: no solver of this case has the key {parts[1]!r}")
        for table in targets:
            _set_path(table, parts[1:], value, item)
        return
    _set_path(doc, parts, value, item)


def _set_path(doc: dict, parts: list[str], value: Any, item: str) -> None:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise InputError(f"--set {item}: {part!r} is not inside a table")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise InputError(f"--set {item}: {parts[-1]!r} is not inside a table")
    node[parts[-1]] = value


def select_solvers(doc: dict, kinds: list[str], source: str) -> None:
    """Keep only the solver tables of `kinds` (in that order); defaults for missing kinds.

    An empty name (`--solver ""`, `--solver fv,`) is refused: it would otherwise select nothing,
    or everything."""
    if not kinds or not all(kinds):
        raise InputError(f"--solver: no solver named in {','.join(kinds)!r} (expected comma-separated kinds "
                         f"from: {', '.join(SOLVER_KINDS)})")
    tables = doc.get("solvers", [doc["solver"]] if "solver" in doc else [])
    if not isinstance(tables, list):
        tables = [tables]
    chosen = []
    for kind in kinds:
        if kind not in SOLVER_KINDS:
            raise InputError(f"--solver: unknown solver {kind!r} (expected one of: {', '.join(SOLVER_KINDS)})")
        found = [t for t in tables if isinstance(t, dict) and t.get("kind", "fv") == kind]
        chosen.extend(copy.deepcopy(found) or [{"kind": kind}])
    doc.pop("solver", None)
    doc["solvers"] = chosen


# ----------------------------------------------------------------------------- parsing

def parse_case(doc: dict, source: str, base_dir: Path, stem: str) -> Case:
    top = Table(doc, source, "")
    name = top.string("name", stem)
    description = top.string("description", "")
    model_t = top.table("model")
    kind = model_t.string("kind", choices=tuple(MODEL_KINDS))
    # the kind reads its [model] keys and the tables it owns ([target], [data], ...)
    model, files = model_kind(kind).parse(top, model_t, base_dir)
    _check_axis_names(model.axes, model_t)
    model_t.done()

    reg = top.table("regularization", required=False)
    weight_decay = reg.number("weight_decay", 0.0, minimum=0.0)
    temperature = reg.number("temperature", 0.0, minimum=0.0)
    mass_penalty = reg.number("mass_penalty", 0.0, minimum=0.0)
    reg.done()

    ndim = len(model.axes)
    layers = getattr(model, "layers", None)
    initial_t = top.table("initial")
    # the initial mass of Wasserstein-Fisher-Rao dynamics, whatever the law (`_check_wfr`)
    initial_mass = initial_t.number("mass", 1.0, positive=True)
    initial, initial_files = _initial(initial_t, model.axes, layers, base_dir)
    initial = replace(initial, mass=initial_mass)
    files = {**files, **initial_files}
    grid_t = top.table("grid")
    bounds = _bounds(grid_t, ndim)
    cells = _cells(grid_t, ndim)
    grid_t.done()
    _check_radial(getattr(model, "radial_axes", {}), model.axes, initial, bounds, source, temperature)
    if layers:
        # the frozen layer axis: L cells centred on the depths tau_l = l / L
        bounds, cells = (layer_bounds(layers), *bounds), (layers, *cells)
        if math.prod(cells) > MAX_CELLS:
            raise fail(source, "grid.cells", f"{layers} layers of {math.prod(cells[1:])} cells make "
                                             f"{math.prod(cells)} cells, more than the {MAX_CELLS} allowed")

    time_t = top.table("time")
    # end and snapshots follow from the times (`gflow.case_times`: listed, linear or log-spaced)
    times = snapshot_times(time_t)
    end, snapshots = times[-1], len(times)
    dt = time_t.number("dt", None, positive=True) if time_t.has("dt") else None
    time_t.done()
    dynamics = _dynamics(top.table("dynamics", required=False), temperature, layers)
    _check_wfr(source, dynamics, mass_penalty, initial_mass)

    solvers = _solvers(top)
    for i, spec in enumerate(solvers):
        found = over_budget(spec.kind, spec.options, end, dt)
        if found:
            key = "time.dt" if found[0] == "dt" else ("solver" if top.has("solver") else f"solvers[{i}]") + ".lr"
            raise fail(top.source, key, found[1])
    out_t = top.table("output", required=False)
    # the default directory comes from the name: keep it one plain path component
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "case"
    output_dir = Path(out_t.string("dir", f"runs/{slug}"))
    out_t.done()
    sweep = _sweep(top.table("sweep", required=False))
    top.done()
    return Case(name, description, model, weight_decay, temperature, initial, bounds, cells, end, snapshots,
                dt, solvers, output_dir, source, copy.deepcopy(doc), sweep, files, times=times,
                dynamics=dynamics, mass_penalty=mass_penalty)


def _dynamics(t: Table, temperature: float, layers: int | None) -> DynamicsSpec:
    """`birth_death = kappa` (>= 0) and `birth_death_until` (> 0; with kappa = 0 it stops nothing, so
    that a `[sweep]` over kappa may include 0, plain transport); refused where V[rho] is not the
    whole first variation (temperature: the entropy's T log rho) or mass moves between layers."""
    kappa = t.number("birth_death", 0.0, minimum=0.0)
    until = t.number("birth_death_until", positive=True) if t.has("birth_death_until") else None
    alpha, beta = _wfr_keys(t, kappa, temperature, layers)
    t.done()
    if kappa > 0 and temperature > 0:
        raise t.error("birth_death", "needs temperature = 0: with noise, birth-death would need the entropy's "
                                     "T log rho in V, which gflow does not add")
    if kappa > 0 and layers:
        raise t.error("birth_death", "is not defined for layered models (resnet): each layer keeps its own mass")
    return DynamicsSpec(kappa, until, alpha, beta)


def _wfr_keys(t: Table, kappa: float, temperature: float, layers: int | None) -> tuple[float, float]:
    """`fisher_rao = alpha` (>= 0) and `transport = beta` (>= 0, default 1; only beside fisher_rao):
    Wasserstein-Fisher-Rao dynamics (docs/wfr.md), refused with birth-death (two reactions), with
    noise (V would need the entropy's T log rho) and for layered models (mass moves between layers)."""
    alpha = t.number("fisher_rao", 0.0, minimum=0.0)
    beta = t.number("transport", 1.0, minimum=0.0)
    if t.has("transport") and not alpha > 0:
        raise t.error("transport", "scales the transport of Wasserstein-Fisher-Rao dynamics: it needs "
                                   "fisher_rao = alpha > 0 (without it, rescale [time] instead)")
    if alpha > 0 and kappa > 0:
        raise t.error("fisher_rao", "and birth_death are two reactions of the mass: give one of them")
    if alpha > 0 and temperature > 0:
        raise t.error("fisher_rao", "needs temperature = 0: with noise, the reaction would need the entropy's "
                                    "T log rho in V, which gflow does not add")
    if alpha > 0 and layers:
        raise t.error("fisher_rao", "is not defined for layered models (resnet): each layer keeps its own mass")
    return alpha, beta


def _check_wfr(source: str, dynamics: DynamicsSpec, mass_penalty: float, initial_mass: float) -> None:
    """A mass penalty and an initial mass other than 1 mean something only where the mass changes."""
    if dynamics.fisher_rao > 0:
        return
    if mass_penalty > 0:
        raise fail(source, "regularization.mass_penalty", "penalises the total mass, which only Wasserstein-"
                                                          "Fisher-Rao dynamics changes: it needs [dynamics] "
                                                          "fisher_rao = alpha > 0")
    if initial_mass != 1.0:
        raise fail(source, "initial.mass", "sets the initial mass of Wasserstein-Fisher-Rao dynamics: it needs "
                                           "[dynamics] fisher_rao = alpha > 0 (other dynamics keep mass 1)")


def _check_axis_names(axes: tuple[str, ...], t: Table) -> None:
    """Each axis becomes a dataset of the run file (its cell centres) and a variable of
    expressions: refuse names HDF5 would read as paths ('/', '.'), control characters, names
    that Python's parser would read as another (not NFKC-normal: 'ｘ' is 'x'), and names that
    equal a dataset of the run file or each other once Unicode forms and case are folded."""
    seen: dict[str, str] = {}
    for name in axes:
        if not name or any(c in "/." or unicodedata.category(c)[0] == "C" for c in name):
            raise t.error("axes", f"{name!r}: an axis name must be non-empty, without '/', '.' or control characters")
        normal = unicodedata.normalize("NFKC", name)
        if normal != name:
            raise t.error("axes", f"{name!r} is not in Unicode normal form (NFKC): expressions would read it "
                                  f"as {normal!r}; write {normal!r}")
        folded = normal.casefold()
        clash = RUN_FILE_NAMES.get(folded)
        if clash is not None:
            raise t.error("axes", f"{name!r} clashes with the run file's dataset {clash!r}: choose another name")
        if folded in seen:
            raise t.error("axes", f"{seen[folded]!r} and {name!r} are the same name once case is folded")
        seen[folded] = name


def _check_radial(radial: dict[int, int], axes, initial: InitialSpec, bounds, source: str,
                  temperature: float) -> None:
    """An axis that is a norm (w_perp, w_norm: `TwoLayerSpec.radial_axes`) is >= 0 (> 0 for a
    point mass with noise, whose drift (k - 1) T / r and entropy are infinite at 0), and an
    initial Gaussian gives it the chi law of a centred isotropic Gaussian: its mean must be 0."""
    for axis in radial:
        if bounds[axis][0] < 0:
            raise fail(source, f"grid.bounds[{axis}]", f"{axes[axis]} is a norm (>= 0): its low bound must be "
                                                      f"0 or more, got {bounds[axis][0]:g}")
        for i, (_, mean, _) in enumerate(initial.components):
            if mean[axis] != 0:
                key = "initial.mean" if initial.distribution == "gaussian" else f"initial.components[{i}].mean"
                raise fail(source, key, f"entry {axis} ({axes[axis]}) must be 0: a rotation-invariant Gaussian is "
                                        f"centred across e1, and {axes[axis]} is its norm (std gives its chi law)")
        if len(initial.points):
            column = np.asarray(initial.points, dtype=float)[:, axis]
            bad = (column < 0) | ((temperature > 0) & (column == 0))
            if bad.any():
                i = int(np.argmax(bad))
                key, which = ("initial.file", f"point {i + 1}: ") if isinstance(initial.points, np.ndarray) \
                    else (f"initial.points[{i}]", "")
                raise fail(source, key, f"{which}{axes[axis]} is a norm: entry {axis} must be "
                                        f"{'> 0 with temperature > 0' if temperature > 0 else '>= 0'}")
        if initial.distribution == "sphere":
            raise fail(source, "initial.distribution", f"{axes[axis]} is a norm (>= 0): a sphere about a centre "
                                                       "would cross 0; use gaussian, or product with uniform laws")
        if initial.factors and (initial.factors[axis][0] != "uniform" or initial.factors[axis][1] < 0):
            raise fail(source, f"initial.factors.{axes[axis]}", f"{axes[axis]} is a norm (>= 0): its law must "
                                                               "be uniform with low >= 0")


#: the laws of `[initial] distribution` (docs/initial_conditions.md)
INITIAL_LAWS = ("gaussian", "uniform", "mixture", "points", "sphere", "product", "snapshot")


def _initial(t: Table, axes: tuple[str, ...], layers: int | None = None,
             base_dir: Path = Path(".")) -> tuple[InitialSpec, dict[str, Path]]:
    """The initial law and the files it names (dotted key -> absolute path): `points`, `file`
    and `snapshot` imply their law (`gflow.initial_case` reads the laws beyond the Gaussians)."""
    ndim = len(axes)
    implied = "points" if t.has("file") or t.has("points") else "snapshot" if t.has("snapshot") else "gaussian"
    dist = t.string("distribution", implied, choices=INITIAL_LAWS)
    if t.has("layer_means") and not (layers and dist == "gaussian"):
        raise t.error("layer_means", "per-layer means belong to a layered model (resnet) with a gaussian initial law")
    check_law_keys(t, dist)
    if t.has("file") and dist != "points":
        raise t.error("file", f"gives point masses (distribution = \"points\"), not distribution = \"{dist}\"")
    if dist in ("sphere", "product", "snapshot"):
        fields, files = parse_law(t, dist, axes, layers, base_dir)
        t.done()
        return InitialSpec(dist, **fields), files
    if dist == "uniform":
        t.done()
        return InitialSpec("uniform"), {}
    if dist == "points":
        spec, files = _points(t, axes, base_dir)
        t.done()
        return spec, files
    if dist == "gaussian":
        mean = tuple(t.numbers("mean", ndim, [0.0] * ndim) if t.has("layer_means") else t.numbers("mean", ndim))
        comp = (1.0, mean, tuple(t.numbers("std", ndim, positive=True)))
        means = _layer_means(t, ndim, layers) if t.has("layer_means") else ()
        t.done()
        return InitialSpec("gaussian", (comp,), layer_means=means), {}
    raw = t.raw("components")
    if not isinstance(raw, list) or not raw:
        raise t.error("components", "must be a non-empty list of tables {weight, mean, std}")
    comps = []
    for i, item in enumerate(raw):
        c = Table(item, t.source, f"{t.key('components')}[{i}]")
        comps.append((c.number("weight", positive=True), tuple(c.numbers("mean", ndim)),
                      tuple(c.numbers("std", ndim, positive=True))))
        c.done()
    t.done()
    total = sum(c[0] for c in comps)
    return InitialSpec("mixture", tuple((w / total, m, s) for w, m, s in comps)), {}


#: point masses an inline `[initial] points` list may hold
MAX_POINTS = 10_000


def _points(t: Table, axes: tuple[str, ...], base_dir: Path) -> tuple[InitialSpec, dict[str, Path]]:
    """`points = [[u_1..u_D], ...]` and optional `weights` (normalised to sum 1), or the same
    from a CSV `file` (`gflow.initial_case.points_file`)."""
    ndim = len(axes)
    if t.has("file"):
        if t.has("points") or t.has("weights"):
            raise t.error("points" if t.has("points") else "weights", "give the points inline or in `file`, not both")
        points, weights, path = points_file(t, axes, base_dir)
        return InitialSpec("points", points=points, point_weights=weights), {"initial.file": path}
    raw = t.raw("points")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_POINTS:
        raise t.error("points", f"must be a non-empty list of at most {MAX_POINTS} points [u_1, ..., u_{ndim}]")
    points = []
    for i, row in enumerate(raw):
        key = f"points[{i}]"
        if not isinstance(row, list) or len(row) != ndim:
            raise t.error(key, f"must be a list of {ndim} numbers (one per axis), got {row!r:.60}")
        points.append(tuple(check_float(v, t.error, key) for v in row))
    weights = t.numbers("weights", len(points), [1.0] * len(points))
    if any(not (w >= 0 and math.isfinite(w)) for w in weights) or not sum(weights) > 0:
        raise t.error("weights", "must be finite, non-negative and not all zero")
    total = sum(weights)
    return InitialSpec("points", points=tuple(points), point_weights=tuple(w / total for w in weights)), {}


def _layer_means(t: Table, ndim: int, layers: int) -> tuple[tuple[float, ...], ...]:
    """`layer_means`: L lists of D numbers, or D entries, each a number or an expression in the
    depth `tau` (tau_l = l / L), giving layer l's Gaussian mean."""
    from gflow.expr import parse_expression
    from gflow.schema import check_expression

    raw = t.raw("layer_means")
    key = "layer_means"
    if isinstance(raw, list) and raw and all(isinstance(row, list) for row in raw):
        if len(raw) != layers:
            raise t.error(key, f"as a list of lists it needs one mean per layer ({layers}), got {len(raw)}")
        means = []
        for i, row in enumerate(raw):
            if len(row) != ndim:
                raise t.error(f"{key}[{i}]", f"must be {ndim} numbers (one per axis), got {row!r:.60}")
            means.append(tuple(check_float(v, t.error, f"{key}[{i}]") for v in row))
        return tuple(means)
    if not isinstance(raw, list) or len(raw) != ndim:
        raise t.error(key, f"must be {layers} lists of {ndim} numbers, or {ndim} numbers or expressions in tau")
    taus = [l / layers for l in range(layers)]
    columns = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            check_expression(t, f"{key}[{i}]", item, ["tau"])
            f = parse_expression(item, ["tau"])
            values = [float(f(tau)) for tau in taus]
        else:
            values = [check_float(item, t.error, f"{key}[{i}]")] * layers
        if not all(math.isfinite(v) for v in values):
            raise t.error(f"{key}[{i}]", "is not finite at every depth tau = l / L")
        columns.append(values)
    return tuple(zip(*columns))


def _bounds(t: Table, ndim: int) -> tuple[tuple[float, float], ...]:
    raw = t.raw("bounds")
    if not isinstance(raw, list) or len(raw) != ndim:
        raise t.error("bounds", f"must be a list of {ndim} [low, high] pairs (one per axis), got {raw!r}")
    bounds = []
    for i, pair in enumerate(raw):
        key = f"bounds[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise t.error(key, f"must be a [low, high] pair, got {pair!r}")
        lo, hi = (check_float(v, t.error, key) for v in pair)
        if not lo < hi:
            raise t.error(key, f"low ({lo:g}) must be below high ({hi:g})")
        if not math.isfinite(hi - lo):
            raise t.error(key, "the interval is too wide to represent")
        bounds.append((lo, hi))
    return tuple(bounds)


def _cells(t: Table, ndim: int) -> tuple[int, ...]:
    raw = t.raw("cells")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw] * ndim
    if not isinstance(raw, list) or len(raw) != ndim:
        raise t.error("cells", f"must be a list of {ndim} integers (one per axis), got {raw!r}")
    for n in raw:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise t.error("cells", f"must be positive integers, got {n!r}")
    if math.prod(raw) > MAX_CELLS:
        raise t.error("cells", f"{raw} makes {math.prod(raw)} cells, more than the {MAX_CELLS} allowed")
    return tuple(raw)


def _sweep(t: Table) -> dict[str, list]:
    """`[sweep]`: dotted key -> non-empty list of values (docs/sweeps.md).

    An unquoted `solver.particles = [...]` is a nested table in TOML, so nested tables are
    flattened into dotted keys; each key is checked against the case only when a sweep
    applies it, as a `--set` override would be.
    """
    axes: dict[str, list] = {}

    def walk(node: dict, prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if isinstance(value, dict) and value:
                walk(value, f"{key}.")
            elif not (isinstance(value, list) and value):
                raise fail(t.source, f"sweep.{key}", f"must be a non-empty list of values, got {value!r:.60}")
            else:
                axes[key] = value

    walk(t.data, "")
    for name in t.data:
        t.raw(name)
    t.done()
    return axes


def _solvers(top: Table) -> tuple[SolverSpec, ...]:
    if top.has("solver") and top.has("solvers"):
        raise top.error("solvers", "give either [solver] or [[solvers]], not both")
    if top.has("solvers"):
        raw = top.raw("solvers")
        if not isinstance(raw, list) or not raw:
            raise top.error("solvers", "must be a non-empty list of solver tables")
        tables = [(item, f"solvers[{i}]") for i, item in enumerate(raw)]
    else:
        tables = [(top.raw("solver", {"kind": "fv"}), "solver")]
    specs = []
    for item, key in tables:
        t = Table(item, top.source, key)
        kind = t.string("kind", "fv", choices=SOLVER_KINDS)
        options = read_options(kind, t)
        t.done()
        specs.append(SolverSpec(kind, options, {k: v for k, v in item.items() if k != "kind"}))
    kinds = [s.kind for s in specs]
    if len(set(kinds)) != len(kinds):
        raise fail(top.source, "solvers", f"each solver kind may appear once (got {', '.join(kinds)})")
    return tuple(specs)
