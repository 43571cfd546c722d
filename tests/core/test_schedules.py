import math

import numpy as np
import pytest

from functional_nn import constant, exponential_decay, step_decay, warmup_cosine


def test_constant():
    assert [constant(0.3)(s) for s in (0, 1, 10**6)] == [0.3, 0.3, 0.3]


def test_step_decay():
    s = step_decay(0.1, step_size=100, gamma=0.5)
    assert [s(0), s(99), s(100), s(199), s(200), s(np.int64(350))] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]


def test_exponential_decay():
    s = exponential_decay(2.0, decay_rate=0.1, transition_steps=10)
    assert s(0) == 2.0
    assert math.isclose(s(10), 0.2) and math.isclose(s(20), 0.02) and math.isclose(s(5), 2.0 * 0.1**0.5)


def test_warmup_cosine():
    s = warmup_cosine(1.0, warmup_steps=4, decay_steps=14, init_value=0.2, end_value=0.0)
    np.testing.assert_allclose([s(0), s(2), s(4)], [0.2, 0.6, 1.0], rtol=1e-15)
    assert math.isclose(s(9), 0.5) and s(14) == 0.0 and s(1000) == 0.0
    values = [s(k) for k in range(4, 15)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay after warm-up
    assert all(type(s(k)) is float for k in range(20))
    no_warmup = warmup_cosine(1.0, warmup_steps=0, decay_steps=10)
    assert no_warmup(0) == 1.0 and math.isclose(no_warmup(5), 0.5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: step_decay(0.1, step_size=0),
        lambda: exponential_decay(0.1, decay_rate=0.5, transition_steps=0),
        lambda: warmup_cosine(0.1, warmup_steps=10, decay_steps=5),
    ],
)
def test_bad_arguments_raise(make):
    with pytest.raises(ValueError):
        make()
