import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from functional_nn.ops import ACTIVATIONS, DERIVATIVES, log_softmax, sigmoid, softmax
from tests.strategies import finite32, logits_2d


@settings(max_examples=40, deadline=None)
@given(logits=logits_2d, shift=st.floats(-100, 100, width=32))
def test_softmax_properties(logits, shift):
    probs = softmax(logits)
    assert probs.dtype == np.float32 and probs.shape == logits.shape
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(softmax(logits + np.float32(shift)), probs, rtol=1e-4, atol=1e-6)
    log_probs = log_softmax(logits)
    assert log_probs.dtype == np.float32 and (log_probs <= 0).all()
    np.testing.assert_allclose(np.exp(log_probs), probs, rtol=1e-4, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(logits=logits_2d)
def test_softmax_row_shift_is_per_row(logits):
    row_shift = np.arange(len(logits), dtype=np.float32)[:, None] * 7
    np.testing.assert_allclose(softmax(logits + row_shift), softmax(logits), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_at_large_logits(dtype):  # RuntimeWarnings are errors in this test suite
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    np.testing.assert_allclose(softmax(logits), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-6)
    assert np.isfinite(log_softmax(logits)).all()
    np.testing.assert_allclose(log_softmax(logits)[0], [0.0, -2e4, -1e4])
    for name, f in ACTIVATIONS.items():
        out = f(logits)
        assert out.dtype == dtype and np.isfinite(out).all(), name
        assert np.isfinite(DERIVATIVES[name](out)).all(), name
    np.testing.assert_array_equal(sigmoid(np.array([1e4, -1e4], dtype)), [1.0, 0.0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(max_examples=20, deadline=None)
@given(z=arrays(np.float64, st.integers(1, 20), elements=st.floats(-6, 6)))
def test_derivative_matches_central_difference(name, z):
    z = z[np.abs(z) > 1e-3]  # stay off the kink of relu / leaky_relu
    f, h = ACTIVATIONS[name], 1e-6
    numeric = (f(z + h) - f(z - h)) / (2 * h)
    np.testing.assert_allclose(DERIVATIVES[name](f(z)), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(z=arrays(np.float32, (3, 4), elements=finite32))
@settings(max_examples=10, deadline=None)
def test_activations_keep_dtype_and_do_not_write(name, z):
    before = z.copy()
    a = ACTIVATIONS[name](z)
    d = DERIVATIVES[name](a)
    assert a.dtype == np.float32 and d.dtype == np.float32 and a.shape == d.shape == z.shape
    np.testing.assert_array_equal(z, before)
    softmax(z), log_softmax(z)
    np.testing.assert_array_equal(z, before)


def test_known_values():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"](z), [-0.02, 0.0, 3.0])
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"](z), 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(ACTIVATIONS["tanh"](z), np.tanh(z))
    np.testing.assert_allclose(DERIVATIVES["relu"](ACTIVATIONS["relu"](z)), [0, 0, 1])
