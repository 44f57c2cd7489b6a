"""Activation functions sigma with their exact derivatives (grad V is never differenced)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray


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


def _minus_sin(z: Array) -> Array:
    return -np.sin(z)


#: name -> (sigma, sigma')
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "relu": (_relu, _relu_prime),
    "tanh": (np.tanh, _tanh_prime),
    "sigmoid": (_sigmoid, _sigmoid_prime),
    "linear": (np.asarray, _one),
    "cos": (np.cos, _minus_sin),
}
