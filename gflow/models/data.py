"""The data measure of E_x: nodes x_m with probability weights p_m and targets y_m.

Quadrature measures (Gauss-Legendre for uniform, Gauss-Hermite for Gaussian data) make
E_x exact for polynomial integrands of high degree; samples give the empirical risk of a
finite data set; a CSV file gives user data, whose y column replaces the target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gflow.models.two_layer_case import DataSpec
from gflow.errors import InputError


@dataclass(frozen=True)
class DataMeasure:
    x: np.ndarray            # (M, d) nodes
    p: np.ndarray            # (M,) weights, summing to 1
    y: np.ndarray | None     # (M,) targets from a data file, else None


def _tensor(nodes_1d: np.ndarray, weights_1d: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*([nodes_1d] * d), indexing="ij")
    x = np.stack([g.ravel() for g in grids], axis=1)
    p = np.ones(1)
    for _ in range(d):
        p = np.multiply.outer(p, weights_1d).ravel()
    return x, p / p.sum()


def build_data(spec: DataSpec, input_dim: int, source: str = "<case>") -> DataMeasure:
    d = input_dim
    if spec.distribution == "uniform":
        t, w = np.polynomial.legendre.leggauss(spec.nodes)
        x1 = 0.5 * (spec.high - spec.low) * t + 0.5 * (spec.high + spec.low)
        return DataMeasure(*_tensor(x1, w, d), None)
    if spec.distribution == "gaussian":
        # probabilists' Hermite nodes integrate against exp(-t^2/2): N(0, 1) after normalising
        t, w = np.polynomial.hermite_e.hermegauss(spec.nodes)
        return DataMeasure(*_tensor(spec.mean + spec.std * t, w, d), None)
    if spec.distribution == "samples":
        rng = np.random.default_rng(spec.seed)
        if spec.sampler == "uniform":
            x = rng.uniform(spec.low, spec.high, size=(spec.samples, d))
        else:
            x = rng.normal(spec.mean, spec.std, size=(spec.samples, d))
        return DataMeasure(x, np.full(spec.samples, 1.0 / spec.samples), None)
    return _read_csv(spec.file, d, source)


def _read_csv(path, d: int, source: str) -> DataMeasure:
    try:
        table = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    except (OSError, ValueError) as exc:
        raise InputError(f"{source}: data.file: cannot read {path}: {exc}") from None
    names = table.dtype.names or ()
    xs = ["x"] if d == 1 and "x" in names else [f"x{i + 1}" for i in range(d)]
    missing = [n for n in xs if n not in names]
    if missing:
        raise InputError(f"{source}: data.file: {path} has no column {missing[0]!r} (columns: {', '.join(names)})")
    table = np.atleast_1d(table)
    x = np.stack([table[n] for n in xs], axis=1)
    y = table["y"] if "y" in names else None
    if len(x) == 0 or not np.all(np.isfinite(x)) or (y is not None and not np.all(np.isfinite(y))):
        raise InputError(f"{source}: data.file: {path} is empty or has missing or non-numeric values")
    return DataMeasure(x, np.full(len(x), 1.0 / len(x)), y)
