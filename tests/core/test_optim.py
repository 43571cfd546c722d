import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functional_nn import (
    AdamState,
    ChainState,
    adam,
    adamw,
    apply_updates,
    chain,
    clip_by_global_norm,
    global_norm,
    grad,
    init_mlp,
    loss,
    momentum,
    rmsprop,
    sgd,
    tree_allclose,
    tree_leaves,
    tree_map,
    warmup_cosine,
)
from tests.strategies import seeds

OPTIMIZERS = {
    "sgd": lambda: sgd(0.5),
    "momentum": lambda: momentum(0.2),
    "nesterov": lambda: momentum(0.2, nesterov=True),
    "adam": lambda: adam(0.05),
    "adamw": lambda: adamw(0.05, weight_decay=1e-3),
    "rmsprop": lambda: rmsprop(0.02),
    "clip+sgd": lambda: chain(clip_by_global_norm(1.0), sgd(0.5)),
    "sgd(schedule)": lambda: sgd(warmup_cosine(0.5, warmup_steps=5, decay_steps=50)),
}


def logistic_problem(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(dtype)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) > 0).astype(np.int64)
    return init_mlp(rng, [5, 2], dtype=dtype), x, y


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_lowers_logistic_regression_loss(name):
    opt = OPTIMIZERS[name]()
    params, x, y = logistic_problem()
    state = opt.init(params)
    start = loss(params, x, y)
    for _ in range(40):
        updates, state = opt.update(grad(params, x, y), state, params)
        params = apply_updates(params, updates)
    assert loss(params, x, y) < 0.7 * start
    assert int(state.step) == 40 and type(state.step) is np.int64


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_state_and_updates_and_purity(name):
    opt = OPTIMIZERS[name]()
    params, x, y = logistic_problem()
    state = opt.init(params)
    grads = grad(params, x, y)
    for _ in range(2):  # the second update sees a non-zero state
        updates, new_state = opt.update(grads, state, params)
        snapshot = tree_map(np.copy, (grads, state, params))
        opt.update(grads, state, params)
        for before, after in zip(tree_leaves(snapshot), tree_leaves((grads, state, params)), strict=True):
            np.testing.assert_array_equal(after, before)
        state = new_state
    assert {u.dtype for u in tree_leaves(updates)} == {np.dtype(np.float32)}
    assert {a.dtype for a in tree_leaves(state)} <= {np.dtype(np.float32), np.dtype(np.int64)}
    assert {p.dtype for p in tree_leaves(apply_updates(params, updates))} == {np.dtype(np.float32)}


def test_adam_first_two_steps_match_hand_worked_values():
    # g1 = 0.5: mu = 0.05, nu = 0.00025; mu_hat = 0.05 / 0.1 = 0.5, nu_hat = 0.00025 / 0.001 = 0.25
    #   update = -0.1 * 0.5 / (sqrt(0.25) + 1e-8)
    # g2 = -1: mu = 0.9 * 0.05 - 0.1 = -0.055, nu = 0.999 * 0.00025 + 0.001 = 0.00124975
    #   mu_hat = -0.055 / 0.19, nu_hat = 0.00124975 / 0.001999
    opt = adam(0.1, b1=0.9, b2=0.999, eps=1e-8)
    state = opt.init(np.zeros(1))
    u1, state = opt.update(np.array([0.5]), state)
    np.testing.assert_allclose(u1, [-0.1 * 0.5 / (0.5 + 1e-8)], rtol=1e-12)
    u2, state = opt.update(np.array([-1.0]), state)
    expected = -0.1 * (-0.055 / 0.19) / (math.sqrt(0.00124975 / 0.001999) + 1e-8)
    np.testing.assert_allclose(u2, [expected], rtol=1e-10)
    np.testing.assert_allclose(u2, [0.03661035224], rtol=1e-9)
    assert isinstance(state, AdamState) and state.step == 2
    np.testing.assert_allclose(state.mu, [-0.055], rtol=1e-12)
    np.testing.assert_allclose(state.nu, [0.00124975], rtol=1e-12)


def test_momentum_and_nesterov_values():
    heavy, nest = momentum(1.0, beta=0.5), momentum(1.0, beta=0.5, nesterov=True)
    hs, ns = heavy.init(np.zeros(1)), nest.init(np.zeros(1))
    out = []
    for g in (1.0, 2.0):
        hu, hs = heavy.update(np.array([g]), hs)
        nu, ns = nest.update(np.array([g]), ns)
        out.append((hu.item(), nu.item()))
    # v1 = 1, v2 = 0.5 + 2 = 2.5; nesterov: g + beta * v  -> 1.5, 2 + 1.25 = 3.25
    assert out == [(-1.0, -1.5), (-2.5, -3.25)]


def test_rmsprop_and_adamw_values():
    opt = rmsprop(0.1, decay=0.9, eps=0.0)
    u, state = opt.update(np.array([2.0]), opt.init(np.zeros(1)))  # nu = 0.4
    np.testing.assert_allclose(u, [-0.1 * 2.0 / math.sqrt(0.4)])
    p = np.array([3.0])
    plain, _ = adam(0.1).update(np.array([1.0]), adam(0.1).init(p), p)
    decayed, _ = adamw(0.1, weight_decay=0.5).update(np.array([1.0]), adamw(0.1).init(p), p)
    np.testing.assert_allclose(decayed - plain, [-0.1 * 0.5 * 3.0])
    with pytest.raises(ValueError, match="needs params"):
        adamw(0.1).update(np.array([1.0]), adamw(0.1).init(p))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sgd_like_zero_gradients_leave_params_unchanged(name):
    params, _, _ = logistic_problem()
    zeros = tree_map(np.zeros_like, params)
    opt = OPTIMIZERS[name]()
    if name != "adamw":  # weight decay moves params even with zero gradients
        updates, _ = opt.update(zeros, opt.init(params), params)
        assert tree_allclose(apply_updates(params, updates), params, rtol=0, atol=0)
    assert tree_allclose(apply_updates(params, zeros), params, rtol=0, atol=0)


def test_learning_rate_schedule_is_read_at_the_state_step():
    seen = []

    def schedule(step):
        seen.append(int(step))
        return np.float64(0.1)  # a float64 scalar must not promote float32 updates

    opt = sgd(schedule)
    state = opt.init(np.zeros(2, np.float32))
    for _ in range(3):
        updates, state = opt.update(np.ones(2, np.float32), state)
    assert seen == [0, 1, 2] and updates.dtype == np.float32


def test_clip_by_global_norm():
    grads = (np.array([3.0, 0.0], np.float32), {"b": np.array([4.0], np.float32)})
    opt = clip_by_global_norm(2.5)
    clipped, state = opt.update(grads, opt.init(grads))
    assert global_norm(grads) == 5.0
    np.testing.assert_allclose(global_norm(clipped), 2.5, rtol=1e-6)
    np.testing.assert_allclose(clipped[0], [1.5, 0.0])
    assert clipped[0].dtype == np.float32 and state.step == 1
    same, _ = clip_by_global_norm(10.0).update(grads, opt.init(grads))
    assert tree_allclose(same, grads, rtol=0, atol=0)
    with pytest.raises(ValueError, match="positive"):
        clip_by_global_norm(0.0)


def test_chain_feeds_each_update_into_the_next():
    params, x, y = logistic_problem(np.float64)
    grads = grad(params, x, y)
    opt = chain(clip_by_global_norm(0.1), adam(0.01))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    clipped, _ = clip_by_global_norm(0.1).update(grads, clip_by_global_norm(0.1).init(params))
    expected, _ = adam(0.01).update(clipped, adam(0.01).init(params), params)
    assert tree_allclose(updates, expected, rtol=0, atol=0)
    assert isinstance(state, ChainState) and [int(s.step) for s in state.states] == [1, 1]


def test_update_with_mismatched_tree_raises():
    params, _, _ = logistic_problem()
    opt = momentum(0.1)
    with pytest.raises(ValueError, match="structure mismatch"):
        opt.update(params + params, opt.init(params))


@settings(max_examples=15, deadline=None)
@given(seed=seeds, n=st.integers(1, 8))
def test_small_float64_sgd_step_never_raises_loss(seed, n):
    rng = np.random.default_rng(seed)
    params = init_mlp(rng, [3, 5, 4], activation="tanh", dtype=np.float64)
    x, y = rng.standard_normal((n, 3)), rng.integers(0, 4, size=n)
    opt = sgd(1e-3)
    updates, _ = opt.update(grad(params, x, y), opt.init(params))
    assert loss(apply_updates(params, updates), x, y) <= loss(params, x, y) + 1e-12
