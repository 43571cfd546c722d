import attrs
import numpy as np
import pytest

from functional_nn import (
    adam,
    evaluate,
    init_mlp,
    loss,
    make_train_step,
    momentum,
    predict,
    sgd,
    tree_allclose,
    tree_leaves,
    tree_map,
)


@attrs.frozen
class Batch:  # anything with .x and .y (like pipelines.Chunk)
    x: np.ndarray
    y: np.ndarray


def data(seed=0, n=64, n_in=20, k=10):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in), dtype=np.float32), rng.integers(0, k, size=n)


def test_small_mlp_overfits_64_random_examples():
    x, y = data()
    params = init_mlp(np.random.default_rng(1), [20, 64, 10])
    opt = adam(0.01)
    step, state = make_train_step(opt), opt.init(params)
    for _ in range(300):
        params, state, metrics = step(params, state, x, y, None)
    assert np.mean(predict(params, x) == y) == 1.0
    assert metrics.accuracy == 1.0 and metrics.loss < 0.05


def run(seed, steps=5, dropout=0.3):
    x, y = data(seed=100)
    params = init_mlp(np.random.default_rng(seed), [20, 16, 16, 10])
    opt = momentum(0.05, nesterov=True)
    step, state, rng = make_train_step(opt, l2=1e-3, dropout=dropout), opt.init(params), np.random.default_rng(seed)
    for i in range(steps):
        params, state, _ = step(params, state, x[i * 8 : i * 8 + 16], y[i * 8 : i * 8 + 16], rng)
    return params, state


def test_training_is_deterministic_for_a_seed():
    a, b, c = run(7), run(7), run(8)
    assert tree_allclose(a, b, rtol=0, atol=0)
    assert {leaf.dtype for leaf in tree_leaves(a[0])} == {np.dtype(np.float32)}
    assert not np.array_equal(a[0][0].w, c[0][0].w)


def test_metrics_describe_the_batch_before_the_update():
    x, y = data()
    params = init_mlp(np.random.default_rng(0), [20, 8, 10])
    opt = sgd(0.1)
    new_params, state, metrics = make_train_step(opt)(params, opt.init(params), x, y, None)
    assert type(metrics.loss) is float and type(metrics.accuracy) is float
    np.testing.assert_allclose(metrics.loss, float(loss(params, x, y)), rtol=1e-6)
    assert metrics.accuracy == float(np.mean(predict(params, x) == y))
    assert not np.array_equal(new_params[0].w, params[0].w) and int(state.step) == 1


def test_rng_is_consumed_only_with_dropout():
    x, y = data()
    params = init_mlp(np.random.default_rng(0), [20, 8, 10])
    opt = sgd(0.1)
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    make_train_step(opt)(params, opt.init(params), x, y, rng)
    assert rng.bit_generator.state == before
    make_train_step(opt, dropout=0.5)(params, opt.init(params), x, y, rng)
    assert rng.bit_generator.state != before
    with pytest.raises(ValueError, match="needs an rng"):
        make_train_step(opt, dropout=0.5)(params, opt.init(params), x, y, None)
    with pytest.raises(ValueError, match="dropout"):
        make_train_step(opt, dropout=1.0)


def test_train_step_does_not_modify_its_arguments():
    x, y = data()
    params = init_mlp(np.random.default_rng(0), [20, 8, 8, 10])
    opt = adam(0.01)
    state = opt.init(params)
    step = make_train_step(opt, l2=0.01, dropout=0.2)
    params, state, _ = step(params, state, x, y, np.random.default_rng(0))  # a non-zero state
    args = (params, state, x, y)
    snapshot = tree_map(np.copy, args)
    step(params, state, x, y, np.random.default_rng(1))
    evaluate(params, [(x, y)], n_classes=10)
    for before, after in zip(tree_leaves(snapshot), tree_leaves(args), strict=True):
        np.testing.assert_array_equal(after, before)


def test_evaluate_matches_the_model_functions():
    x, y = data(n=50)
    params = init_mlp(np.random.default_rng(2), [20, 12, 10])
    batches = [(x[:20], y[:20]), Batch(x[20:45], y[20:45]), (x[45:], np.eye(10)[y[45:]])]
    out = evaluate(params, iter(batches), n_classes=10)
    pred = predict(params, x)
    assert out.n == 50
    np.testing.assert_allclose(out.loss, float(loss(params, x, y)), rtol=1e-5)
    assert out.accuracy == float(np.mean(pred == y))
    expected = np.zeros((10, 10), np.int64)
    np.add.at(expected, (y, pred), 1)
    np.testing.assert_array_equal(out.confusion, expected)
    assert out.confusion.dtype == np.int64
    support = expected.sum(axis=1)
    for k in range(10):
        if support[k]:
            np.testing.assert_allclose(out.per_class_accuracy[k], expected[k, k] / support[k])
        else:
            assert np.isnan(out.per_class_accuracy[k])


def test_evaluate_rejects_empty_input_and_wrong_n_classes():
    params = init_mlp(np.random.default_rng(0), [20, 10])
    with pytest.raises(ValueError, match="no batches"):
        evaluate(params, [], n_classes=10)
    x, y = data(n=4)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(params, [(x[:0], y[:0])], n_classes=10)
    assert evaluate(params, [(x[:0], y[:0]), (x, y)], n_classes=10).n == 4  # empty batches are skipped
    with pytest.raises(ValueError, match="n_classes is 5"):
        evaluate(params, [(x, y % 5)], n_classes=5)
