"""Run folders (the ``fnn`` command's I/O edge): config.json, history.csv, metrics.json, the training progress
kept in last.npz, and reading a trained run's model.

A run folder is *complete* when ``metrics.json`` exists: it is the last file ``fnn train`` writes.

history.csv has one schema, kept here with its writer and its one validating reader side by side:
``HISTORY_FIELDS`` in that order, ``REQUIRED_HISTORY`` never empty, epochs whole numbers from 1, increasing,
accuracies fractions in [0, 1]. ``history_text(rows)`` writes it; ``read_history(path) -> History`` reads and
validates it (``RunFileError`` naming the file otherwise); ``History.rows()`` gives the rows back as dicts
(what ``history_text`` takes, e.g. to rewrite the file on resume).

last.npz holds the parameters and optimizer state of a :class:`functional_nn.TrainState` and, as JSON metadata,
the rest of it (``progress_meta``; ``state_from_progress`` is the inverse, with the best epoch's parameters from
best.npz).

Imports: the standard library, numpy, attrs, the core (records, checkpoint), the app's settings and output texts,
and the atomic writer of ``pipelines.io.atomic`` (its one home outside the core).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
import numpy as np

import functional_nn as fnn
from functional_nn import checkpoint as ckpt
from functional_nn.app.output import resume_command
from functional_nn.app.settings import UsageError
from functional_nn.params import readonly
from pipelines.io.atomic import atomic_write_bytes

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
REQUIRED_HISTORY = ("epoch", "loss", "accuracy")
RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.npz", "last.npz", "best.npz")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8 (newlines as given), atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path) -> dict:
    """Read a JSON object; ``ValueError`` with the path if it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def default_run_dir(root: str | Path = "runs", *, now: float | None = None) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>``, with a ``-2``, ``-3``... suffix when that folder already exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = Path(root) / stamp
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{stamp}-{n}")
    return candidate


def is_complete(run_dir: str | Path) -> bool:
    """True when ``fnn train`` finished in ``run_dir`` (its last file, metrics.json, exists)."""
    return (Path(run_dir) / "metrics.json").is_file()


def clear_run_files(run_dir: str | Path) -> None:
    """Remove the files a run writes (and ``plots/``), leaving anything else in the folder alone."""
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / "plots").is_dir():
        shutil.rmtree(run_dir / "plots")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def history_text(rows: Iterable[Mapping]) -> str:
    """history.csv text: the header, then one row per finished epoch (empty cells for missing values).

    >>> print(history_text([{"epoch": 1, "loss": 0.5, "accuracy": 0.75, "val_loss": None,
    ...                      "val_accuracy": None, "lr": 0.001, "seconds": 1.25}]), end="")
    epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds
    1,0.5,0.75,,,0.001,1.25
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in HISTORY_FIELDS])
    return out.getvalue()


class RunFileError(ValueError):
    """A run folder's file is missing or malformed; the message is one line naming the file."""


@attrs.frozen(eq=False)
class History:
    """history.csv as read-only float64 columns of equal length (one entry per finished epoch); NaN where empty."""

    epoch: np.ndarray = attrs.field(converter=readonly)
    loss: np.ndarray = attrs.field(converter=readonly)
    accuracy: np.ndarray = attrs.field(converter=readonly)
    val_loss: np.ndarray = attrs.field(converter=readonly)
    val_accuracy: np.ndarray = attrs.field(converter=readonly)
    lr: np.ndarray = attrs.field(converter=readonly)
    seconds: np.ndarray = attrs.field(converter=readonly)

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def has_validation(self) -> bool:
        return bool(np.isfinite(self.val_loss).any() or np.isfinite(self.val_accuracy).any())

    def rows(self) -> list[dict]:
        """The epochs as dicts, as ``history_text`` takes them: epoch int, the rest float, None where empty.

        >>> History(*([[1.0]] * 3), *([[math.nan]] * 4)).rows()[0]["val_loss"] is None
        True
        """
        columns = [getattr(self, k).tolist() for k in HISTORY_FIELDS]
        return [{k: int(v) if k == "epoch" else (None if math.isnan(v) else v) for k, v in zip(HISTORY_FIELDS, row)}
                for row in zip(*columns)]


def _history_cell(where: str, col: str, cell: str) -> float:
    if cell == "":
        if col in REQUIRED_HISTORY:
            raise RunFileError(f"{where}: {col} is empty")
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise RunFileError(f"{where}: {col} is not a number: {cell!r}") from None
    if not math.isfinite(value) and col in REQUIRED_HISTORY:
        raise RunFileError(f"{where}: {col} is not finite: {cell!r}")
    return value


def parse_history(text: str, *, where: str = "history.csv") -> History:
    """Validate history.csv text (blank lines skipped) into a ``History``; errors start with ``where``.

    Raises:
        RunFileError: no header, a required column missing from it or empty in a row, a row of the wrong length,
            a cell that is not a number, epochs that are not whole numbers from 1 increasing, an accuracy
            outside [0, 1].

    >>> h = parse_history(history_text([{"epoch": 1, "loss": 0.5, "accuracy": 0.75}]))
    >>> h.epoch.tolist(), h.loss.tolist(), h.has_validation
    ([1.0], [0.5], False)
    >>> parse_history("epoch,loss,accuracy\\n1,abc,0.5\\n", where="runs/x: history.csv")
    Traceback (most recent call last):
    ...
    functional_nn.app.runs.RunFileError: runs/x: history.csv:2: loss is not a number: 'abc'
    """
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in r)]
    except csv.Error as e:
        raise RunFileError(f"{where}: cannot read: {e}") from None
    if not rows:
        raise RunFileError(f"{where} is empty (expected header {','.join(HISTORY_FIELDS)})")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_HISTORY if c not in header]
    if missing:
        raise RunFileError(f"{where}: header lacks column(s) {', '.join(missing)} "
                           f"(expected {','.join(HISTORY_FIELDS)})")
    columns: dict[str, list[float]] = {c: [] for c in HISTORY_FIELDS}
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RunFileError(f"{where}:{line_no}: expected {len(header)} fields, got {len(row)}")
        cells = dict(zip(header, (cell.strip() for cell in row)))
        for col in HISTORY_FIELDS:
            columns[col].append(_history_cell(f"{where}:{line_no}", col, cells.get(col, "")))
    history = History(**{c: np.asarray(v, dtype=np.float64) for c, v in columns.items()})
    epochs = history.epoch
    if len(epochs) and (np.any(np.diff(epochs) <= 0) or epochs[0] < 1 or np.any(epochs % 1)):
        raise RunFileError(f"{where}: epoch must be whole numbers from 1, increasing")
    for col in ("accuracy", "val_accuracy"):
        values = getattr(history, col)
        finite = values[np.isfinite(values)]
        if np.any((finite < 0) | (finite > 1)):
            raise RunFileError(f"{where}: {col} must be a fraction in [0, 1]")
    return history


def read_history(path: str | Path) -> History:
    """Read and validate a history.csv (``parse_history``); a header alone is a valid history of no epochs.

    Args:
        path: the file, usually ``run_dir / "history.csv"``.

    Returns:
        ``History``: read-only float64 columns, NaN for empty cells; ``.rows()`` gives dicts back.

    Raises:
        RunFileError: one line starting ``<run folder>: history.csv`` (the folder, then the file name), e.g.
            ``runs/x: history.csv is missing`` or ``runs/x: history.csv:3: loss is not a number: 'abc'``.
    """
    path = Path(path)
    where = f"{path.parent}: {path.name}"
    if not path.is_file():
        raise RunFileError(f"{where} is missing")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{where}: cannot read: {e}") from None
    return parse_history(text, where=where)


# ----------------------------------------------------------------------------------- a trained run's model

def load_run_model(run_dir: str | Path, which: str = "model"):
    """(params, meta) of a run folder's model.npz / best.npz / last.npz, or a one-line UsageError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    path = run_dir / f"{which}.npz"
    if not path.is_file():
        if which == "model" and (run_dir / "last.npz").is_file():
            if ckpt.load(run_dir / "last.npz").meta.get("diverged"):
                raise UsageError(f"{path}: missing: the run diverged (its last good weights: --checkpoint last)")
            raise UsageError(f"{path}: missing: the run did not finish (resume it with "
                             f"{resume_command(run_dir)}, or pass --checkpoint last)")
        raise UsageError(f"{path}: missing (is {run_dir} a run folder made by fnn train?)")
    loaded = ckpt.load(path)
    for key in ("sizes", "normalization"):
        if key not in loaded.meta:
            raise UsageError(f"{path}: no '{key}' in its metadata (not written by fnn train)")
    return loaded.params, loaded.meta


def run_config(run_dir: Path) -> dict:
    """A run folder's config.json ({} when it has none), or a one-line UsageError when it is not valid JSON."""
    path = run_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        return read_json(path)
    except ValueError as e:
        raise UsageError(str(e)) from None


# ------------------------------------------------------------------ training progress (last.npz metadata)

def progress_meta(state: fnn.TrainState, *, seconds: float = 0.0, finished: bool = False,
                  stopped_early: bool = False) -> dict:
    """The JSON record of a training state that last.npz keeps (its arrays are saved beside it)."""
    best, m = state.best, state.metrics
    partial_sums = ({"loss_sum": float(m.loss_sum), "correct": int(m.correct), "rows": int(m.rows),
                     "seconds": seconds} if state.batch else None)
    return {"epoch": int(state.epoch), "batch": int(state.batch), "step": int(state.step), "partial": partial_sums,
            "best_value": None if best is None else float(best.value),
            "best_epoch": 0 if best is None else int(best.epoch),
            "bad_epochs": 0 if best is None else int(best.bad_epochs),
            "finished": finished, "stopped_early": stopped_early}


def state_from_progress(progress: Mapping, params, opt_state, best_params=None) -> tuple[fnn.TrainState, float]:
    """``(state, seconds)`` to resume from: the inverse of :func:`progress_meta` (best params from best.npz)."""
    sums = progress["partial"] if progress["batch"] else None
    metrics = fnn.EpochMetrics(loss_sum=sums["loss_sum"], correct=sums["correct"], rows=sums["rows"]) if sums else None
    best = None
    if progress["best_value"] is not None:
        best = fnn.Best(value=progress["best_value"], epoch=progress["best_epoch"],
                        bad_epochs=progress["bad_epochs"], params=best_params)
    state = fnn.TrainState(params=params, opt_state=opt_state, epoch=progress["epoch"], step=progress["step"],
                           batch=progress["batch"], metrics=metrics, best=best)
    return state, (float(sums["seconds"]) if sums else 0.0)
