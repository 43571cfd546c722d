"""The fast training step (a FusedOptimizer's fused_step) against two references kept here.

- ``composed_step``: the step as plain composition of public functions, ``value_and_grad`` -> ``optimizer.update``
  -> ``apply_updates`` (what ``train_step`` did before the fused path). Same arithmetic in the same order, so the
  fast step must be **bitwise** equal to it, except where the fast step folds a factor into backprop's output
  delta (before the matrix products, not after): ``-lr`` for SGD, ``1 - b1`` for Adam / AdamW. That changes
  rounding only, so those are held to 1e-6 relative to each leaf's largest magnitude, one step at a time.
- ``plain_step``: a from-scratch NumPy implementation (textbook formulas, one-hot targets, float32). Its operation
  order differs (e.g. ``(p - onehot) / n`` against ``p * (1 / n)``, ``b1 m + (1 - b1) g`` against
  ``m + (1 - b1)(g - m)``), so it agrees to rounding only: within 1e-6 relative to each leaf's largest magnitude.

Both also check purity: the arguments are unchanged after the call.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from functional_nn import (
    FusedOptimizer,
    adam,
    adamw,
    apply_updates,
    chain,
    clip_by_global_norm,
    dropout_masks,
    init_mlp,
    make_train_step,
    momentum,
    rmsprop,
    sgd,
    tree_leaves,
    tree_map,
    value_and_grad,
    warmup_cosine,
)
from functional_nn.ops import ACTIVATIONS
from functional_nn.train import StepMetrics

FUSED = {
    "sgd": lambda: sgd(0.1),
    "sgd_schedule": lambda: sgd(warmup_cosine(0.2, warmup_steps=2, decay_steps=10)),
    "momentum": lambda: momentum(0.05),
    "nesterov": lambda: momentum(0.05, nesterov=True),
    "adam": lambda: adam(1e-2),
    "adam_schedule": lambda: adam(warmup_cosine(3e-3, warmup_steps=2, decay_steps=10)),
    "adamw": lambda: adamw(1e-2, weight_decay=0.1),
    "adam_b2_zero": lambda: adam(1e-2, b2=0.0),  # nothing to fold (c would divide by b2): bitwise path
    "rmsprop": lambda: rmsprop(1e-2),
}
UNFUSED = {
    "chain": lambda: chain(clip_by_global_norm(1.0), adam(1e-2)),
}


def composed_step(params, opt_state, x, y, rng, *, optimizer, l2=0.0, dropout=0.0):
    """The reference: gradient, update, apply by composition of the public functions."""
    masks = dropout_masks(rng, params, len(x), rate=dropout, dtype=params[0].w.dtype) if dropout > 0 else None
    value, grads = value_and_grad(params, x, y, l2=l2, masks=masks)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    h = x  # the (dropped-out) forward pass again, for the accuracy of the batch
    for i, layer in enumerate(params):
        h = ACTIVATIONS[layer.activation](h @ layer.w + layer.b)
        if masks is not None and i < len(params) - 1:
            h = h * masks[i]
    accuracy = float(np.mean(np.argmax(h, axis=1) == y))
    return apply_updates(params, updates), opt_state, StepMetrics(float(value), accuracy)


def plain_step(layers, state, x, y, *, kind, lr, t):
    """Textbook float32 SGD / Adam step on a list of (w, b) pairs (ReLU hidden layers, softmax cross-entropy)."""
    hs = [x]
    for i, (w, b) in enumerate(layers):
        z = hs[-1] @ w + b
        hs.append(np.maximum(z, 0) if i < len(layers) - 1 else z)
    logits = hs[-1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    delta = (probs - np.eye(logits.shape[1], dtype=np.float32)[y]) / len(y)
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        grads[i] = [hs[i].T @ delta, delta.sum(axis=0)]
        if i:
            delta = (delta @ layers[i][0].T) * (hs[i] > 0)
    flat_p = [a for pair in layers for a in pair]
    flat_g = [a for pair in grads for a in pair]
    if kind == "sgd":
        new = [p - np.float32(lr) * g for p, g in zip(flat_p, flat_g)]
    else:
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = [b1 * m + (1 - b1) * g for m, g in zip(state[0], flat_g)]
        v = [b2 * v + (1 - b2) * g * g for v, g in zip(state[1], flat_g)]
        new = [p - lr * (mi / (1 - b1**t)) / (np.sqrt(vi / (1 - b2**t)) + eps) for p, mi, vi in zip(flat_p, m, v)]
        state = (m, v)
    return [tuple(new[i : i + 2]) for i in range(0, len(new), 2)], state


def batches(seed, n_steps, n=32, n_in=12, k=5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, n_in)).astype(dtype), rng.integers(0, k, size=n)) for _ in range(n_steps)]


# Folded into backprop's output delta: -lr (SGD), 1 - b1 (Adam, AdamW). Same maths, other rounding.
ROUNDING_ONLY = {"sgd", "sgd_schedule", "adam", "adam_schedule", "adamw"}


def assert_bitwise(a, b):
    for u, v in zip(tree_leaves(a), tree_leaves(b), strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


def assert_close(a, b, rel=1e-6):
    """Leaf by leaf within ``rel`` times the leaf's largest magnitude (rounding differences only)."""
    for u, v in zip(tree_leaves(a), tree_leaves(b), strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_allclose(u, v, rtol=0, atol=rel * (float(np.max(np.abs(v))) or 1.0))


@pytest.mark.parametrize("name", sorted(FUSED) + sorted(UNFUSED))
@pytest.mark.parametrize("l2, dropout", [(0.0, 0.0), (1e-3, 0.25)])
def test_fast_step_is_bitwise_the_composed_reference_and_pure(name, l2, dropout):
    optimizer = {**FUSED, **UNFUSED}[name]()
    assert isinstance(optimizer, FusedOptimizer) == (name in FUSED)  # the fast path is really taken (or not)
    params = init_mlp(np.random.default_rng(0), [12, 16, 8, 5])
    fast, ref = (params, optimizer.init(params)), (params, optimizer.init(params))
    step = make_train_step(optimizer, l2=l2, dropout=dropout)
    rng_fast, rng_ref = np.random.default_rng(3), np.random.default_rng(3)
    for x, y in batches(1, 4):
        args = (fast[0], fast[1], x, y)
        snapshot = tree_map(np.copy, args)
        *fast, m_fast = step(*args, rng_fast)
        for before, after in zip(tree_leaves(snapshot), tree_leaves(args), strict=True):
            np.testing.assert_array_equal(after, before)  # pure: arguments unchanged
        *ref, m_ref = composed_step(*ref, x, y, rng_ref, optimizer=optimizer, l2=l2, dropout=dropout)
        if name in ROUNDING_ONLY:
            np.testing.assert_allclose(m_fast.loss, m_ref.loss, rtol=1e-6)
            assert_close(fast, ref)
            fast = ref  # compare one step at a time: start the next from the same point
        else:
            assert m_fast == m_ref
            assert_bitwise(fast, ref)  # params and optimizer state, every step
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(fast[0]))


@pytest.mark.parametrize("name", ["sgd", "adam", "momentum"])
def test_fast_step_keeps_float64(name):
    optimizer = FUSED[name]()
    params = init_mlp(np.random.default_rng(0), [12, 7, 5], dtype=np.float64)
    x, y = batches(2, 1, dtype=np.float64)[0]
    fast = make_train_step(optimizer)(params, optimizer.init(params), x, y, None)
    ref = composed_step(params, optimizer.init(params), x, y, None, optimizer=optimizer)
    (assert_close if name in ROUNDING_ONLY else assert_bitwise)(fast[:2], ref[:2])
    assert {leaf.dtype for leaf in tree_leaves(fast[0])} == {np.dtype(np.float64)}


@pytest.mark.parametrize("kind, lr", [("sgd", 0.1), ("adam", 1e-2)])
def test_fast_step_matches_a_from_scratch_numpy_step(kind, lr):
    """Different operation order, so equal to rounding: 1e-6 relative to each leaf's largest magnitude."""
    params = init_mlp(np.random.default_rng(4), [12, 16, 8, 5])
    optimizer = sgd(lr) if kind == "sgd" else adam(lr)
    step, state = make_train_step(optimizer), optimizer.init(params)
    layers = [(np.array(layer.w), np.array(layer.b)) for layer in params]
    zeros = [np.zeros_like(a) for pair in layers for a in pair]
    plain_state = (zeros, [z.copy() for z in zeros])
    for t, (x, y) in enumerate(batches(5, 3), start=1):
        params, state, _ = step(params, state, x, y, None)
        layers, plain_state = plain_step(layers, plain_state, x, y, kind=kind, lr=lr, t=t)
        for fast_leaf, plain_leaf in zip(tree_leaves(params), [a for pair in layers for a in pair], strict=True):
            assert fast_leaf.dtype == plain_leaf.dtype == np.float32
            scale = float(np.max(np.abs(plain_leaf))) or 1.0
            np.testing.assert_allclose(fast_leaf, plain_leaf, rtol=0, atol=1e-6 * scale)


def test_fast_step_rejects_a_state_of_another_structure():
    params = init_mlp(np.random.default_rng(0), [12, 8, 5])
    other = init_mlp(np.random.default_rng(0), [12, 8, 8, 5])
    optimizer = adam(1e-2)
    x, y = batches(0, 1)[0]
    with pytest.raises(ValueError):
        make_train_step(optimizer)(params, optimizer.init(other), x, y, None)


def test_fused_first_adam_step_moves_every_weight_by_lr():
    """Adam's first step is ``-lr * sign(g)`` (up to eps): a hand-checkable value for the fast path."""
    params = init_mlp(np.random.default_rng(0), [12, 6, 5])
    x, y = batches(0, 1)[0]
    new, _, _ = make_train_step(adam(1e-3))(params, adam(1e-3).init(params), x, y, None)
    moved = np.abs(new[0].w - params[0].w)
    assert math.isclose(float(np.median(moved[moved > 0])), 1e-3, rel_tol=1e-3)
