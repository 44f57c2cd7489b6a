"""The registry of unit families: activations sigma with their exact derivatives.

One entry per unit, read by the case parser (the names `[model] activation` accepts), the
numpy paths (sigma and sigma', grad V is never differenced) and the fused numba kernels
(`kernel_code`, the branch the particle kernel takes). A unit without a kernel code runs the
numpy path whatever `kernel` says, and says so in `fallback`; `tests/test_units.py` checks
that every unit has one or the other, and that sigma' is the derivative of sigma.
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


#: name -> Unit; the kernel codes are the branches of `two_layer_kernels._dot_sigma` and friends
UNITS: dict[str, Unit] = {u.name: u for u in (
    # relu'' is 0 away from the kink (its delta at 0 is left out: a measure-zero set of points)
    Unit("relu", _relu, _relu_prime, kernel_code=1, d2sigma=_zero),
    Unit("tanh", np.tanh, _tanh_prime, kernel_code=0, d2sigma=_tanh_second),
    Unit("sigmoid", _sigmoid, _sigmoid_prime, kernel_code=2, d2sigma=_sigmoid_second),
    Unit("linear", np.asarray, _one, kernel_code=3, d2sigma=_zero),
    Unit("cos", np.cos, _minus_sin, kernel_code=4, d2sigma=_minus_cos),
)}

#: name -> (sigma, sigma'), the plain pairs
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    name: (u.sigma, u.dsigma) for name, u in UNITS.items()}
