"""The MLP as pure functions: forward pass, softmax cross-entropy loss and hand-written backpropagation.

``params`` is a tuple of :class:`~functional_nn.params.Dense`; ``x`` is (batch, n_in); ``y`` is either integer
labels (batch,) or one-hot / soft labels (batch, n_classes). Every function returns arrays of the parameters'
dtype when ``x`` has that dtype too (float32 in, float32 out).

Loss: ``mean_i(-sum_k y_ik log softmax(logits_i)_k) + l2 / 2 * sum_layers ||w||**2`` (weights only, not biases).
Dropout is *inverted* dropout with explicit masks from :func:`dropout_masks`: hidden layer ``i`` outputs
``activation(z) * masks[i]``; ``masks=None`` (the default, and what inference uses) means no dropout.

Speed notes: the forward pass saves each layer's input and activation, and backprop reuses them; the only in-place
operations are on arrays the function has just allocated (``z`` after ``x @ w``, the running ``delta``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from functional_nn.ops import ACTIVATIONS, DERIVATIVES, softmax
from functional_nn.params import Dense

__all__ = ["backprop", "cross_entropy", "dropout_masks", "forward", "grad", "loss", "predict", "predict_proba",
           "value_and_grad", "with_leaves"]

Params = tuple[Dense, ...]


# ------------------------------------------------------------------------------------------------ forward pass


def _activate_(name: str, z: np.ndarray) -> np.ndarray:
    """``ACTIVATIONS[name](z)``, in place on ``z`` where cheap (the caller has just allocated ``z``)."""
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0, out=z)
    if name == "tanh":
        return np.tanh(z, out=z)
    return ACTIVATIONS[name](z)


def _check_masks(params: Params, masks: Sequence[np.ndarray] | None) -> None:
    if masks is not None and len(masks) != len(params) - 1:
        raise ValueError(f"masks: expected {len(params) - 1} (one per hidden layer), got {len(masks)}")


def _forward_saved(params: Params, x: np.ndarray, masks) -> tuple[list, list]:
    """Forward pass that keeps what backprop needs.

    Returns:
        ``(inputs, outputs)``: ``inputs[i]`` is what layer ``i`` received (after the previous layer's dropout),
        ``outputs[i]`` its activation before dropout; ``outputs[-1]`` are the logits.
    """
    inputs, outputs = [], []
    h = x
    last = len(params) - 1
    for i, layer in enumerate(params):
        inputs.append(h)
        z = h @ layer.w  # a new array: safe to finish in place
        z += layer.b
        a = _activate_(layer.activation, z)
        outputs.append(a)
        h = a if masks is None or i == last else a * masks[i]
    return inputs, outputs


def forward(params: Params, x: np.ndarray) -> np.ndarray:
    """Logits (batch, n_classes) for ``x`` (batch, n_in); each layer applies its own activation.

    >>> from functional_nn.params import init_mlp
    >>> params = init_mlp(np.random.default_rng(0), [3, 4, 2])
    >>> forward(params, np.zeros((5, 3), np.float32)).shape
    (5, 2)
    """
    for layer in params:  # loop over layers, never over samples
        z = x @ layer.w
        z += layer.b
        x = _activate_(layer.activation, z)
    return x


def predict_proba(params: Params, x: np.ndarray) -> np.ndarray:
    """Class probabilities (batch, n_classes), rows summing to 1: ``softmax(forward(params, x))``.

    >>> from functional_nn.params import init_mlp
    >>> params = init_mlp(np.random.default_rng(0), [3, 2])
    >>> predict_proba(params, np.zeros((1, 3), np.float32)).tolist()
    [[0.5, 0.5]]
    """
    return softmax(forward(params, x))


def predict(params: Params, x: np.ndarray) -> np.ndarray:
    """Most likely class per row: int64 (batch,).

    >>> w = np.array([[1.0, -1.0]], np.float32)
    >>> predict((Dense(w, np.zeros(2, np.float32)),), np.array([[2.0], [-3.0]], np.float32)).tolist()
    [0, 1]
    """
    return np.argmax(forward(params, x), axis=1).astype(np.int64, copy=False)


# ------------------------------------------------------------------------------------------------ loss head


def _targets(y, logits: np.ndarray) -> np.ndarray:
    """Validate labels against logits (n, k): int (n,) in [0, k), or float (n, k) cast to the logits' dtype."""
    y = np.asarray(y)
    n, k = logits.shape
    if n == 0:
        raise ValueError("x has no rows")
    if y.ndim == 1 and y.dtype.kind in "iu":
        if len(y) != n:
            raise ValueError(f"y has {len(y)} labels for {n} rows")
        # one pass: viewed as unsigned, a negative label is huge, so `>= k` catches both ends
        unsigned = y.view(f"u{y.dtype.itemsize}") if y.dtype.kind == "i" else y
        if np.any(unsigned >= k):
            raise ValueError(f"labels must be in [0, {k}), got range [{y.min()}, {y.max()}]")
        return y
    if y.ndim == 2 and y.shape == (n, k):
        return y.astype(logits.dtype, copy=False)
    raise ValueError(f"y must be int labels ({n},) or one-hot/soft labels ({n}, {k}), got {y.dtype} {y.shape}")


def _cross_entropy(logits: np.ndarray, y: np.ndarray, *, with_delta: bool, scale: float = 1.0):
    """Mean softmax cross-entropy in log space, and optionally its gradient wrt the logits.

    Returns:
        ``(value, delta)``: value a scalar of the logits' dtype, delta (n, k) = ``scale * (softmax - y) / n``
        (for soft labels ``softmax * sum(y) - y``), or None when ``with_delta`` is false.
    """
    n = len(logits)
    rows = np.arange(n)
    # The row maxima, read at each row's argmax: the same values as logits.max(axis=1), in a third of the time
    # for a few columns (NumPy reduces a short last axis row by row; argmax has a dedicated loop).
    shifted = logits - logits[rows, logits.argmax(axis=1)][:, None]
    probs = np.exp(shifted)  # unnormalised until divided by `sums`
    sums = probs.sum(axis=1, keepdims=True)
    log_sums = np.log(sums)
    if y.ndim == 1:
        value = (log_sums[:, 0] - shifted[rows, y]).sum() / n  # -log p[y] = log sum exp - shifted[y]
    else:
        shifted -= log_sums  # now log-probabilities
        value = -np.vdot(y, shifted) / n
    if not with_delta:
        return value, None
    probs /= sums
    if y.ndim == 1:
        probs[rows, y] -= 1.0
    else:
        probs *= y.sum(axis=1, keepdims=True)
        probs -= y
    probs *= scale / n
    return value, probs


def cross_entropy(logits: np.ndarray, y) -> np.ndarray:
    """Mean softmax cross-entropy of ``logits`` (batch, n_classes) against ``y``, computed in log space.

    ``y``: int labels (batch,) in ``[0, n_classes)`` or one-hot / soft labels (batch, n_classes); anything else
    raises ``ValueError``. Returns a scalar of the logits' dtype.

    >>> round(float(cross_entropy(np.zeros((2, 4), np.float32), np.array([0, 3]))), 6)   # log(4)
    1.386294
    """
    return _cross_entropy(logits, _targets(y, logits), with_delta=False)[0]


def _l2_penalty(params: Params, l2: float):
    return 0.5 * l2 * sum(np.vdot(layer.w, layer.w) for layer in params)


# ------------------------------------------------------------------------------------------------ public loss / grad


def loss(params: Params, x: np.ndarray, y: np.ndarray, *, l2: float = 0.0, masks=None):
    """Mean softmax cross-entropy of ``forward(params, x)`` against ``y``, plus ``l2 / 2 * sum ||w||**2``.

    Args:
        params: tuple of Dense.
        x: inputs (batch, n_in).
        y: int labels (batch,) or one-hot / soft labels (batch, n_classes).
        l2: weight of the L2 penalty on weights (not biases).
        masks: dropout masks from :func:`dropout_masks`, or None for no dropout.

    Returns:
        A scalar of the parameters' dtype (``np.float32`` for float32 params and inputs).

    >>> from functional_nn.params import init_mlp
    >>> params = init_mlp(np.random.default_rng(0), [2, 4], init="normal")
    >>> zero = tuple(Dense(p.w * 0, p.b, p.activation) for p in params)   # all-zero logits: log(4)
    >>> round(float(loss(zero, np.ones((3, 2), np.float32), np.array([0, 1, 3]))), 6)
    1.386294
    """
    _check_masks(params, masks)
    l2 = float(l2)
    logits = forward(params, x) if masks is None else _forward_saved(params, x, masks)[1][-1]
    value = cross_entropy(logits, y)
    if l2:
        value = value + _l2_penalty(params, l2)
    return value


def backprop(params: Params, x: np.ndarray, y: np.ndarray, *, l2: float = 0.0, masks=None, scale: float = 1.0):
    """One forward and one backward pass: ``(loss, grad_leaves, logits)``; what :func:`value_and_grad` is built on.

    ``grad_leaves`` are the gradients as a flat list in ``tree_leaves(params)`` order (``[w0, b0, w1, b1, ...]``):
    plain writable arrays that this call has just allocated and nobody else has seen, so the caller owns them. The
    training step (:func:`functional_nn.train.train_step`) hands them to a fused optimizer, which turns them into
    the new parameters in place instead of allocating updates and sums; :func:`with_leaves` wraps them in ``Dense``
    records. With ``scale``, the gradients come out multiplied by it: folded into the (batch, n_classes) output
    delta before the matrix products, so it costs nothing (rounding may differ from scaling afterwards).
    ``logits`` are those of the (dropped-out, with ``masks``) forward pass.

    >>> from functional_nn.params import init_mlp
    >>> params = init_mlp(np.random.default_rng(0), [3, 4, 2])
    >>> value, leaves, logits = backprop(params, np.ones((5, 3), np.float32), np.array([0, 1, 1, 0, 1]))
    >>> [g.shape for g in leaves], logits.shape
    ([(3, 4), (4,), (4, 2), (2,)], (5, 2))
    """
    _check_masks(params, masks)
    l2 = float(l2)
    inputs, outputs = _forward_saved(params, x, masks)
    logits = outputs[-1]
    value, delta = _cross_entropy(logits, _targets(y, logits), with_delta=True, scale=scale)  # scale * dL/dlogits
    leaves = [None] * (2 * len(params))
    for i in reversed(range(len(params))):
        layer = params[i]
        if layer.activation == "relu":  # dL/dz = dL/da * f'(z); `delta` is ours, so multiply in place
            np.multiply(delta, outputs[i] > 0, out=delta)
        elif layer.activation != "identity":
            delta *= DERIVATIVES[layer.activation](outputs[i])
        grad_w = inputs[i].T @ delta
        if l2:
            grad_w += (scale * l2) * layer.w
        leaves[2 * i], leaves[2 * i + 1] = grad_w, delta.sum(axis=0)
        if i > 0:  # dL/d(input of layer i), then back through the previous layer's dropout mask
            delta = delta @ layer.w.T
            if masks is not None:
                delta *= masks[i - 1]
    if l2:
        value = value + _l2_penalty(params, l2)
    return value, leaves, logits


def with_leaves(like: Params, leaves: list) -> Params:
    """A tuple of Dense shaped like ``like`` from leaves ``[w0, b0, w1, b1, ...]`` (``tree_unflatten``, unrolled).

    >>> params = (Dense(np.zeros((2, 3), np.float32), np.zeros(3, np.float32), "relu"),)
    >>> new = with_leaves(params, [np.ones((2, 3), np.float32), np.ones(3, np.float32)])
    >>> new[0].activation, new[0].w.tolist()[0]
    ('relu', [1.0, 1.0, 1.0])
    """
    return tuple(Dense(leaves[2 * i], leaves[2 * i + 1], layer.activation) for i, layer in enumerate(like))


def value_and_grad(params: Params, x: np.ndarray, y: np.ndarray, *, l2: float = 0.0, masks=None):
    """:func:`loss` and its gradient wrt ``params`` from one forward and one backward pass.

    Args:
        params: tuple of Dense.
        x: inputs (batch, n_in).
        y: int labels (batch,) or one-hot / soft labels (batch, n_classes).
        l2: weight of the L2 penalty on weights.
        masks: dropout masks (one per hidden layer) or None.

    Returns:
        ``(loss, grads)``: a scalar of the params' dtype and a tuple of Dense shaped exactly like ``params``.

    >>> from functional_nn.params import init_mlp
    >>> params = init_mlp(np.random.default_rng(0), [3, 5, 2])
    >>> value, grads = value_and_grad(params, np.ones((4, 3), np.float32), np.array([0, 1, 1, 0]))
    >>> [g.w.shape for g in grads], grads[0].w.dtype.name
    ([(3, 5), (5, 2)], 'float32')
    """
    value, leaves, _ = backprop(params, x, y, l2=l2, masks=masks)
    return value, with_leaves(params, leaves)


def grad(params: Params, x: np.ndarray, y: np.ndarray, *, l2: float = 0.0, masks=None) -> Params:
    """Gradient of :func:`loss` wrt ``params``: a tuple of Dense shaped like ``params`` (same dtypes).

    >>> w = np.zeros((1, 2), np.float32)
    >>> g = grad((Dense(w, np.zeros(2, np.float32)),), np.ones((1, 1), np.float32), np.array([0]))
    >>> g[0].b.tolist()
    [-0.5, 0.5]
    """
    return value_and_grad(params, x, y, l2=l2, masks=masks)[1]


def dropout_masks(
    rng: np.random.Generator, params: Params, n_rows: int, *, rate: float, dtype=np.float32
) -> tuple[np.ndarray, ...]:
    """Inverted-dropout masks, one (n_rows, n_out) per hidden layer, entries 0 or ``1 / (1 - rate)``.

    Each unit is kept with probability ``1 - rate``; the scaling keeps the expected activation unchanged, so
    inference needs no correction. Consumes ``rng``.

    Args:
        rng: random generator.
        params: tuple of Dense (only the hidden layers' widths are used).
        n_rows: batch size.
        rate: drop probability in [0, 1).
        dtype: float dtype of the masks (use the params' dtype).

    Returns:
        Tuple of ``len(params) - 1`` arrays.

    >>> from functional_nn.params import init_mlp
    >>> params = init_mlp(np.random.default_rng(0), [3, 4, 2])
    >>> m = dropout_masks(np.random.default_rng(1), params, 2, rate=0.5)
    >>> len(m), m[0].shape, sorted(set(m[0].ravel().tolist()) | {0.0, 2.0})
    (1, (2, 4), [0.0, 2.0])
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    scale = 1.0 / (1.0 - rate)
    masks = []
    for layer in params[:-1]:
        keep = rng.random((n_rows, layer.w.shape[1]), dtype=np.float32) >= rate
        masks.append(np.multiply(keep, scale, dtype=dtype))
    return tuple(masks)
