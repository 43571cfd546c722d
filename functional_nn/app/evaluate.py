"""``fnn evaluate`` and the test figures that ``fnn train`` and ``fnn report`` record (metrics.json).

Imports the core, ``pipelines`` (through :mod:`functional_nn.app.data`) and the application's run-folder reader.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

import functional_nn as fnn
from functional_nn.app import data as _data
from functional_nn.app.inference import load_run
from functional_nn.app.settings import UsageError


def evaluation_metrics(result: fnn.Evaluation) -> dict:
    """The JSON-ready test figures of an ``evaluate`` result, as metrics.json records them."""
    return {"test_loss": float(result.loss), "test_accuracy": float(result.accuracy),
            "per_class_accuracy": [_nan_to_none(a) for a in result.per_class_accuracy],
            "confusion": np.asarray(result.confusion).tolist(), "n_test": int(result.n),
            **scores_json(result.scores)}


def scores_json(scores: fnn.ClassScores) -> dict:
    """Precision, recall, F1 and support per class and their macro / weighted averages, JSON-ready."""
    return {"precision": scores.precision.tolist(), "recall": scores.recall.tolist(), "f1": scores.f1.tolist(),
            "support": scores.support.tolist(), "macro_avg": scores.macro, "weighted_avg": scores.weighted}


def classification_report(scores: fnn.ClassScores, classes: list[str], accuracy: float) -> str:
    """A table like scikit-learn's ``classification_report``.

    >>> print(classification_report(fnn.class_scores(np.array([[3, 1], [0, 2]])), ["a", "b"], 5 / 6))
                  precision    recall  f1-score   support
    <BLANKLINE>
               a     1.0000    0.7500    0.8571         4
               b     0.6667    1.0000    0.8000         2
    <BLANKLINE>
        accuracy                         0.8333         6
       macro avg     0.8333    0.8750    0.8286         6
    weighted avg     0.8889    0.8333    0.8381         6
    """
    width = max(12, *(len(c) for c in classes))
    lines = [f"{'':>{width}} {'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}", ""]
    for i, c in enumerate(classes):
        lines.append(f"{c:>{width}} {scores.precision[i]:>10.4f}{scores.recall[i]:>10.4f}{scores.f1[i]:>10.4f}"
                     f"{int(scores.support[i]):>10}")
    total = scores.macro["support"]
    lines += ["", f"{'accuracy':>{width}} {'':>10}{'':>10}{accuracy:>10.4f}{total:>10}"]
    for name, avg in (("macro avg", scores.macro), ("weighted avg", scores.weighted)):
        lines.append(f"{name:>{width}} {avg['precision']:>10.4f}{avg['recall']:>10.4f}{avg['f1']:>10.4f}"
                     f"{total:>10}")
    return "\n".join(lines)


def _nan_to_none(value) -> float | None:
    """JSON has no NaN: a class without test rows has accuracy None."""
    value = float(value)
    return None if math.isnan(value) else value


def predict_proba_batches(params, chunk, norm_stage) -> np.ndarray:
    """(n, n_classes) probabilities of a whole chunk, computed batch by batch."""
    parts = [fnn.predict_proba(params, b.x) for b in _data.eval_batches(chunk, norm_stage)]
    return np.concatenate(parts) if parts else np.zeros((0, _data.N_CLASSES), np.float32)


def evaluate_command(args) -> int:
    """``fnn evaluate RUN_DIR``: test loss, accuracy, per-class accuracy, top confusions and the matrix."""
    run_dir = Path(args.run_dir)
    model = load_run(run_dir, args.checkpoint)
    chunk, where = _data.run_test_set(run_dir, test=args.test, dataset=args.dataset, data_dir=args.data_dir)
    if chunk.x.shape[1] == model.n_features - 1:          # the first pixel column was taken for the label
        raise UsageError(f"{where}: {model.n_features} columns, the model's {model.n_features} pixels and no label: "
                         "fnn evaluate needs a label first on each row (fnn predict classifies unlabelled rows)")
    _data.check_width(chunk, model.n_features, where)
    warn_other_dataset(model, args.dataset, "fnn evaluate")
    n_classes, classes = model.sizes[-1], list(model.classes)
    norm = _data.normalizer(model.normalization, model.dtype)
    result = fnn.evaluate(model.params, _data.eval_batches(chunk, norm), n_classes=n_classes)
    confusion = np.asarray(result.confusion)
    off = [(int(confusion[t, p]), classes[t], classes[p]) for t in range(n_classes) for p in range(n_classes)
           if t != p and confusion[t, p] > 0]
    top = sorted(off, key=lambda c: -c[0])[:5]
    report = {"data": str(where), "checkpoint": args.checkpoint, "n": int(result.n),
              "loss": float(result.loss), "accuracy": float(result.accuracy),
              "per_class_accuracy": dict(zip(classes, map(_nan_to_none, result.per_class_accuracy))),
              "top_confusions": [{"true": t, "predicted": p, "count": c} for c, t, p in top],
              "classes": classes, "confusion": confusion.tolist(), **scores_json(result.scores)}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{run_dir} ({args.checkpoint}.npz) on {where}: {report['n']} rows")
    print(f"loss: {report['loss']:.4f} - accuracy: {report['accuracy']:.4f}")
    print("per-class accuracy:")
    width = max(len(c) for c in classes)
    for c, a in report["per_class_accuracy"].items():
        print(f"  {c:>{width}}: {'-' if a is None else format(a, '.4f')}")
    print(classification_report(result.scores, classes, report["accuracy"]))
    print("top confusions (true -> predicted: count):")
    for c, t, p in top:
        print(f"  {t} -> {p}: {c}")
    print(confusion_table(confusion, classes))
    return 0


def warn_other_dataset(model, dataset: str | None, prog: str) -> None:
    """A warning on stderr when a named dataset is not the one the model was trained on."""
    if dataset and model.dataset in _data.CLASS_NAMES and dataset != model.dataset:
        print(f"{prog}: warning: {model.run_dir} was trained on {model.dataset}, this is {dataset}: "
              "expect chance-level results", file=sys.stderr)


def confusion_table(confusion: np.ndarray, classes: list[str]) -> str:
    """The confusion matrix as a text table (rows = true class, columns = predicted class).

    >>> print(confusion_table(np.array([[5, 1], [0, 7]]), ["a", "b"]))
    confusion matrix (rows = true, columns = predicted):
    true\\pred  a  b
            a  5  1
            b  0  7
    """
    labels = [c if len(c) <= 6 else c[:6].strip() for c in classes]
    cell = max(max(len(str(int(confusion.max()))) if confusion.size else 1, 1), max(len(c) for c in labels))
    head = "true\\pred"
    lines = ["confusion matrix (rows = true, columns = predicted):",
             f"{head}  " + "  ".join(f"{c:>{cell}}" for c in labels)]
    for label, row in zip(labels, confusion):
        lines.append(f"{label:>{len(head)}}  " + "  ".join(f"{int(v):>{cell}}" for v in row))
    return "\n".join(lines)
