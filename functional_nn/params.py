"""Parameter records (frozen, registered pytrees with read-only arrays) and their initialisers."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import attrs
import numpy as np

from functional_nn.ops import ACTIVATIONS
from functional_nn.tree import register_pytree

__all__ = ["INITS", "Dense", "init_dense", "init_mlp", "readonly"]

INITS = ("he", "glorot", "normal")


def readonly(a) -> np.ndarray:
    """A read-only view of ``a`` (as an array): in-place writes through it raise ``ValueError``.

    ``attrs.frozen`` only blocks rebinding a field; this blocks ``layer.w[0, 0] = 1`` and ``layer.w += 1``.

    >>> v = readonly(np.zeros(2))
    >>> v.flags.writeable
    False
    """
    if type(a) is np.ndarray and not a.flags.writeable:
        return a  # already read-only (e.g. rebuilt by tree_map from another record's leaf)
    view = np.asarray(a).view()
    view.flags.writeable = False
    return view


@register_pytree
@attrs.frozen(eq=False)  # `==` on arrays is elementwise: compare params with tree_allclose
class Dense:
    """Affine layer then activation: ``activation(x @ w + b)``.

    Attributes:
        w: weights (n_in, n_out), read-only.
        b: biases (n_out,), read-only.
        activation: a key of ``ACTIVATIONS``; static (structure, not a leaf).

    >>> layer = Dense(np.ones((2, 3), np.float32), np.zeros(3, np.float32), "relu")
    >>> layer.w.shape, layer.activation, layer.w.flags.writeable
    ((2, 3), 'relu', False)
    """

    w: np.ndarray = attrs.field(converter=readonly)
    b: np.ndarray = attrs.field(converter=readonly)
    activation: str = attrs.field(
        default="identity", validator=attrs.validators.in_(ACTIVATIONS), metadata={"static": True}
    )


def init_dense(
    rng: np.random.Generator,
    n_in: int,
    n_out: int,
    *,
    activation: str = "identity",
    init: str = "he",
    dtype=np.float32,
) -> Dense:
    """One ``Dense`` layer with random weights and zero biases. Consumes ``rng``.

    Args:
        rng: random generator.
        n_in: input width.
        n_out: output width.
        activation: the layer's activation name.
        init: "he" (normal, std ``sqrt(2 / n_in)``), "glorot" (uniform in ``+-sqrt(6 / (n_in + n_out))``) or
            "normal" (normal, std 0.01, as stax's default).
        dtype: a float dtype for ``w`` and ``b``.

    Returns:
        ``Dense`` with ``w`` (n_in, n_out) and ``b`` (n_out,) of ``dtype``.

    >>> layer = init_dense(np.random.default_rng(0), 4, 3, init="glorot")
    >>> layer.w.shape, layer.w.dtype.name, layer.b.tolist()
    ((4, 3), 'float32', [0.0, 0.0, 0.0])
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a float dtype, got {dtype}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"layer sizes must be positive, got {n_in} -> {n_out}")
    if init == "he":
        w = rng.standard_normal((n_in, n_out), dtype=dtype) * np.sqrt(2.0 / n_in).item()
    elif init == "glorot":
        limit = np.sqrt(6.0 / (n_in + n_out)).item()
        w = rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)
    elif init == "normal":
        w = rng.standard_normal((n_in, n_out), dtype=dtype) * 0.01
    else:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return Dense(w, np.zeros(n_out, dtype), activation)


def init_mlp(
    rng: np.random.Generator,
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    init: str = "he",
    dtype=np.float32,
) -> tuple[Dense, ...]:
    """A multilayer perceptron: one ``Dense`` per consecutive pair in ``sizes``. Consumes ``rng``.

    Hidden layers use ``activation``; the last layer is "identity" (it returns logits). ``sizes=[n_in, k]`` is
    softmax regression (no hidden layer). Each layer draws from its own ``rng.spawn`` sub-stream.

    Args:
        rng: random generator.
        sizes: widths ``[n_in, hidden..., n_classes]``, at least two, all positive.
        activation: hidden-layer activation, a key of ``ACTIVATIONS``.
        init: "he", "glorot" or "normal" (see :func:`init_dense`).
        dtype: float dtype of every array.

    Returns:
        Tuple of ``len(sizes) - 1`` ``Dense`` layers.

    >>> params = init_mlp(np.random.default_rng(0), [4, 8, 3])
    >>> [(p.w.shape, p.activation) for p in params]
    [((4, 8), 'relu'), ((8, 3), 'identity')]
    """
    sizes = [operator.index(s) for s in sizes]  # ints (NumPy ints too), never silently truncated floats
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    n_layers = len(sizes) - 1
    activations = [activation] * (n_layers - 1) + ["identity"]
    return tuple(
        init_dense(r, n_in, n_out, activation=act, init=init, dtype=dtype)
        for r, n_in, n_out, act in zip(rng.spawn(n_layers), sizes[:-1], sizes[1:], activations)
    )
