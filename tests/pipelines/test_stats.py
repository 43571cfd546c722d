"""fit_standardizer: standardized training data has mean ~0 and std ~1; chunked fitting equals whole fitting."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipelines import Chunk, Standardizer, fit_standardizer, from_arrays, standardize
from pipelines import batch as batch_stage

matrices = st.tuples(st.integers(2, 40), st.integers(1, 6)).flatmap(
    lambda s: arrays(np.uint8, s, elements=st.integers(0, 255)))


@settings(max_examples=30, deadline=None)
@given(x=matrices, batch_size=st.integers(1, 15))
def test_standardized_training_data_has_mean_0_std_1(x, batch_size):
    stats = fit_standardizer(batch_stage(from_arrays(x), batch_size=batch_size))
    assert stats.mean.dtype == np.float32 and stats.std.dtype == np.float32
    whole = fit_standardizer(x)
    np.testing.assert_allclose(stats.mean, whole.mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(stats.std, whole.std, rtol=1e-4, atol=1e-4)
    (out,) = standardize(from_arrays(x), stats)
    assert out.x.dtype == np.float32
    varying = x.std(axis=0) > 1e-3
    np.testing.assert_allclose(out.x.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out.x.std(axis=0)[varying], 1, rtol=1e-3)
    np.testing.assert_array_equal(out.x[:, ~varying], 0)  # constant features: std guarded to 1, mapped to 0


def test_standardize_does_not_touch_its_inputs():
    x = np.arange(6, dtype=np.uint8).reshape(3, 2)
    stats = fit_standardizer(x)
    before = (x.copy(), stats.mean.copy(), stats.std.copy())
    list(standardize([Chunk(x, np.arange(3))], stats))
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(stats.mean, before[1])
    np.testing.assert_array_equal(stats.std, before[2])


def test_standardizer_round_trips_through_a_dict():
    stats = fit_standardizer(np.array([[0, 1], [4, 1]], np.uint8))
    again = Standardizer.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)
    assert not stats.mean.flags.writeable
