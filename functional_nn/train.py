"""The training step (gradient, optimizer update, apply) and evaluation over batches.

A :class:`~functional_nn.optim.FusedOptimizer` (sgd, momentum, adam, adamw, rmsprop) ends the step inside backprop's
fresh gradient arrays instead of separate ``update`` + ``apply_updates`` passes: the same arithmetic (one
``LeafRule``), the same result (bitwise, or to rounding where a constant is folded into backprop: see
:mod:`functional_nn.fused`). Any other optimizer (``chain``, your own) takes the composed path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import attrs
import numpy as np

from functional_nn.model import backprop, cross_entropy, dropout_masks, forward, with_leaves
from functional_nn.optim import FusedOptimizer, Optimizer, apply_updates
from functional_nn.params import readonly

__all__ = ["ClassScores", "Evaluation", "StepMetrics", "batch_xy", "class_scores", "evaluate", "make_train_step",
           "train_step"]

Params = Any


@attrs.frozen
class StepMetrics:
    """The figures of one training batch, before its update: mean loss and accuracy (Python floats)."""

    loss: float
    accuracy: float


@attrs.frozen(eq=False)
class Evaluation:
    """What :func:`evaluate` measures over a set of batches.

    Attributes:
        loss: mean cross-entropy over the rows (a Python float).
        accuracy: share of the rows classified right.
        confusion: int64 (n_classes, n_classes), rows = true label, columns = prediction (read-only).
        per_class_accuracy: float64 (n_classes,), NaN for a class with no rows (read-only).
        n: number of rows.
    """

    loss: float
    accuracy: float
    confusion: np.ndarray = attrs.field(converter=readonly)
    per_class_accuracy: np.ndarray = attrs.field(converter=readonly)
    n: int

    @property
    def scores(self) -> ClassScores:
        """Precision, recall, F1 and support per class, with macro and weighted averages (:func:`class_scores`)."""
        return class_scores(self.confusion)


@attrs.frozen
class ClassScores:
    """Per-class precision, recall, F1 (float64, read-only) and support (int64), as scikit-learn's
    ``classification_report`` gives them; ``macro`` and ``weighted`` are dicts of their averages."""

    precision: np.ndarray = attrs.field(converter=readonly)
    recall: np.ndarray = attrs.field(converter=readonly)
    f1: np.ndarray = attrs.field(converter=readonly)
    support: np.ndarray = attrs.field(converter=readonly)
    macro: dict
    weighted: dict


def class_scores(confusion: np.ndarray) -> ClassScores:
    """Scores of a confusion matrix (rows = true class, columns = prediction). A ratio whose denominator is 0
    (no row predicted, or none true) is 0, as scikit-learn's default ``zero_division`` makes it; macro averages
    weigh each class equally, weighted averages by support.

    >>> s = class_scores(np.array([[3, 1], [0, 2]]))
    >>> s.precision.tolist(), s.recall.tolist(), s.support.tolist(), round(s.macro["f1"], 4)
    ([1.0, 0.6666666666666666], [0.75, 1.0], [4, 2], 0.8286)
    """
    c = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(c).astype(np.float64)
    predicted, support = c.sum(axis=0), c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        both = precision + recall
        f1 = np.where(both > 0, 2 * precision * recall / np.where(both > 0, both, 1), 0.0)
    total = support.sum()
    averages = {}
    for name, weights in (("macro", np.ones(len(c))), ("weighted", support.astype(np.float64))):
        w = weights / weights.sum() if weights.sum() > 0 else np.zeros(len(c))
        averages[name] = {"precision": float(precision @ w), "recall": float(recall @ w), "f1": float(f1 @ w),
                          "support": int(total)}
    return ClassScores(precision=precision, recall=recall, f1=f1, support=support, macro=averages["macro"],
                       weighted=averages["weighted"])


Step = Callable[..., tuple[Params, Any, StepMetrics]]


def _labels(y: np.ndarray) -> np.ndarray:
    """Int labels (batch,): ``y`` itself, or the argmax of one-hot / soft labels (batch, n_classes)."""
    return y if y.ndim == 1 else np.argmax(y, axis=1)


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    labels = _labels(y)
    return int(np.count_nonzero(logits.argmax(axis=1) == labels)) / len(labels)


def train_step(
    params: Params,
    opt_state: Any,
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    optimizer: Optimizer,
    l2: float = 0.0,
    dropout: float = 0.0,
) -> tuple[Params, Any, StepMetrics]:
    """One optimisation step: ``grads = grad(loss)``, ``optimizer.update``, ``apply_updates``.

    Args:
        params: tuple of Dense.
        opt_state: ``optimizer.init(params)`` or the state returned by the previous step.
        x: batch inputs (batch, n_in), of the params' dtype.
        y: int labels (batch,) or one-hot / soft labels (batch, n_classes).
        rng: random generator for the dropout masks; consumed only when ``dropout > 0`` (else may be None).
        optimizer: an ``Optimizer``.
        l2: L2 penalty weight (see :func:`functional_nn.model.loss`).
        dropout: drop probability of hidden units, in [0, 1).

    Returns:
        ``(params, opt_state, metrics)``; :class:`StepMetrics` ``metrics.loss`` and ``metrics.accuracy`` are those of
        this batch before the update, computed from the same (dropped-out, when ``dropout > 0``) forward pass as
        the gradient.
    """
    masks = None
    if dropout > 0:
        if rng is None:
            raise ValueError("train_step: dropout > 0 needs an rng")
        masks = dropout_masks(rng, params, len(x), rate=dropout, dtype=params[0].w.dtype)
    if isinstance(optimizer, FusedOptimizer):
        # Fast path: backprop's gradient arrays are ours (just allocated), so we hand them over and the optimizer
        # ends the step in them (see FusedOptimizer) instead of allocating updates, then sums. Nothing passed in
        # is written.
        scale = optimizer.grad_scale(opt_state)
        value, grad_leaves, logits = backprop(params, x, y, l2=l2, masks=masks, scale=scale)
        params, opt_state = optimizer.fused_step(grad_leaves, opt_state, params, partial(with_leaves, params))
    else:
        value, grad_leaves, logits = backprop(params, x, y, l2=l2, masks=masks)
        updates, opt_state = optimizer.update(with_leaves(params, grad_leaves), opt_state, params)
        params = apply_updates(params, updates)
    return params, opt_state, StepMetrics(float(value), _accuracy(logits, np.asarray(y)))


def make_train_step(optimizer: Optimizer, *, l2: float = 0.0, dropout: float = 0.0) -> Step:
    """Bind the hyperparameters of :func:`train_step`: returns ``step(params, opt_state, x, y, rng)``.

    >>> from functional_nn.optim import sgd
    >>> from functional_nn.params import init_mlp
    >>> opt = sgd(0.1)
    >>> params = init_mlp(np.random.default_rng(0), [2, 3])
    >>> step = make_train_step(opt)
    >>> x, y = np.ones((4, 2), np.float32), np.array([0, 1, 2, 0])
    >>> params, state, metrics = step(params, opt.init(params), x, y, None)
    >>> 0 <= metrics.accuracy <= 1, int(state.step)
    (True, 1)
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return partial(train_step, optimizer=optimizer, l2=float(l2), dropout=float(dropout))


def batch_xy(batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a batch given as a pair or as an object with ``.x`` and ``.y`` (a ``pipelines.Chunk``).

    >>> batch_xy((np.zeros((1, 2)), np.array([1])))[1].tolist()
    [1]
    """
    if hasattr(batch, "x") and hasattr(batch, "y"):
        return batch.x, batch.y
    x, y = batch
    return x, y


def evaluate(params: Params, batches: Iterable[Any], *, n_classes: int) -> Evaluation:
    """Loss, accuracy and confusion matrix over an iterable of batches (no dropout, no L2 term).

    Args:
        params: tuple of Dense.
        batches: ``(x, y)`` pairs or objects with ``.x`` / ``.y`` (e.g. ``pipelines.Chunk``); y int labels
            (batch,) or one-hot / soft labels (batch, n_classes), which count as their argmax for accuracy.
        n_classes: number of classes (the logits' width).

    Returns:
        An :class:`Evaluation`: ``loss`` (mean over rows), ``accuracy``, ``confusion`` (int64, rows = true label,
        columns = prediction), ``per_class_accuracy`` (float64, NaN for a class with no rows) and ``n``.

    Raises:
        ValueError: if ``batches`` holds no rows or the logits are not ``n_classes`` wide.

    >>> from functional_nn.params import Dense
    >>> params = (Dense(np.eye(2, dtype=np.float32), np.zeros(2, np.float32)),)
    >>> out = evaluate(params, [(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.array([0, 0]))], n_classes=2)
    >>> out.accuracy, out.confusion.tolist(), out.per_class_accuracy.tolist(), out.n
    (0.5, [[1, 1], [0, 0]], [0.5, nan], 2)
    """
    total_loss, n = 0.0, 0
    confusion = np.zeros((n_classes, n_classes), np.int64)
    for batch in batches:
        x, y = batch_xy(batch)
        if len(x) == 0:
            continue
        logits = forward(params, x)
        if logits.shape[1] != n_classes:
            raise ValueError(f"evaluate: the model has {logits.shape[1]} outputs, n_classes is {n_classes}")
        value = cross_entropy(logits, y)     # validates y against the logits
        y = np.asarray(y)
        total_loss += float(value) * len(y)
        n += len(y)
        pairs = _labels(y) * n_classes + np.argmax(logits, axis=1)
        confusion += np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    if n == 0:
        raise ValueError("evaluate: no batches (or only empty ones)")
    support = confusion.sum(axis=1)
    per_class = np.full(n_classes, np.nan)
    np.divide(np.diag(confusion), support, out=per_class, where=support > 0)
    return Evaluation(loss=total_loss / n, accuracy=float(np.trace(confusion)) / n, confusion=confusion,
                      per_class_accuracy=per_class, n=n)
