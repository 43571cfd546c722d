"""The training loop (functional_nn.loop): a lazy, pure, deterministic fold that resumes bitwise from any record."""

from __future__ import annotations

from functools import partial

import attrs
import numpy as np
import pytest
import toolz
from hypothesis import given, settings
from hypothesis import strategies as st

from functional_nn import (
    Best,
    Diverged,
    EpochMetrics,
    TrainState,
    adam,
    early_stopping,
    fit,
    init_mlp,
    initial_state,
    make_train_step,
    momentum,
    patience_exhausted,
    sgd,
    take_epochs,
    track_best,
    tree_leaves,
    tree_map,
    with_validation,
)
from tests.strategies import seeds

N_FEATURES, N_CLASSES, BATCH = 6, 3, 8


def problem(seed: int, n: int = 40):
    """A small separable-ish classification problem: float32 x (n, 6), int y (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    x = (rng.standard_normal((n, N_FEATURES)) + y[:, None]).astype(np.float32)
    return x, y


def epoch_batches_for(x, y, seed: int, *, calls: list | None = None):
    """``epoch -> batches``: a fresh permutation per epoch from ``[seed, epoch]`` (replayable), cut into BATCH rows."""
    def batches(epoch: int):
        if calls is not None:
            calls.append(epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(y))
        return [(x[order[i:i + BATCH]], y[order[i:i + BATCH]]) for i in range(0, len(y), BATCH)]
    return batches


def start(seed: int, optimizer):
    params = init_mlp(np.random.default_rng(seed), [N_FEATURES, 5, N_CLASSES])
    return initial_state(params, optimizer.init(params))


def dropout_rng(seed, epoch, index):
    return np.random.default_rng([seed, epoch, index, 1])


def assert_bitwise(a, b):
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for u, v in zip(leaves_a, leaves_b):
        assert np.asarray(u).dtype == np.asarray(v).dtype
        np.testing.assert_array_equal(u, v)


OPTIMIZERS = {"sgd": lambda: sgd(0.1), "momentum": lambda: momentum(0.05, nesterov=True), "adam": lambda: adam(1e-2)}


def run(seed, name, epochs, *, dropout=0.0, state=None, stop=None, stages=()):
    x, y = problem(seed)
    optimizer = OPTIMIZERS[name]()
    step = make_train_step(optimizer, dropout=dropout)
    states = fit(step, state if state is not None else start(seed, optimizer), epoch_batches_for(x, y, seed),
                 batch_rng=partial(dropout_rng, seed) if dropout else None, stop=stop)
    return list(toolz.pipe(states, *stages, partial(take_epochs, epochs)))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, name=st.sampled_from(sorted(OPTIMIZERS)), epochs=st.integers(2, 4), data=st.data())
def test_stopping_after_k_epochs_and_resuming_from_the_kth_record_equals_the_whole_fold(seed, name, epochs, data):
    k = data.draw(st.integers(1, epochs - 1), label="k")
    whole = run(seed, name, epochs, dropout=0.25)
    first = run(seed, name, k, dropout=0.25)
    rest = run(seed, name, epochs, dropout=0.25, state=first[-1])
    assert [int(s.epoch) for s in whole] == list(range(1, epochs + 1))
    assert [int(s.epoch) for s in first + rest] == list(range(1, epochs + 1))
    for a, b in zip(whole, first + rest):
        assert_bitwise(a, b)              # params, optimizer state, counters and metrics of every epoch


@settings(max_examples=20, deadline=None)
@given(seed=seeds, name=st.sampled_from(sorted(OPTIMIZERS)), data=st.data())
def test_a_mid_epoch_stop_resumes_bitwise(seed, name, data):
    steps_per_epoch = -(-40 // BATCH)
    at_epoch = data.draw(st.integers(1, 3), label="epoch")
    at_batch = data.draw(st.integers(1, steps_per_epoch - 1), label="batch")
    whole = run(seed, name, 3, dropout=0.25)
    stopped = run(seed, name, 3, dropout=0.25, stop=lambda e, done: (e, done) == (at_epoch, at_batch))
    assert int(stopped[-1].batch) == at_batch and int(stopped[-1].epoch) == at_epoch - 1
    assert int(stopped[-1].step) == (at_epoch - 1) * steps_per_epoch + at_batch
    rest = run(seed, name, 3, dropout=0.25, state=stopped[-1])
    assert_bitwise(whole[-1], rest[-1])
    assert_bitwise(whole[-1].metrics, rest[-1].metrics)   # the resumed epoch's sums add up the same


@settings(max_examples=15, deadline=None)
@given(seed=seeds, name=st.sampled_from(sorted(OPTIMIZERS)))
def test_the_same_seed_gives_bitwise_equal_states_and_another_seed_differs(seed, name):
    a, b = run(seed, name, 2, dropout=0.25), run(seed, name, 2, dropout=0.25)
    for s, t in zip(a, b):
        assert_bitwise(s, t)
    other = run(seed ^ 1, name, 2, dropout=0.25)
    assert any(not np.array_equal(u, v) for u, v in zip(tree_leaves(a[-1].params), tree_leaves(other[-1].params)))


@settings(max_examples=15, deadline=None)
@given(seed=seeds, name=st.sampled_from(sorted(OPTIMIZERS)))
def test_the_loop_never_writes_into_its_inputs(seed, name):
    x, y = problem(seed)
    optimizer = OPTIMIZERS[name]()
    state0 = start(seed, optimizer)
    snapshot = tree_map(np.copy, (state0, x, y))
    batches = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(y), BATCH)]
    val = [(x[:16], y[:16])]
    states = toolz.pipe(fit(make_train_step(optimizer), state0, lambda epoch: batches),
                        partial(with_validation, batches=val, n_classes=N_CLASSES),
                        partial(track_best, monitor="val_loss"), partial(take_epochs, 2))
    last = toolz.last(states)
    assert_bitwise((state0, x, y), snapshot)
    assert int(last.epoch) == 2 and last.metrics.val_loss is not None
    for leaf in tree_leaves(last.params):
        assert not leaf.flags.writeable           # Dense records keep their arrays read-only


def test_fit_is_lazy_it_computes_an_epoch_only_when_asked():
    x, y = problem(0)
    calls: list[int] = []
    states = fit(make_train_step(sgd(0.1)), start(0, sgd(0.1)), epoch_batches_for(x, y, 0, calls=calls))
    assert calls == []
    first = next(states)
    assert calls == [1] and int(first.epoch) == 1
    list(take_epochs(3, states))                   # records 2 and 3
    assert calls == [1, 2, 3]                      # take_epochs does not ask for epoch 4


def test_records_are_frozen_registered_pytrees_with_the_epoch_metrics():
    x, y = problem(1)
    s = run(1, "sgd", 1)[0]
    assert isinstance(s, TrainState) and isinstance(s.metrics, EpochMetrics)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.epoch = 2
    assert int(s.metrics.rows) == len(y) and int(s.step) == -(-len(y) // BATCH)
    assert 0.0 <= s.metrics.accuracy <= 1.0 and s.metrics.loss > 0
    doubled = tree_map(lambda leaf: leaf, s)      # a pytree: map rebuilds the same record type
    assert isinstance(doubled, TrainState) and isinstance(doubled.metrics, EpochMetrics)


def test_with_validation_track_best_and_early_stopping_compose():
    x, y = problem(2)
    val = [(x[:16], y[:16])]
    # lr so high that the validation loss gets worse: early stopping must end the stream
    states = run(2, "sgd", 30, stages=[partial(with_validation, batches=lambda: iter(val), n_classes=N_CLASSES),
                                        partial(track_best, monitor="val_loss"),
                                        partial(early_stopping, patience=2)])
    last = states[-1]
    assert all(s.metrics.val_loss is not None for s in states)
    best_epoch = int(last.best.epoch)
    assert min(float(s.metrics.val_loss) for s in states) == float(last.best.value)
    assert int(states[best_epoch - 1].epoch) == best_epoch
    assert_bitwise(last.best.params, states[best_epoch - 1].params)     # the best state stays in reach
    if len(states) < 30:
        assert patience_exhausted(last, 2) and int(last.epoch) - best_epoch == 2
    assert not any(patience_exhausted(s, 2) for s in states[:-1])


def test_track_best_continues_from_a_resumed_state_and_stamps_mid_epoch_records():
    s = run(3, "adam", 1)[0]
    carried = Best(value=-1.0, epoch=1, bad_epochs=0, params=s.params)    # nothing will beat a loss of -1
    resumed = attrs.evolve(s, best=carried)
    more = run(3, "adam", 3, state=resumed, stages=[partial(track_best, monitor="loss")])
    assert [int(r.best.bad_epochs) for r in more] == [1, 2] and all(int(r.best.epoch) == 1 for r in more)
    stopped = run(3, "adam", 3, state=resumed, stop=lambda e, done: (e, done) == (3, 2),
                  stages=[partial(track_best, monitor="loss")])
    assert int(stopped[-1].batch) == 2 and int(stopped[-1].best.bad_epochs) == 1


def test_bad_stage_arguments_and_missing_metrics_raise():
    with pytest.raises(ValueError, match="monitor"):
        list(track_best(iter([]), monitor="val_acc"))
    with pytest.raises(ValueError, match="no val_loss"):
        run(0, "sgd", 1, stages=[partial(track_best, monitor="val_loss")])
    with pytest.raises(ValueError, match="track_best"):
        run(0, "sgd", 1, stages=[partial(early_stopping, patience=1)])
    with pytest.raises(ValueError, match="patience"):
        list(early_stopping(iter([]), patience=0))
    with pytest.raises(ValueError, match="no batches"):
        next(fit(make_train_step(sgd(0.1)), start(0, sgd(0.1)), lambda epoch: []))


def test_a_diverging_step_raises_with_the_last_good_state():
    x, y = problem(4)
    batches = epoch_batches_for(x, y, 4)
    optimizer = sgd(1e30)
    with np.errstate(all="ignore"):
        with pytest.raises(Diverged) as info:
            list(take_epochs(3, fit(make_train_step(optimizer), start(4, optimizer), batches)))
    e = info.value
    assert e.epoch >= 1 and e.batch >= 1 and not np.isfinite(e.loss)
    assert all(np.isfinite(leaf).all() for leaf in tree_leaves(e.state.params))
    assert int(e.state.step) == (e.epoch - 1) * 5 + e.batch - 1
