import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from functional_nn import (
    ACTIVATIONS,
    Dense,
    dropout_masks,
    forward,
    grad,
    init_mlp,
    log_softmax,
    loss,
    predict,
    predict_proba,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_unflatten,
    value_and_grad,
)
from tests.strategies import activations, architectures, seeds


def labels_of_kind(rng, kind, n, k):
    y = rng.integers(0, k, size=n)
    if kind == "int":
        return y
    if kind == "onehot":
        return np.eye(k)[y]
    return rng.dirichlet(np.ones(k), size=n)


def min_distance_to_kink(params, x, masks):
    """Smallest |z| over the pre-activations of relu / leaky_relu layers (where finite differences break)."""
    smallest, h = np.inf, x
    for i, layer in enumerate(params):
        z = h @ layer.w + layer.b
        if layer.activation in ("relu", "leaky_relu"):
            smallest = min(smallest, np.abs(z).min())
        h = ACTIVATIONS[layer.activation](z)
        if masks is not None and i < len(params) - 1:
            h = h * masks[i]
    return smallest


@settings(max_examples=40, deadline=None)
@given(
    seed=seeds,
    sizes=architectures,
    activation=activations,
    n=st.integers(1, 8),
    l2=st.sampled_from([0.0, 0.3]),
    use_dropout=st.booleans(),
    kind=st.sampled_from(["int", "onehot", "soft"]),
)
def test_grad_matches_central_difference(seed, sizes, activation, n, l2, use_dropout, kind):
    """Directional check (autograd's check_vjp): <grad, d> equals the central difference of loss along d."""
    rng = np.random.default_rng(seed)
    params = init_mlp(rng, sizes, activation=activation, init="glorot", dtype=np.float64)
    params = tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), params)  # non-zero biases too
    x = rng.standard_normal((n, sizes[0]))
    y = labels_of_kind(rng, kind, n, sizes[-1])
    masks = dropout_masks(rng, params, n, rate=0.5, dtype=np.float64) if use_dropout else None
    assume(min_distance_to_kink(params, x, masks) > 1e-4)

    direction = tree_map(lambda a: rng.standard_normal(a.shape), params)
    at = lambda s: tree_map(lambda p, v: p + s * v, params, direction)  # noqa: E731
    h = 1e-6
    numeric = (loss(at(h), x, y, l2=l2, masks=masks) - loss(at(-h), x, y, l2=l2, masks=masks)) / (2 * h)
    value, grads = value_and_grad(params, x, y, l2=l2, masks=masks)
    analytic = sum(np.vdot(g, v) for g, v in zip(tree_leaves(grads), tree_leaves(direction)))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(value, loss(params, x, y, l2=l2, masks=masks), rtol=1e-12)
    for g, p in zip(grads, params):
        assert isinstance(g, Dense) and g.activation == p.activation
        assert g.w.shape == p.w.shape and g.b.shape == p.b.shape and g.w.dtype == np.float64


def test_grad_every_entry_matches_finite_difference():
    rng = np.random.default_rng(3)
    params = init_mlp(rng, [3, 4, 3], activation="tanh", dtype=np.float64)
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 3, size=5)
    leaves, treedef = tree_flatten(params)
    grad_leaves = tree_leaves(grad(params, x, y, l2=0.1))

    def loss_with(index, pos, step):
        bumped = [leaf.copy() for leaf in leaves]
        bumped[index][pos] += step
        return loss(tree_unflatten(treedef, bumped), x, y, l2=0.1)

    for index, (leaf, g) in enumerate(zip(leaves, grad_leaves)):
        for pos in np.ndindex(leaf.shape):
            numeric = (loss_with(index, pos, 1e-6) - loss_with(index, pos, -1e-6)) / 2e-6
            np.testing.assert_allclose(g[pos], numeric, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_of_zero_logits_is_log_n_classes(n_classes, dtype):
    params = (Dense(np.zeros((4, n_classes), dtype), np.zeros(n_classes, dtype)),)
    x = np.ones((6, 4), dtype)
    value = loss(params, x, np.arange(6) % n_classes)
    assert value.dtype == dtype
    np.testing.assert_allclose(value, np.log(n_classes), rtol=1e-6)


def test_loss_is_stable_for_huge_logits():
    params = (Dense(np.array([[1e4, -1e4]], np.float32), np.zeros(2, np.float32)),)
    x = np.ones((2, 1), np.float32)
    np.testing.assert_allclose(loss(params, x, np.array([0, 0])), 0.0)
    np.testing.assert_allclose(loss(params, x, np.array([1, 1])), 2e4)
    assert all(np.isfinite(g).all() for g in tree_leaves(grad(params, x, np.array([1, 0]))))


def test_soft_labels_generalise_int_labels():
    rng = np.random.default_rng(0)
    params = init_mlp(rng, [4, 6, 3], dtype=np.float64)
    x, y = rng.standard_normal((5, 4)), np.array([0, 2, 1, 1, 0])
    v_int, g_int = value_and_grad(params, x, y, l2=0.01)
    v_hot, g_hot = value_and_grad(params, x, np.eye(3)[y], l2=0.01)
    np.testing.assert_allclose(v_hot, v_int, rtol=1e-12)
    for a, b in zip(tree_leaves(g_int), tree_leaves(g_hot)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    soft = rng.dirichlet(np.ones(3), size=5)
    expected = -(soft * log_softmax(forward(params, x))).sum(axis=1).mean()
    np.testing.assert_allclose(loss(params, x, soft), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0, 3]), r"labels must be in \[0, 3\)"),
        (np.array([0, -1]), "labels must be in"),
        (np.array([0, 1, 2]), "3 labels for 2 rows"),
        (np.zeros((2, 4)), "one-hot/soft labels"),
        (np.array([0.0, 1.0]), "int labels"),
    ],
)
def test_bad_labels_raise(y, message):
    params = init_mlp(np.random.default_rng(0), [2, 3])
    with pytest.raises(ValueError, match=message):
        loss(params, np.ones((2, 2), np.float32), y)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_float32_in_float32_out(activation):
    rng = np.random.default_rng(0)
    params = init_mlp(rng, [5, 7, 6, 3], activation=activation)
    x, y = rng.standard_normal((4, 5), dtype=np.float32), rng.integers(0, 3, size=4)
    masks = dropout_masks(rng, params, 4, rate=0.3)
    assert forward(params, x).dtype == np.float32
    assert predict_proba(params, x).dtype == np.float32
    assert predict(params, x).dtype == np.int64 and predict(params, x).shape == (4,)
    value, grads = value_and_grad(params, x, y, l2=np.float64(0.1), masks=masks)
    assert value.dtype == np.float32 and loss(params, x, y, l2=0.1).dtype == np.float32
    assert {g.dtype for g in tree_leaves(grads)} == {np.dtype(np.float32)}
    assert {m.dtype for m in masks} == {np.dtype(np.float32)}


def test_predict_and_predict_proba_agree():
    rng = np.random.default_rng(1)
    params = init_mlp(rng, [3, 8, 4])
    x = rng.standard_normal((10, 3), dtype=np.float32)
    probs = predict_proba(params, x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(predict(params, x), probs.argmax(axis=1))


def test_dropout_masks_values_and_inference_unaffected():
    rng = np.random.default_rng(0)
    params = init_mlp(rng, [3, 50, 40, 2])
    masks = dropout_masks(np.random.default_rng(1), params, 200, rate=0.25)
    assert [m.shape for m in masks] == [(200, 50), (200, 40)]
    for m in masks:
        assert set(np.unique(m).tolist()) <= {0.0, np.float32(1 / 0.75).item()}
        assert abs(m.mean() - 1.0) < 0.05
    ones = tuple(np.ones_like(m) for m in masks)
    x, y = rng.standard_normal((200, 3), dtype=np.float32), rng.integers(0, 2, size=200)
    np.testing.assert_array_equal(loss(params, x, y, masks=ones), loss(params, x, y))
    assert loss(params, x, y, masks=masks) != loss(params, x, y)
    zero_rate = dropout_masks(rng, params, 5, rate=0.0)
    assert all((m == 1).all() for m in zero_rate)
    assert dropout_masks(rng, params[-1:], 5, rate=0.5) == ()  # no hidden layer, no mask


def test_dropout_arguments_are_checked():
    params = init_mlp(np.random.default_rng(0), [3, 4, 2])
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        dropout_masks(np.random.default_rng(0), params, 2, rate=1.0)
    with pytest.raises(ValueError, match="one per hidden layer"):
        loss(params, np.ones((2, 3), np.float32), np.array([0, 1]), masks=())


def test_model_functions_do_not_modify_arguments():
    rng = np.random.default_rng(0)
    params = tree_map(np.copy, init_mlp(rng, [4, 6, 5, 3], activation="relu"))
    x, y = rng.standard_normal((7, 4), dtype=np.float32), rng.integers(0, 3, size=7)
    soft = rng.dirichlet(np.ones(3), size=7).astype(np.float32)
    masks = dropout_masks(rng, params, 7, rate=0.5)
    args = (params, x, y, soft, masks)
    writable = tree_map(lambda a: np.array(a), args)  # writable copies of x, y, masks (Dense stays read-only)
    snapshot = tree_map(np.copy, writable)
    p, x_, y_, soft_, masks_ = writable
    forward(p, x_), predict(p, x_), predict_proba(p, x_)
    for labels in (y_, soft_):
        loss(p, x_, labels, l2=0.1, masks=masks_), grad(p, x_, labels, l2=0.1, masks=masks_)
        value_and_grad(p, x_, labels, masks=masks_)
    dropout_masks(rng, p, 7, rate=0.5)
    for before, after in zip(tree_leaves(snapshot), tree_leaves(writable), strict=True):
        np.testing.assert_array_equal(after, before)


def test_no_hidden_layer_gradient_is_the_logistic_regression_formula():
    rng = np.random.default_rng(0)
    params = init_mlp(rng, [3, 4], dtype=np.float64)
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 4, size=6)
    (g,) = grad(params, x, y)
    delta = (predict_proba(params, x) - np.eye(4)[y]) / 6
    np.testing.assert_allclose(g.w, x.T @ delta, rtol=1e-12)
    np.testing.assert_allclose(g.b, delta.sum(axis=0), rtol=1e-12, atol=1e-15)
