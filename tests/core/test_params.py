import attrs
import numpy as np
import pytest
from hypothesis import given, settings

from functional_nn import Dense, init_dense, init_mlp, tree_leaves
from functional_nn.ops import ACTIVATIONS
from tests.strategies import architectures, seeds


@settings(max_examples=20, deadline=None)
@given(seed=seeds, sizes=architectures)
def test_init_mlp_shapes_activations_dtype(seed, sizes):
    params = init_mlp(np.random.default_rng(seed), sizes, activation="tanh")
    assert isinstance(params, tuple) and len(params) == len(sizes) - 1
    for layer, n_in, n_out in zip(params, sizes[:-1], sizes[1:]):
        assert layer.w.shape == (n_in, n_out) and layer.b.shape == (n_out,)
        assert layer.w.dtype == layer.b.dtype == np.float32
        np.testing.assert_array_equal(layer.b, 0)
    assert [p.activation for p in params] == ["tanh"] * (len(params) - 1) + ["identity"]


def test_no_hidden_layer_is_softmax_regression():
    (layer,) = init_mlp(np.random.default_rng(0), [5, 3])
    assert layer.w.shape == (5, 3) and layer.activation == "identity"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_schemes_have_the_documented_scale(dtype):
    rng = np.random.default_rng(0)
    he = init_dense(rng, 400, 300, init="he", dtype=dtype).w
    glorot = init_dense(rng, 400, 300, init="glorot", dtype=dtype).w
    normal = init_dense(rng, 400, 300, init="normal", dtype=dtype).w
    assert he.dtype == glorot.dtype == normal.dtype == dtype
    np.testing.assert_allclose(he.std(), np.sqrt(2 / 400), rtol=0.02)
    limit = np.sqrt(6 / 700)
    assert np.abs(glorot).max() <= limit and np.abs(glorot).max() > 0.99 * limit
    np.testing.assert_allclose(normal.std(), 0.01, rtol=0.02)


def test_params_are_read_only_and_frozen():
    params = init_mlp(np.random.default_rng(0), [3, 4, 2])
    for leaf in tree_leaves(params):
        assert not leaf.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            leaf[...] = 0
        with pytest.raises(ValueError, match="read-only"):
            leaf += 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        params[0].w = np.zeros((3, 4))


def test_dense_does_not_freeze_the_callers_array():
    w = np.ones((2, 2))
    Dense(w, np.zeros(2))
    w[0, 0] = 5.0  # the caller's own array stays writable
    assert w.flags.writeable


def test_init_mlp_determinism():
    a = init_mlp(np.random.default_rng(42), [10, 8, 4], init="glorot")
    b = init_mlp(np.random.default_rng(42), [10, 8, 4], init="glorot")
    c = init_mlp(np.random.default_rng(43), [10, 8, 4], init="glorot")
    for x, y in zip(tree_leaves(a), tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0].w, c[0].w)
    first_weights = {init_mlp(np.random.default_rng(seed), [10, 8, 4])[0].w.tobytes() for seed in range(10)}
    assert len(first_weights) == 10  # ten seeds, ten different networks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sizes": [3]}, "at least an input and an output"),
        ({"sizes": [3, 0, 2]}, "positive"),
        ({"sizes": [3, 2], "activation": "swish"}, "activation must be one of"),
        ({"sizes": [3, 2], "init": "xavier"}, "init must be one of"),
        ({"sizes": [3, 2], "dtype": np.int32}, "float dtype"),
        ({"sizes": [3.5, 2]}, None),
    ],
)
def test_init_mlp_rejects_bad_arguments(kwargs, message):
    with pytest.raises(TypeError if message is None else ValueError, match=message):
        init_mlp(np.random.default_rng(0), **kwargs)


def test_dense_validates_activation():
    with pytest.raises(ValueError):
        Dense(np.ones((1, 1)), np.ones(1), "swish")
    assert set(ACTIVATIONS) == {"relu", "leaky_relu", "sigmoid", "tanh", "identity"}
