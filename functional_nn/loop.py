"""The training loop: a lazy fold over epochs, and the stream functions that scripts compose over it.

``fit(step, state, epoch_batches)`` is a generator, the way ``itertools.accumulate`` is: it yields one frozen
:class:`TrainState` per epoch (parameters, optimizer state, epoch, step count, the epoch's metrics; everything that
resuming needs) and computes an epoch only when its consumer asks for the next record. Everything else is a stream
function ``stage(states, ...) -> states`` that a script picks, drops or reorders with ``toolz.pipe``::

    final = toolz.last(toolz.pipe(
        fit(step, initial_state(params, optimizer.init(params)), epoch_batches),
        partial(with_validation, batches=val_batches, n_classes=10),   # adds val_loss / val_accuracy
        partial(track_best, monitor="val_loss"),                       # records the best epoch (and its params)
        partial(early_stopping, patience=3),                           # ends the stream when patience runs out
        partial(take_epochs, 20)))                                     # ... or after epoch 20
    best_params = final.best.params

Resuming is ``fit(step, saved_state, epoch_batches)``: the fold continues after ``saved_state.epoch`` (and, for a
state saved in the middle of an epoch, after its ``batch``-th batch) and ends bitwise where the uninterrupted fold
would have. Checkpoints, logs, progress bars, signals and the clock are the caller's: this module only computes
(it imports numpy, attrs and the core's ``train`` and ``tree``; it opens no file and reads no clock).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import numpy as np

from functional_nn.train import batch_xy, evaluate
from functional_nn.tree import register_pytree, tree_leaves

__all__ = [
    "Best",
    "Diverged",
    "EpochMetrics",
    "TrainState",
    "early_stopping",
    "fit",
    "initial_state",
    "patience_exhausted",
    "take_epochs",
    "track_best",
    "with_validation",
]

Params = Any
MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _optional(convert: Callable) -> Callable:
    return lambda value: None if value is None else convert(value)


@register_pytree
@attrs.frozen(eq=False)
class EpochMetrics:
    """The training figures of one epoch (or of its batches so far), as sums, plus validation once added.

    Sums rather than means, so that an epoch interrupted and resumed adds up to exactly the same figures:
    ``loss_sum`` is the sum over batches of (batch mean loss x batch rows), ``correct`` the rows classified right
    (before each batch's update), ``rows`` the rows seen. Leaves are NumPy scalars; ``val_*`` are None until
    :func:`with_validation` adds them.
    """

    loss_sum: np.float64 = attrs.field(converter=np.float64)
    correct: np.int64 = attrs.field(converter=np.int64)
    rows: np.int64 = attrs.field(converter=np.int64)
    val_loss: np.float64 | None = attrs.field(default=None, converter=_optional(np.float64))
    val_accuracy: np.float64 | None = attrs.field(default=None, converter=_optional(np.float64))

    @property
    def loss(self) -> float:
        """Mean training loss over the epoch's rows (a Python float)."""
        return float(self.loss_sum) / int(self.rows)

    @property
    def accuracy(self) -> float:
        """Share of the epoch's rows classified right (a Python float)."""
        return int(self.correct) / int(self.rows)

    def value(self, name: str) -> float | None:
        """``loss``, ``accuracy``, ``val_loss`` or ``val_accuracy`` as a Python float (None if absent).

        >>> EpochMetrics(loss_sum=3.0, correct=3, rows=4).value("accuracy")
        0.75
        """
        if name not in MONITORS:
            raise ValueError(f"unknown metric {name!r} (choose from {', '.join(MONITORS)})")
        value = getattr(self, name)
        return None if value is None else float(value)


@register_pytree
@attrs.frozen(eq=False)
class Best:
    """The best epoch so far by the monitored metric (see :func:`track_best`), with its parameters.

    ``bad_epochs`` counts the epochs after it that did not improve on it.
    """

    value: np.float64 = attrs.field(converter=np.float64)
    epoch: np.int64 = attrs.field(converter=np.int64)
    bad_epochs: np.int64 = attrs.field(converter=np.int64)
    params: Params


@register_pytree
@attrs.frozen(eq=False)
class TrainState:
    """Where training stands: one record per epoch from :func:`fit`, and what :func:`fit` resumes from.

    Attributes:
        params: the parameters (a pytree, e.g. a tuple of ``Dense``).
        opt_state: the optimizer's state.
        epoch: epochs completed (0 before the first).
        step: optimizer steps taken in all.
        batch: batches of epoch ``epoch + 1`` already taken: 0 at the end of an epoch; more when :func:`fit` was
            stopped in the middle of one (the record to save and resume from).
        metrics: the figures of epoch ``epoch`` (or the running sums of the partial epoch); None before any.
        best: the best epoch so far, once :func:`track_best` has seen one; None otherwise.
    """

    params: Params
    opt_state: Any
    epoch: np.int64 = attrs.field(default=0, converter=np.int64)
    step: np.int64 = attrs.field(default=0, converter=np.int64)
    batch: np.int64 = attrs.field(default=0, converter=np.int64)
    metrics: EpochMetrics | None = None
    best: Best | None = None

    @property
    def finished_epoch(self) -> bool:
        """True for a record at the end of an epoch (not the initial state, not a mid-epoch stop)."""
        return int(self.batch) == 0 and int(self.epoch) > 0 and self.metrics is not None


def initial_state(params: Params, opt_state: Any) -> TrainState:
    """The state before the first epoch.

    >>> from functional_nn.optim import sgd
    >>> s = initial_state({"w": np.zeros(2)}, sgd(0.1).init(None))
    >>> int(s.epoch), int(s.step), s.metrics is None
    (0, 0, True)
    """
    return TrainState(params=params, opt_state=opt_state)


class Diverged(FloatingPointError):
    """The training loss (or a parameter) became NaN or infinite.

    Attributes:
        loss: the loss that was not finite (NaN when a parameter was found not finite at the end of an epoch).
        epoch: the epoch (from 1) and ``batch`` the batch (from 1) where it happened.
        state: the last good state, just before that batch (resumable, as a mid-epoch record).
    """

    def __init__(self, loss: float, epoch: int, batch: int, state: TrainState):
        super().__init__(f"the loss became {loss} at epoch {epoch}, batch {batch}")
        self.loss, self.epoch, self.batch, self.state = loss, epoch, batch, state


def _finite(tree: Params) -> bool:
    return all(bool(np.isfinite(leaf).all()) for leaf in tree_leaves(tree))


def fit(
    step: Callable[..., tuple],
    state: TrainState,
    epoch_batches: Callable[[int], Iterable[Any]],
    *,
    batch_rng: Callable[[int, int], np.random.Generator | None] | None = None,
    stop: Callable[[int, int], bool] | None = None,
) -> Iterator[TrainState]:
    """Train epoch after epoch, lazily: one :class:`TrainState` per epoch, without end (bound it with take_epochs).

    Args:
        step: ``step(params, opt_state, x, y, rng) -> (params, opt_state, metrics)`` with ``metrics.loss`` and
            ``metrics.accuracy`` (a :class:`~functional_nn.train.StepMetrics`),
            as :func:`~functional_nn.train.make_train_step` returns.
        state: where to start: :func:`initial_state`, or a record of an earlier fold to resume from.
        epoch_batches: ``epoch -> batches`` (epoch from 1); each batch a ``(x, y)`` pair or has ``.x`` / ``.y``
            (``pipelines.Chunk``). Called once per epoch, when that epoch starts. When ``state`` stopped in the
            middle of an epoch, the first ``state.batch`` batches of that epoch are skipped.
        batch_rng: ``(epoch, index) -> Generator or None``: the random generator of the step of batch ``index``
            (from 0) of ``epoch`` (dropout masks). Default: None for every step.
        stop: ``(epoch, batches_done) -> bool``, asked after every step: True ends the fold at once with a
            mid-epoch record (its ``batch`` = ``batches_done``), from which ``fit`` resumes exactly. Default: never.

    Yields:
        A record after each epoch (``batch`` 0, ``metrics`` of that epoch, ``best`` carried over unchanged), or one
        last mid-epoch record when ``stop`` said so.

    Raises:
        Diverged: a step's loss (or, at the end of an epoch, a parameter) is NaN or infinite.
        ValueError: an epoch has no batches.

    >>> from functional_nn.optim import sgd
    >>> from functional_nn.params import init_mlp
    >>> from functional_nn.train import make_train_step
    >>> opt = sgd(0.5)
    >>> params = init_mlp(np.random.default_rng(0), [2, 2])
    >>> x, y = np.array([[1, 0], [0, 1]], np.float32), np.array([0, 1])
    >>> states = fit(make_train_step(opt), initial_state(params, opt.init(params)), lambda epoch: [(x, y)])
    >>> [(int(s.epoch), int(s.step), round(s.metrics.loss, 4)) for s in take_epochs(3, states)]
    [(1, 1, 0.9883), (2, 2, 0.7718), (3, 3, 0.6182)]
    """
    while True:
        epoch, start = int(state.epoch) + 1, int(state.batch)
        params, opt_state, steps = state.params, state.opt_state, int(state.step)
        sums = state.metrics if start else None
        loss_sum, correct, rows = (float(sums.loss_sum), int(sums.correct), int(sums.rows)) if sums else (0.0, 0, 0)
        index = start
        for b in itertools.islice(epoch_batches(epoch), start, None):
            x, y = batch_xy(b)
            new_params, new_opt_state, m = step(params, opt_state, x, y,
                                                None if batch_rng is None else batch_rng(epoch, index))
            if not math.isfinite(m.loss):
                raise Diverged(m.loss, epoch, index + 1, _partial(state, params, opt_state, steps, index,
                                                                     loss_sum, correct, rows))
            params, opt_state = new_params, new_opt_state
            n = len(y)
            loss_sum += m.loss * n
            correct += int(round(m.accuracy * n))
            rows += n
            index += 1
            steps += 1
            if stop is not None and stop(epoch, index):
                yield _partial(state, params, opt_state, steps, index, loss_sum, correct, rows)
                return
        if rows == 0:
            raise ValueError(f"fit: epoch {epoch} has no batches")
        if not _finite(params):
            raise Diverged(float("nan"), epoch, index, state)
        state = attrs.evolve(state, params=params, opt_state=opt_state, epoch=epoch, step=steps, batch=0,
                             metrics=EpochMetrics(loss_sum=loss_sum, correct=correct, rows=rows))
        yield state


def _partial(state: TrainState, params, opt_state, steps: int, index: int, loss_sum, correct, rows) -> TrainState:
    """The mid-epoch record after ``index`` batches of epoch ``state.epoch + 1``."""
    return attrs.evolve(state, params=params, opt_state=opt_state, step=steps, batch=index,
                        metrics=EpochMetrics(loss_sum=loss_sum, correct=correct, rows=rows) if rows else None)


def with_validation(states: Iterable[TrainState], *, batches: Callable[[], Iterable[Any]] | Iterable[Any],
                    n_classes: int) -> Iterator[TrainState]:
    """Add ``val_loss`` and ``val_accuracy`` (:func:`~functional_nn.train.evaluate`) to each epoch's metrics.

    ``batches``: the validation batches, as a function called once per epoch (generators are single-use) or a
    sequence that can be iterated again. Mid-epoch records pass through unchanged.
    """
    for state in states:
        if state.finished_epoch:
            result = evaluate(state.params, batches() if callable(batches) else batches, n_classes=n_classes)
            metrics = attrs.evolve(state.metrics, val_loss=result.loss, val_accuracy=result.accuracy)
            state = attrs.evolve(state, metrics=metrics)
        yield state


def track_best(states: Iterable[TrainState], *, monitor: str = "val_loss",
               mode: str = "min") -> Iterator[TrainState]:
    """Record in each epoch's state the best epoch so far by ``monitor`` (``mode`` "min" or "max"), with its params.

    An epoch is better only when strictly better; the first one is the best so far. It starts from the ``best``
    that the first incoming record carries (``fit`` carries its starting state's: a resumed fold continues) and
    stamps every record, mid-epoch ones too, with the best so far (so that a mid-epoch record saved for resuming
    has it). ``fit`` cannot see what downstream stages add, so ``best`` lives in this stage, not in the fold.

    Raises:
        ValueError: ``monitor`` or ``mode`` is unknown, or the metric is missing (``val_*`` needs
            :func:`with_validation` upstream).
    """
    if monitor not in MONITORS:
        raise ValueError(f"track_best: unknown monitor {monitor!r} (choose from {', '.join(MONITORS)})")
    if mode not in ("min", "max"):
        raise ValueError(f"track_best: mode must be 'min' or 'max', got {mode!r}")
    first, best = True, None
    for state in states:
        if first:  # fit carries the best of the state it started from (a resumed fold's) on every record
            first, best = False, state.best
        if state.finished_epoch:
            value = state.metrics.value(monitor)
            if value is None:
                raise ValueError(f"track_best: epoch {int(state.epoch)} has no {monitor} (put with_validation first)")
            if best is None or (value < best.value if mode == "min" else value > best.value):
                best = Best(value=value, epoch=state.epoch, bad_epochs=0, params=state.params)
            else:
                best = attrs.evolve(best, bad_epochs=best.bad_epochs + 1)
        yield state if state.best is best else attrs.evolve(state, best=best)


def patience_exhausted(state: TrainState, patience: int) -> bool:
    """True when ``state`` is an epoch's record whose best epoch lies ``patience`` or more epochs back.

    >>> s = TrainState(params=(), opt_state=None, epoch=5, metrics=EpochMetrics(loss_sum=1.0, correct=1, rows=1),
    ...                best=Best(value=0.1, epoch=2, bad_epochs=3, params=()))
    >>> patience_exhausted(s, 3), patience_exhausted(s, 4)
    (True, False)
    """
    if state.finished_epoch and state.best is None:
        raise ValueError("early stopping needs track_best upstream (the records carry no best epoch)")
    return state.finished_epoch and int(state.best.bad_epochs) >= patience


def early_stopping(states: Iterable[TrainState], *, patience: int) -> Iterator[TrainState]:
    """Pass the records through; end the stream after the first one whose best epoch is ``patience`` epochs back.

    The best state stays in reach: the last record's ``best.params`` (put :func:`track_best` upstream).
    """
    if patience < 1:
        raise ValueError(f"early_stopping: patience must be >= 1, got {patience}")
    for state in states:
        exhausted = patience_exhausted(state, patience)   # raises before yielding a record without a best
        yield state
        if exhausted:
            return


def take_epochs(epochs: int, states: Iterable[TrainState]) -> Iterator[TrainState]:
    """Pass the records through up to and including the end of epoch ``epochs`` (counted from the fold's start).

    The count comes first, as in ``toolz.take(n, seq)``, so that ``partial(take_epochs, 20)`` is a stage.
    Records carry absolute epoch numbers, so a resumed fold stops at the same epoch as an uninterrupted one. The
    stream ends without asking ``fit`` for the next epoch.
    """
    for state in states:
        yield state
        if state.finished_epoch and int(state.epoch) >= epochs:
            return
