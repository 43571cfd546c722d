"""Reading a run folder for the report: config.json, history.csv and metrics.json, validated into a ``Run``.

Holds ``ReportError``, the ``Run`` record, ``read_run`` and ``best_epoch`` (which epoch the pictures mark).
history.csv is read through ``functional_nn.app.runs.read_history`` (its one schema and reader).
Imports: the standard library, numpy, attrs, ``functional_nn.params`` and ``functional_nn.app.runs``; never
matplotlib or Pillow.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from functional_nn.app.runs import History, RunFileError, read_history
from functional_nn.params import readonly


class ReportError(ValueError):
    """A run folder (or the arrays given with it) cannot be drawn; the message is one line naming what is wrong."""


@attrs.frozen(eq=False)
class Run:
    """A validated run folder: ``config`` (dict), ``history`` (History), ``metrics`` (dict, lists as arrays)."""

    name: str
    config: dict
    history: History
    metrics: dict


def _load_json_object(run_dir: Path, name: str) -> dict:
    path = run_dir / name
    if not path.is_file():
        raise ReportError(f"{run_dir}: {name} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{run_dir}: {name}: cannot read: {e}") from e
    except json.JSONDecodeError as e:
        raise ReportError(f"{run_dir}: {name}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(data, dict):
        raise ReportError(f"{run_dir}: {name}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_history(run_dir: Path) -> History:
    try:
        history = read_history(run_dir / "history.csv")
    except RunFileError as e:
        raise ReportError(str(e)) from None
    if len(history) == 0:
        raise ReportError(f"{run_dir}: history.csv has no epochs (header only): the run is incomplete")
    return history


def _read_metrics(run_dir: Path) -> dict:
    name = "metrics.json"
    raw = _load_json_object(run_dir, name)
    where = f"{run_dir}: {name}"
    for key in ("test_loss", "test_accuracy", "per_class_accuracy", "confusion"):
        if key not in raw:
            raise ReportError(f"{where}: {key!r} is missing")
    metrics = dict(raw)
    for key in ("test_loss", "test_accuracy"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ReportError(f"{where}: {key!r} must be a finite number, got {value!r}")
        metrics[key] = float(value)
    if not 0.0 <= metrics["test_accuracy"] <= 1.0:
        raise ReportError(f"{where}: 'test_accuracy' must be a fraction in [0, 1], got {metrics['test_accuracy']}")
    try:
        confusion = np.asarray(raw["confusion"], dtype=np.float64)
    except (TypeError, ValueError):
        confusion = np.zeros((0,))
    k = confusion.shape[0] if confusion.ndim == 2 else 0
    if (confusion.ndim != 2 or k < 1 or confusion.shape[1] != k or not np.all(np.isfinite(confusion))
            or np.any(confusion < 0) or np.any(confusion % 1)):
        raise ReportError(f"{where}: 'confusion' must be a square list of lists of non-negative counts")
    metrics["confusion"] = readonly(confusion.astype(np.int64))
    per_class = raw["per_class_accuracy"]
    try:
        per_class = np.asarray([math.nan if v is None else v for v in per_class], dtype=np.float64)
    except (TypeError, ValueError):
        per_class = np.zeros((0,))
    if per_class.shape != (k,):
        raise ReportError(f"{where}: 'per_class_accuracy' must be a list of {k} numbers (one per confusion row)")
    finite = per_class[np.isfinite(per_class)]
    if np.any((finite < 0) | (finite > 1)):
        raise ReportError(f"{where}: 'per_class_accuracy' values must be fractions in [0, 1]")
    metrics["per_class_accuracy"] = readonly(per_class)
    classes = raw.get("classes")
    if classes is not None:
        if (not isinstance(classes, list) or len(classes) != k
                or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)):
            raise ReportError(f"{where}: 'classes' must be a list of {k} names")
        metrics["classes"] = [str(c) for c in classes]
    for key in ("best_epoch", "n_test"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ReportError(f"{where}: {key!r} must be an integer, got {value!r}")
    return metrics


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read and validate a run folder's ``config.json``, ``history.csv`` and ``metrics.json``.

    Args:
        run_dir: the run folder written by ``fnn train``.

    Returns:
        ``Run(name, config, history, metrics)``; ``metrics["confusion"]`` is an int64 (k, k) array and
        ``metrics["per_class_accuracy"]`` a float64 (k,) array.

    Raises:
        ReportError: a one-line message naming the missing or malformed file, e.g. ``runs/x: history.csv is missing``.
    """
    path = Path(run_dir)
    if not path.exists():
        raise ReportError(f"{path}: run folder is missing")
    if not path.is_dir():
        raise ReportError(f"{path}: not a folder (expected a run folder from fnn train)")
    config = _load_json_object(path, "config.json")
    history = _read_history(path)
    metrics = _read_metrics(path)
    return Run(name=path.resolve().name, config=config, history=history, metrics=metrics)


def best_epoch(history: History, metrics: Mapping[str, Any]) -> int | None:
    """The epoch to mark as best: ``metrics["best_epoch"]`` when it is one of the run's epochs, else the epoch
    with the lowest finite ``val_loss``, else None (no validation, no marker)."""
    epochs = history.epoch.astype(np.int64)
    stated = metrics.get("best_epoch")
    if stated is not None and int(stated) in epochs.tolist():
        return int(stated)
    finite = np.isfinite(history.val_loss)
    if not finite.any():
        return None
    return int(epochs[finite][np.argmin(history.val_loss[finite])])
