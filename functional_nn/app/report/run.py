"""Reading a run folder for the report: config.json, history.csv and metrics.json, validated into a ``Run``.

Holds ``ReportError``, the ``Run`` record, ``read_run`` and ``best_epoch`` (which epoch the pictures mark).
history.csv is read through ``functional_nn.app.runs.read_history`` (its one schema and reader).
Imports: the standard library, numpy, attrs, ``functional_nn.params`` and ``functional_nn.app.runs``; never
matplotlib or Pillow.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from functional_nn.app.runs import History, RunFileError, read_config, read_history, read_metrics
from functional_nn.app.settings import UsageError
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


def _read_history(run_dir: Path) -> History:
    try:
        history = read_history(run_dir / "history.csv")
    except RunFileError as e:
        raise ReportError(str(e)) from None
    if len(history) == 0:
        raise ReportError(f"{run_dir}: history.csv has no epochs (header only): the run is incomplete")
    return history


def _read_metrics(run_dir: Path) -> dict:
    """metrics.json through its one reader (``runs.read_metrics``), its lists as read-only arrays."""
    try:
        metrics = read_metrics(run_dir)
    except RunFileError as e:
        raise ReportError(str(e)) from None
    metrics["confusion"] = readonly(np.asarray(metrics["confusion"], dtype=np.int64))
    metrics["per_class_accuracy"] = readonly(np.asarray(
        [math.nan if v is None else v for v in metrics["per_class_accuracy"]], dtype=np.float64))
    return metrics


def _read_config(run_dir: Path) -> dict:
    try:
        return read_config(run_dir)
    except (RunFileError, UsageError) as e:
        raise ReportError(str(e)) from None


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
    config = _read_config(path)
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
