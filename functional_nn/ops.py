"""Activations, their derivatives, softmax and log-softmax: pure, elementwise, dtype-preserving.

Each derivative is written in terms of the activation's *output* ``a = f(z)`` (as scikit-learn's ``DERIVATIVES``),
so backpropagation reuses the activations saved by the forward pass instead of keeping ``z`` around:
``relu'(z) = (a > 0)``, ``sigmoid'(z) = a (1 - a)``, ``tanh'(z) = 1 - a**2``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "DERIVATIVES",
    "LEAKY_RELU_SLOPE",
    "identity",
    "identity_derivative",
    "leaky_relu",
    "leaky_relu_derivative",
    "log_softmax",
    "relu",
    "relu_derivative",
    "sigmoid",
    "sigmoid_derivative",
    "softmax",
    "tanh",
    "tanh_derivative",
]

LEAKY_RELU_SLOPE = 0.01


def identity(z: np.ndarray) -> np.ndarray:
    """Return ``z`` unchanged (the output layer's activation: logits).

    >>> identity(np.array([-1.0, 2.0])).tolist()
    [-1.0, 2.0]
    """
    return z


def relu(z: np.ndarray) -> np.ndarray:
    """Rectified linear unit ``max(z, 0)``, same shape and dtype as ``z``.

    >>> relu(np.array([-1.0, 0.0, 2.0], np.float32)).tolist()
    [0.0, 0.0, 2.0]
    """
    return np.maximum(z, 0)


def leaky_relu(z: np.ndarray) -> np.ndarray:
    """Leaky ReLU: ``z`` where ``z > 0``, else ``LEAKY_RELU_SLOPE * z`` (0.01); same shape and dtype.

    >>> leaky_relu(np.array([-100.0, 3.0])).tolist()
    [-1.0, 3.0]
    """
    return np.where(z > 0, z, LEAKY_RELU_SLOPE * z)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-z))``, computed without overflow for any finite ``z``.

    Uses ``e = exp(-|z|)`` (never above 1): ``1 / (1 + e)`` for ``z >= 0`` and ``e / (1 + e)`` otherwise.

    >>> np.round(sigmoid(np.array([-1e4, 0.0, 1e4], np.float32)), 6).tolist()
    [0.0, 0.5, 1.0]
    """
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def tanh(z: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent, same shape and dtype as ``z``.

    >>> np.round(tanh(np.array([0.0, 1e4])), 6).tolist()
    [0.0, 1.0]
    """
    return np.tanh(z)


def identity_derivative(a: np.ndarray) -> np.ndarray:
    """Derivative of :func:`identity`: ones shaped like ``a``.

    >>> identity_derivative(np.array([3.0, -2.0])).tolist()
    [1.0, 1.0]
    """
    return np.ones_like(a)


def relu_derivative(a: np.ndarray) -> np.ndarray:
    """Derivative of :func:`relu` given its output ``a``: 1 where ``a > 0``, else 0 (same dtype as ``a``).

    >>> relu_derivative(relu(np.array([-1.0, 2.0]))).tolist()
    [0.0, 1.0]
    """
    return (a > 0).astype(a.dtype)


def leaky_relu_derivative(a: np.ndarray) -> np.ndarray:
    """Derivative of :func:`leaky_relu` given its output ``a``: 1 where ``a > 0``, else ``LEAKY_RELU_SLOPE``.

    >>> leaky_relu_derivative(leaky_relu(np.array([-1.0, 2.0]))).tolist()
    [0.01, 1.0]
    """
    return np.where(a > 0, 1.0, LEAKY_RELU_SLOPE).astype(a.dtype, copy=False)


def sigmoid_derivative(a: np.ndarray) -> np.ndarray:
    """Derivative of :func:`sigmoid` given its output ``a``: ``a * (1 - a)``.

    >>> sigmoid_derivative(sigmoid(np.array([0.0]))).tolist()
    [0.25]
    """
    return a * (1.0 - a)


def tanh_derivative(a: np.ndarray) -> np.ndarray:
    """Derivative of :func:`tanh` given its output ``a``: ``1 - a**2``.

    >>> tanh_derivative(tanh(np.array([0.0]))).tolist()
    [1.0]
    """
    return 1.0 - a * a


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "identity": identity,
}
"""Activation functions by name (read-only by convention, like every ALL_CAPS constant)."""

DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "identity": identity_derivative,
}
"""Derivatives by activation name, each a function of the activation's output ``a``."""


def _as_float(x: np.ndarray) -> np.ndarray:
    """``x`` as an array, integer input promoted to float64 (float input keeps its dtype)."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Log of the softmax along ``axis``, stable for any finite logits (shifted by the row max).

    Args:
        logits: float array, e.g. (batch, n_classes).
        axis: the class axis.

    Returns:
        Array shaped and typed like ``logits``: ``logits - logsumexp(logits)``.

    >>> np.round(log_softmax(np.array([[0.0, 0.0], [1e4, 0.0]])), 4).tolist()
    [[-0.6931, -0.6931], [0.0, -10000.0]]
    """
    logits = _as_float(logits)
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``: non-negative, sums to 1, unchanged by adding a constant to the logits.

    Args:
        logits: float array, e.g. (batch, n_classes).
        axis: the class axis.

    Returns:
        Probabilities shaped and typed like ``logits``.

    >>> np.round(softmax(np.array([[1.0, 1.0], [-1e4, 1e4]], np.float32)), 4).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    logits = _as_float(logits)
    probs = np.exp(logits - np.max(logits, axis=axis, keepdims=True))
    probs /= np.sum(probs, axis=axis, keepdims=True)
    return probs
