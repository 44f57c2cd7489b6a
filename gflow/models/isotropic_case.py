"""Case tables of a two-layer network on rotation-invariant data in R^d, and its data measures.

    [data]   distribution = "gaussian", dim = d, std (N(0, std^2 I_d)), or
             classes = [{weight, std, y}, ...] (a labelled mixture of centred isotropic Gaussians,
             Mei, Montanari and Nguyen's classification example); nodes (per reduced axis),
             samples and seed (the draws of the full model)
    [target] expression = "..." in x1 (= e1.x) and r (= |x|); none with classes (y is the label)
    [model]  symmetry = "rotations" | "none"; input_dim, if given, equals dim

A target that uses x1 is invariant under the rotations that fix e1: the case's axes are then
(a, w_par, w_perp[, b]), w_par = e1.w, w_perp = |w - w_par e1|; one that does not (or class
labels) is invariant under all rotations, and the axes are (a, w_norm[, b]), w_norm = |w|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gflow.expr import parse_expression
from gflow.models.two_layer_case import (MAX_DATA_NODES, MAX_RULE_NODES, DataSpec, TargetSpec, TwoLayerSpec,
                                         parse_train, refuse_foreign_keys)
from gflow.schema import Table, check_expression

#: the largest data dimension: the full model's particles hold 1 + d numbers each
MAX_DIM = 100_000
#: the variables of a target on isotropic data
TARGET_VARIABLES = ("x1", "r")
#: Gauss nodes per reduced axis by default (x1, |x_perp| and the cosine)
DEFAULT_NODES = 16
#: data draws of the full model by default
DEFAULT_SAMPLES = 4096


def parse_isotropic(top: Table, t: Table, data_t: Table, activation: str, bias: bool,
                    symmetry: str) -> tuple[TwoLayerSpec, dict]:
    refuse_foreign_keys(t)
    d = data_t.integer("dim", minimum=2, maximum=MAX_DIM)
    if t.has("input_dim") and t.integer("input_dim", minimum=1) != d:
        raise t.error("input_dim", f"must equal data.dim ({d}) or be left out")
    data = _data(data_t, d)
    if data.classes:
        if top.has("target"):
            raise top.error("target", "the data classes give the labels y: give [target] or classes, not both")
        target, keep_e1 = TargetSpec(), False
    else:
        target_t = top.table("target")
        if target_t.has("neurons"):
            raise target_t.error("neurons", "on data with dim, give the target as an expression in x1 and r")
        text = target_t.string("expression")
        check_expression(target_t, "expression", text, TARGET_VARIABLES)
        target_t.done()
        target = TargetSpec(expression=text)
        keep_e1 = parse_expression(text, TARGET_VARIABLES).uses("x1")
    data = _rule_nodes(data_t, data, 3 if keep_e1 else 2)
    ws = ("w_par", "w_perp") if keep_e1 else ("w_norm",)
    axes = ("a", *ws, *(("b",) if bias else ()))
    train = parse_train(t, axes, {"w": ws})
    return TwoLayerSpec("two_layer", axes, activation, bias, d, train, target, data, symmetry), {}


def _data(t: Table, d: int) -> DataSpec:
    t.string("distribution", "gaussian", choices=("gaussian",))
    if t.string("measure", "probability", choices=("probability", "lebesgue")) != "probability":
        raise t.error("measure", "\"lebesgue\" is for uniform data on [low, high]: isotropic data in R^dim "
                                 "are a probability law")
    if t.has("classes") and t.has("std"):
        raise t.error("std", "each class has its own std: give std in classes, not both")
    std = t.number("std", 1.0, positive=True)
    samples = t.integer("samples", DEFAULT_SAMPLES, minimum=1, maximum=MAX_DATA_NODES)
    seed = t.integer("seed", 0, minimum=0, maximum=2**63)
    classes = _classes(t) if t.has("classes") else ()
    t.raw("nodes", None)            # read by `_rule_nodes`, once the reduction is known
    t.done()
    return DataSpec("gaussian", std=std, samples=samples, seed=seed, dim=d, classes=classes)


def _rule_nodes(t: Table, data: DataSpec, axes: int) -> DataSpec:
    """`nodes`: Gauss nodes per reduced axis, one number for all or a list, [x1, |x_perp|, cosine]
    ([|x|, cosine] for the full rotation group): a target with steep features in x1 needs more
    there, while for large d the chi and cosine laws are narrow and need few."""
    raw = t.raw("nodes", DEFAULT_NODES)
    counts = list(raw) if isinstance(raw, list) else [raw] * axes      # each entry checked below
    # one node is no rule: a single cosine c = 0 would drop w_perp from the preactivation
    if not (isinstance(counts, list) and len(counts) == axes and all(
            isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= MAX_RULE_NODES for n in counts)):
        names = "[x1, |x_perp|, cosine]" if axes == 3 else "[|x|, cosine]"
        raise t.error("nodes", f"must be an integer or a list {names} of integers from 2 to {MAX_RULE_NODES}, "
                               f"got {raw!r:.60}")
    if axes == 3 and data.dim == 2:
        counts[-1] = 2                  # x_perp in R^1: its 'cosine' is the sign, two nodes
    total = len(data.classes or [0]) * math.prod(counts)
    if total > MAX_DATA_NODES:
        raise t.error("nodes", f"{' x '.join(map(str, counts))} reduced quadrature nodes per class make {total}, "
                               f"more than the {MAX_DATA_NODES} allowed")
    return replace(data, nodes=max(counts), rule_nodes=tuple(counts))


def _classes(t: Table) -> tuple[tuple[float, float, float], ...]:
    raw = t.raw("classes")
    if not isinstance(raw, list) or not raw:
        raise t.error("classes", "must be a non-empty list of tables {weight, std, y}")
    classes = []
    for i, item in enumerate(raw):
        c = Table(item, t.source, f"{t.key('classes')}[{i}]")
        classes.append((c.number("weight", positive=True), c.number("std", positive=True), c.number("y")))
        c.done()
    total = sum(w for w, _, _ in classes)
    return tuple((w / total, s, y) for w, s, y in classes)


def isotropic_nodes(spec: TwoLayerSpec) -> int:
    """The data nodes of the model the spec builds: the reduced rule's, or the full model's draws."""
    data = spec.data
    if spec.symmetry == "none":
        return data.samples
    return len(data.classes or [0]) * math.prod(data.rule_nodes)


def target_of(spec: TwoLayerSpec):
    """f*(x1, r) of the expression, or None (class labels)."""
    if spec.target.expression is None:
        return None
    expr = parse_expression(spec.target.expression, TARGET_VARIABLES)
    return lambda x1, r: np.broadcast_to(expr(x1, r), np.shape(r)).astype(float)


def _laws(data: DataSpec) -> tuple[tuple[float, float, float], ...]:
    """(weight, std, label) of each class; one unlabelled law (label NaN) without classes."""
    return data.classes or ((1.0, data.std, math.nan),)


# ----------------------------------------------------------------------------- data measures

@dataclass(frozen=True)
class ReducedMeasure:
    """E_x over invariant data as a rule on (outer node, cosine) pairs.

    The network f(x) of a rotation-invariant density depends on x only through the outer
    variables (x1, s = |x_perp|), or s = |x|; V at a neuron needs the preactivation
    w_par x1 + w_perp s c (+ b), or w_norm s c, with c the cosine between x_perp and w_perp.
    x: (M_o n_c, k) the inputs (x1, s c) or (s c) multiplying (w_par, w_perp) or (w_norm);
    p: their probability weights p_o x p_c; y_outer: (M_o,) targets; inner: (n_c,) the
    cosine weights p_c, so f at the outer nodes is (f at the pairs) reshaped (M_o, n_c) @ inner.
    """

    x: np.ndarray
    p: np.ndarray
    y_outer: np.ndarray
    inner: np.ndarray


def reduced_measure(spec: TwoLayerSpec) -> ReducedMeasure:
    from gflow.models.isotropic_rules import gauss_chi, gauss_normal, sphere_cosine

    data, d = spec.data, spec.data.dim
    keep_e1 = "w_par" in spec.axes
    target = target_of(spec)
    *n_x1, n_s, n_c = data.rule_nodes
    c, pc = sphere_cosine(n_c, d - 1 if keep_e1 else d)
    chi, pchi = gauss_chi(n_s, d - 1 if keep_e1 else d)
    t, pt = gauss_normal(n_x1[0]) if keep_e1 else (np.zeros(1), np.ones(1))
    xs, ps, ys = [], [], []
    for weight, std, label in _laws(data):
        x1, s = (g.ravel() for g in np.meshgrid(std * t, std * chi, indexing="ij"))
        ps.append(weight * np.multiply.outer(pt, pchi).ravel())
        ys.append(np.full(len(s), label) if target is None else target(x1, np.hypot(x1, s)))
        columns = [np.repeat(x1, len(c))] if keep_e1 else []
        xs.append(np.column_stack([*columns, np.multiply.outer(s, c).ravel()]))
    p_outer = np.concatenate(ps)
    return ReducedMeasure(np.concatenate(xs), np.multiply.outer(p_outer / p_outer.sum(), pc).ravel(),
                          np.concatenate(ys), pc)


def draw_data(spec: TwoLayerSpec, n: int, rng: np.random.Generator, target=None) -> tuple[np.ndarray, np.ndarray]:
    """n i.i.d. draws (x, y) of the data law in R^d: class labels, or f*(x1, |x|) (`target`,
    `target_of(spec)`, parsed once by the caller that draws often)."""
    weights, stds, labels = (np.array(v) for v in zip(*_laws(spec.data)))
    which = rng.choice(len(weights), size=n, p=weights) if len(weights) > 1 else np.zeros(n, int)
    x = stds[which, None] * rng.standard_normal((n, spec.data.dim))
    return x, (labels[which] if target is None else target(x[:, 0], np.linalg.norm(x, axis=1)))


def sampled_measure(spec: TwoLayerSpec):
    """The `samples` draws of the data law (seed `data.seed`), equally weighted."""
    from gflow.models.data import DataMeasure

    x, y = draw_data(spec, spec.data.samples, np.random.default_rng(spec.data.seed), target_of(spec))
    return DataMeasure(x, np.full(len(x), 1.0 / len(x)), y)
