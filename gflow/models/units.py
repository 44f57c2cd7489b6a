"""The registry of unit families: activations sigma with their exact derivatives.

One entry per unit, read by the case parser (the names `[model] activation` accepts), the
numpy paths (sigma and sigma', grad V is never differenced) and the fused numba kernels
(`kernel_code`, the branch the particle kernel takes). A unit without a kernel code runs the
numpy path whatever `kernel` says, and says so in `fallback`; `tests/test_units.py` checks
that every unit has one or the other, and that sigma' is the derivative of sigma.

Besides these sigma(w.x + b) units, `FAMILIES` holds the named unit families of `[model] unit`
(docs/units.md): each yields the unit phi(x; u) as an expression of `gflow.expr` in the inputs
and its axes, so that a family and a unit written out by hand share one exact path (symbolic
derivatives, `gflow.models.unit_network`), and says its default axes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Unit:
    """An activation: sigma, sigma', and how the fused particle kernel evaluates it."""

    name: str
    sigma: Callable[[Array], Array]
    dsigma: Callable[[Array], Array]
    #: the code `gflow.models.two_layer_kernels` branches on, or None (numpy path only)
    kernel_code: int | None = None
    #: why a unit without a kernel code has none (shown in docs and by the test)
    fallback: str = ""
    #: sigma'', where a method needs it (the resnet's extended MSA), else None
    d2sigma: Callable[[Array], Array] | None = None


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu_prime(z: Array) -> Array:
    return (z > 0).astype(z.dtype)


def _tanh_prime(z: Array) -> Array:
    t = np.tanh(z)
    return 1.0 - t * t


def _sigmoid(z: Array) -> Array:
    # the tanh form never overflows, unlike 1 / (1 + exp(-z)) (and spares importing scipy.special)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _sigmoid_prime(z: Array) -> Array:
    s = _sigmoid(z)
    return s * (1.0 - s)


def _one(z: Array) -> Array:
    return np.ones_like(z)


def _zero(z: Array) -> Array:
    return np.zeros_like(z)


def _tanh_second(z: Array) -> Array:
    t = np.tanh(z)
    return -2.0 * t * (1.0 - t * t)


def _sigmoid_second(z: Array) -> Array:
    s = _sigmoid(z)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _minus_cos(z: Array) -> Array:
    return -np.cos(z)


def _minus_sin(z: Array) -> Array:
    return -np.sin(z)


def _gaussian(z: Array) -> Array:
    return np.exp(-0.5 * z * z)


def _gaussian_prime(z: Array) -> Array:
    return -z * _gaussian(z)


def _gaussian_second(z: Array) -> Array:
    return (z * z - 1.0) * _gaussian(z)


#: name -> Unit; the kernel codes are the branches of `two_layer_kernels._dot_sigma` and friends
UNITS: dict[str, Unit] = {u.name: u for u in (
    # relu'' is 0 away from the kink (its delta at 0 is left out: a measure-zero set of points)
    Unit("relu", _relu, _relu_prime, kernel_code=1, d2sigma=_zero),
    Unit("tanh", np.tanh, _tanh_prime, kernel_code=0, d2sigma=_tanh_second),
    Unit("sigmoid", _sigmoid, _sigmoid_prime, kernel_code=2, d2sigma=_sigmoid_second),
    Unit("linear", np.asarray, _one, kernel_code=3, d2sigma=_zero),
    Unit("cos", np.cos, _minus_sin, kernel_code=4, d2sigma=_minus_cos),
    # sigma(z) = exp(-z^2 / 2): a ridge bump a exp(-(w.x + b)^2 / 2), not the radial unit "gaussian" of FAMILIES
    Unit("gaussian", _gaussian, _gaussian_prime, d2sigma=_gaussian_second,
         fallback="the fused particle kernel has no exp branch: particles run the numpy path (kernel = "
                  "\"numba\" falls back to it), grids the separable path as for every activation"),
)}

#: name -> (sigma, sigma'), the plain pairs
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    name: (u.sigma, u.dsigma) for name, u in UNITS.items()}


# ----------------------------------------------------------------------------- unit families

@dataclass(frozen=True)
class Family:
    """A named unit family of `[model] unit`: phi(x; u) as expression text, and its default axes.

    `expression(inputs, axes, params)` writes phi in the input names (x or x1..xd), the axis
    names (the defaults, or the case's `axes`, as many) and the family's parameters
    (`parameters`: `[model]` key -> (default, meaning), each a positive number). `groups(d)`
    names groups of the default axes that `train` may use ("y" for y1..yd).
    """

    name: str
    meaning: str
    default_axes: Callable[[int], tuple[str, ...]]
    expression: Callable[[list[str], tuple[str, ...], dict[str, float]], str]
    parameters: dict[str, tuple[float, str]]
    groups: Callable[[int], dict[str, tuple[str, ...]]]


def _gaussian_axes(d: int) -> tuple[str, ...]:
    return ("a", "y") if d == 1 else ("a", *(f"y{i + 1}" for i in range(d)))


def _gaussian_groups(d: int) -> dict[str, tuple[str, ...]]:
    return {} if d == 1 else {"y": _gaussian_axes(d)[1:]}


def _gaussian_rbf(inputs: list[str], axes: tuple[str, ...], params: dict[str, float]) -> str:
    """a exp(-|x - y|^2 / (2 s2)) / (2 pi s2)^(d/2): the Gaussian density N(x; y, s2 I) times a
    (Rotskoff and Vanden-Eijnden, CPAM 2022; rotskoff/neuron-birth-death, gaussian_example.ipynb)."""
    s2, d = params["variance"], len(inputs)
    square = " + ".join(f"({x} - {y})**2" for x, y in zip(inputs, axes[1:]))
    # repr: the text re-parses to the very floats (1 / (2 s2) and the normalisation)
    return f"{axes[0]}*exp(-({square})*{1.0 / (2.0 * s2)!r})*{(2.0 * np.pi * s2) ** (-0.5 * d)!r}"


#: `[model] unit` names -> Family (any other text is read as an expression)
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("gaussian", "the Gaussian RBF a exp(-|x - y|^2 / (2 s2)) / (2 pi s2)^(d/2), s2 = `variance`; "
           "axes (a, y) for d = 1, (a, y1..yd) for d > 1", _gaussian_axes, _gaussian_rbf,
           {"variance": (1.0, "s2, the variance of the Gaussian unit (`unit = \"gaussian\"`)")}, _gaussian_groups),
)}
