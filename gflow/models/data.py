"""The data measure of E_x: nodes x_m with weights p_m and targets y_m.

Quadrature measures (Gauss-Legendre for uniform, Gauss-Hermite for Gaussian data) make
E_x exact for polynomial integrands of high degree; samples give the empirical risk of a
finite data set; points on a sphere are Chizat's ReLU illustration; a CSV file or an inline
list gives user data, whose y replaces the target. The weights are a probability (sum 1) or,
for uniform data with measure = "lebesgue", the Lebesgue measure of [low, high]^d (sum
(high - low)^d), so that R = 1/2 sum_m p_m r_m^2 = 1/2 int (f - f*)^2 dx.
"""
from __future__ import annotations

import itertools
from array import array
from dataclasses import dataclass

import numpy as np

from gflow.errors import InputError
from gflow.models.two_layer_case import MAX_DATA_NODES, DataSpec
from gflow.schema import decode_utf8, open_regular

#: the largest Gauss-Hermite rule taken from numpy (as `gflow.solvers.quadrature` does)
MAX_HERMEGAUSS = 200
#: a data file holds at most as many rows as any data measure has nodes
MAX_DATA_ROWS = MAX_DATA_NODES
#: a data line holds at most MAX_INPUT_DIM + 1 numbers: 64 KiB is far beyond that
MAX_LINE_BYTES = 1 << 16
#: the file itself, checked before reading: MAX_DATA_ROWS lines of 1 KiB
MAX_DATA_BYTES = MAX_DATA_ROWS << 10


@dataclass(frozen=True)
class DataMeasure:
    """nu = sum_m p_m delta_{x_m}, the measure E_x integrates against, of total mass `total`:
    1 for a probability (every distribution's default), (high - low)^d for uniform data with
    measure = "lebesgue". R, V and grad V are linear in p, so they need nothing else; what draws
    from nu (SGD minibatches, `gflow.solvers.particle`) draws from p / total and weighs each of
    its b draws total / b, an unbiased estimate of the integral against nu."""

    x: np.ndarray            # (M, d) nodes
    p: np.ndarray            # (M,) weights, summing to `total`
    y: np.ndarray | None     # (M,) targets from a data file or inline, else None
    total: float = 1.0       # sum_m p_m, exactly as stated (not the rounded sum)


def labelled(data: DataMeasure, target) -> DataMeasure:
    """The data measure with its targets: the data's own y, or f*(x) at the nodes."""
    return DataMeasure(data.x, data.p, data.y if data.y is not None else target(data.x), data.total)


def _tensor(nodes_1d: np.ndarray, weights_1d: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*([nodes_1d] * d), indexing="ij")
    x = np.stack([g.ravel() for g in grids], axis=1)
    p = np.ones(1)
    for _ in range(d):
        p = np.multiply.outer(p, weights_1d).ravel()
    return x, p / p.sum()


def build_data(spec: DataSpec, input_dim: int, source: str = "<case>") -> DataMeasure:
    d = input_dim
    # the Lebesgue measure of [low, high]^d has the uniform law's nodes, its weights times the volume
    volume = (spec.high - spec.low) ** d if spec.measure == "lebesgue" else 1.0
    if spec.distribution == "uniform":
        t, w = np.polynomial.legendre.leggauss(spec.nodes)
        x1 = 0.5 * (spec.high - spec.low) * t + 0.5 * (spec.high + spec.low)
        x, p = _tensor(x1, w, d)
        return DataMeasure(x, p * volume, None, volume)
    if spec.distribution == "gaussian":
        # probabilists' Hermite nodes integrate against exp(-t^2/2): N(0, 1) after normalising;
        # numpy's rule overflows beyond ~300 nodes (NaN weights), scipy's is asymptotic there
        if spec.nodes <= MAX_HERMEGAUSS:
            t, w = np.polynomial.hermite_e.hermegauss(spec.nodes)
        else:
            from scipy.special import roots_hermitenorm
            t, w = roots_hermitenorm(spec.nodes)
        return DataMeasure(*_tensor(spec.mean + spec.std * t, w, d), None)
    if spec.distribution == "samples":
        rng = np.random.default_rng(spec.seed)
        if spec.sampler == "uniform":
            x = rng.uniform(spec.low, spec.high, size=(spec.samples, d))
        else:
            x = rng.normal(spec.mean, spec.std, size=(spec.samples, d))
        return DataMeasure(x, np.full(spec.samples, volume / spec.samples), None, volume)
    if spec.distribution == "sphere":
        return sphere_points(spec.samples, d, spec.radius, spec.seed)
    if spec.distribution == "inline":
        x = np.array(spec.points, dtype=float).reshape(len(spec.points), d)
        y = None if spec.values is None else np.array(spec.values, dtype=float)
        return DataMeasure(x, np.full(len(x), 1.0 / len(x)), y)
    return _read_csv(spec.file, d, source)


def sphere_points(n: int, d: int, radius: float, seed: int) -> DataMeasure:
    """n points uniform on the sphere of `radius` in R^d, weights 1/n: standard normal vectors
    normalised (their law is rotation invariant), as Chizat's illustration draws its 15 points
    on the unit circle (`randn` then normalise; 2019-sparse-optim-measures)."""
    z = np.random.default_rng(seed).standard_normal((n, d))
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return DataMeasure(radius * z / norms, np.full(n, 1.0 / n), None)


def _read_csv(path, d: int, source: str) -> DataMeasure:
    label = f"{source}: data.file: {path}"
    with open_regular(path, label, MAX_DATA_BYTES) as handle:
        lines = csv_lines(handle, label)
        names = _header(lines, label)
        xs = file_inputs(names, d)
        missing = [n for n in xs if n not in names]
        if missing:
            raise InputError(f"{label}: has no column {missing[0]!r} (columns: {', '.join(names)})")
        wanted = [names.index(n) for n in xs] + ([names.index("y")] if "y" in names else [])
        columns = [array("d") for _ in wanted]
        rows = 0
        for number, text in lines:
            fields = text.split(",")
            if len(fields) != len(names):
                raise InputError(f"{label}: line {number} has {len(fields)} values, the header {len(names)} columns")
            rows += 1
            if rows > MAX_DATA_ROWS:
                raise InputError(f"{label}: more than the {MAX_DATA_ROWS} data rows allowed")
            for column, index in zip(columns, wanted):
                try:
                    column.append(float(fields[index]))
                except ValueError:
                    raise InputError(f"{label}: line {number}: {fields[index].strip()[:40]!r} in column "
                                     f"{names[index]!r} is not a number") from None
    values = [np.frombuffer(c, dtype=float) for c in columns]
    x = np.stack(values[:d], axis=1) if rows else np.empty((0, d))
    y = values[d] if "y" in names else None
    if len(x) == 0 or not np.all(np.isfinite(x)) or (y is not None and not np.all(np.isfinite(y))):
        raise InputError(f"{label}: is empty or has missing or non-numeric values")
    return DataMeasure(x, np.full(len(x), 1.0 / len(x)), y)


# ----------------------------------------------------------------------------- data files

def csv_lines(handle, label: str):
    """(line number, text) of each line that holds data, streamed: a line's comment ('#' on)
    and blanks are dropped, a leading UTF-8 BOM too; a line longer than MAX_LINE_BYTES or one
    that is not UTF-8 is refused in one line naming it (and the byte offset)."""
    offset = 0
    for number in itertools.count(1):
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES:
            raise InputError(f"{label}: line {number} is longer than the {MAX_LINE_BYTES} bytes allowed")
        text = decode_utf8(raw, label, number, offset)
        offset += len(raw)
        if number == 1 and text.lstrip().startswith("#"):
            text = text.lstrip()[1:]            # a header may be written as a comment
        text = text.split("#", 1)[0].strip()
        if text:
            yield number, text


def file_inputs(names: list[str], d: int) -> list[str]:
    """The columns holding the inputs: x1..xd (or x alone for d = 1)."""
    return ["x"] if d == 1 and "x" in names else [f"x{i + 1}" for i in range(d)]


def _header(lines, label: str) -> list[str]:
    first = next(lines, None)
    if first is None:
        raise InputError(f"{label}: is empty (expected a header line of column names, e.g. x,y)")
    names = [n.strip() for n in first[1].split(",")]
    if not all(names):
        raise InputError(f"{label}: line {first[0]}: the header has an empty column name")
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise InputError(f"{label}: line {first[0]}: column {repeated!r} appears twice in the header")
    return names


def file_columns(path, label: str) -> tuple[list[str], int]:
    """The column names of a data file and a bound on its data rows (its lines after the
    header), without parsing it: what the case check needs (`gflow.memory`), in one pass of
    block reads; more than MAX_DATA_ROWS lines is refused here already."""
    with open_regular(path, label, MAX_DATA_BYTES) as handle:
        lines = csv_lines(handle, label)
        names = _header(lines, label)
        rest = handle.read(0)           # the header's line has been consumed
        count = 0
        while count <= MAX_DATA_ROWS and (block := handle.read(1 << 20)):
            count += block.count(b"\n")
            rest = block
        count += bool(rest) and not rest.endswith(b"\n")       # a last line without its newline
    if count > MAX_DATA_ROWS:
        raise InputError(f"{label}: more than the {MAX_DATA_ROWS} data rows allowed")
    return names, count
