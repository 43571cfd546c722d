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

import contextlib
import csv
import io
import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
import numpy as np

import functional_nn as fnn
from functional_nn import checkpoint as ckpt
from functional_nn.app import schema as sc
from functional_nn.app.output import resume_command
from functional_nn.app.schema import RunFileError
from functional_nn.app.settings import (ACTIVATION_NAMES, DTYPES, MAX_COUNT, MAX_LAYERS, MAX_SEED, MAX_WIDTH,
                                        N_CLASSES, NORMALIZATIONS, UsageError, check, coerce_settings)
from functional_nn.params import Dense, readonly
from pipelines.io.atomic import atomic_write_bytes

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
REQUIRED_HISTORY = ("epoch", "loss", "accuracy")
MAX_HISTORY_BYTES = 256 << 20     # about a million epochs
RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.npz", "last.npz", "best.npz")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8 (newlines as given), atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _where(path: Path) -> str:
    """How errors name a run file: ``<run folder>: <file name>``."""
    return f"{path.parent}: {path.name}"


def make_run_dir(root: str | Path = "runs", *, now: float | None = None) -> Path:
    """Create and return a new ``runs/<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... when taken). Each name is claimed
    by an exclusive ``mkdir``, so two runs started in the same second never share a folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    Path(root).mkdir(parents=True, exist_ok=True)
    for n in range(1, 100_000):
        candidate = Path(root) / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise UsageError(f"{root}: no free run folder name for {stamp}")


def _is_stale_temp(name: str) -> bool:
    """A temporary file of this program's atomic writers: ``.<run file>.<random>.tmp``."""
    return name.startswith(".") and name.endswith(".tmp") and any(
        name.startswith(f".{known}.") for known in (*RUN_FILES, "report.html"))


def remove_stale_temps(run_dir: str | Path) -> list[str]:
    """Delete the temporary files a killed writer left in ``run_dir`` (and ``plots/``): only regular files named
    as this program's atomic writers name them. Call it holding the folder's lock. Returns the names removed."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "plots"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if _is_stale_temp(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    return removed


def user_files(run_dir: str | Path) -> list[str]:
    """What is in ``run_dir`` besides its lock and stale temporary files (empty: a fresh folder)."""
    try:
        return sorted(n for n in os.listdir(run_dir) if n != ".lock" and not _is_stale_temp(n))
    except FileNotFoundError:
        return []


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
    functional_nn.app.schema.RunFileError: runs/x: history.csv:2: loss is not a number: 'abc'
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
    where = _where(path)
    return parse_history(sc.read_text_file(path, where, max_bytes=MAX_HISTORY_BYTES), where=where)


# ------------------------------------------------------------------------------ config.json and metrics.json

def read_config(run_dir: str | Path) -> dict:
    """A run folder's config.json, checked exactly as the command line's settings are (``settings.check``).

    Every setting must be present with its type and within its range, and nothing else may be there; errors are
    one line, ``<run folder>: config.json: <key>: ...`` (a ``UsageError``: the CLI exits 2).
    """
    path = Path(run_dir) / "config.json"
    where = _where(path)
    try:
        raw = sc.read_json_file(path, where)
    except RunFileError as e:
        raise UsageError(str(e)) from None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a JSON object of settings, got {type(raw).__name__}")
    settings = coerce_settings(raw, where=where, complete=True)
    check(settings, {key: f"{where}: {key}" for key in settings})
    return settings


def run_config(run_dir: Path) -> dict:
    """A run folder's config.json validated (:func:`read_config`), or {} when the folder has none."""
    return read_config(run_dir) if (Path(run_dir) / "config.json").exists() else {}


def _square_counts(value, where):
    rows = sc.list_of(sc.list_of(sc.integer(0, 2 ** 62), max_len=N_CLASSES), min_len=1, max_len=N_CLASSES)(value,
                                                                                                           where)
    if any(len(row) != len(rows) for row in rows):
        raise RunFileError(f"{where}: expected a square matrix of counts ({len(rows)} rows of {len(rows)})")
    return rows


METRICS = sc.record(
    {"test_loss": sc.number(0), "test_accuracy": sc.number(0, 1),
     "per_class_accuracy": sc.list_of(sc.optional(sc.number(0, 1)), min_len=1, max_len=N_CLASSES),
     "confusion": _square_counts},
    {"n_test": sc.optional(sc.integer(0)), "best_epoch": sc.optional(sc.integer(0, MAX_COUNT)),
     "epochs_run": sc.integer(0, MAX_COUNT),
     "stopped_early": sc.boolean, "classes": sc.list_of(sc.string(max_len=200), min_len=1, max_len=N_CLASSES)})


def read_metrics(run_dir: str | Path) -> dict:
    """A run folder's metrics.json, checked against ``METRICS``: the numbers in range, the confusion matrix square
    with one per-class accuracy (and class name) per row, and ``n_test`` its total. ``RunFileError`` otherwise."""
    path = Path(run_dir) / "metrics.json"
    where = _where(path)
    metrics = METRICS(sc.read_json_file(path, where), where)
    k = len(metrics["confusion"])
    for key in ("per_class_accuracy", "classes"):
        if key in metrics and len(metrics[key]) != k:
            raise RunFileError(f"{where}: {key}: expected {k} entries (one per row of confusion), "
                               f"got {len(metrics[key])}")
    total = sum(map(sum, metrics["confusion"]))
    if metrics.get("n_test") is not None and metrics["n_test"] != total:
        raise RunFileError(f"{where}: n_test: {metrics['n_test']}, but the confusion matrix counts {total} rows")
    return metrics


# ----------------------------------------------------------------------------------------------- model files

def _normalization(n_features: int) -> sc.Check:
    def check(value, where):
        kind = sc.record({"kind": sc.choice(NORMALIZATIONS)})(value, where)["kind"]
        if kind == "scale":
            return {"kind": kind}
        stats = sc.record({"mean": sc.list_of(sc.number(0, 255), min_len=n_features, max_len=n_features),
                           "std": sc.list_of(sc.number(1e-6, 255), min_len=n_features, max_len=n_features)}
                          )(value, where)
        return {"kind": kind, "mean": stats["mean"], "std": stats["std"]}
    return check


def _image_shape(n_features: int) -> sc.Check:
    def check(value, where):
        shape = sc.list_of(sc.integer(1, MAX_WIDTH), min_len=2, max_len=2)(value, where)
        if shape[0] * shape[1] != n_features:
            raise RunFileError(f"{where}: {shape[0]}x{shape[1]} images, but the model takes {n_features} inputs")
        return shape
    return check


PROGRESS = sc.record(
    {"epoch": sc.integer(0, MAX_COUNT), "batch": sc.integer(0), "step": sc.integer(0),
     "partial": sc.optional(sc.record({"loss_sum": sc.number(0), "correct": sc.integer(0), "rows": sc.integer(0),
                                       "seconds": sc.number(0)})),
     "best_value": sc.optional(sc.number()), "best_epoch": sc.integer(0, MAX_COUNT),
     "bad_epochs": sc.integer(0, MAX_COUNT), "finished": sc.boolean, "stopped_early": sc.boolean})


def _progress(value, where):
    p = PROGRESS(value, where)
    if (p["batch"] > 0) != (p["partial"] is not None):
        raise RunFileError(f"{where}: partial: expected the running sums exactly when batch > 0")
    if p["partial"] is not None and p["partial"]["correct"] > p["partial"]["rows"]:
        raise RunFileError(f"{where}: partial: more correct rows than rows")
    if p["best_epoch"] > p["epoch"] or (p["best_value"] is None) != (p["best_epoch"] == 0):
        raise RunFileError(f"{where}: best_epoch: {p['best_epoch']} does not fit epoch {p['epoch']} "
                           f"and best_value {p['best_value']}")
    return p


MODEL_KINDS = ("model", "best", "last")


def check_model_meta(meta: dict, params, where: str, *, kind: str = "model") -> dict:
    """The metadata of a run's model file checked against its schema and its arrays; returns it cleaned.

    Args:
        meta: the ``meta`` dict of a checkpoint written by ``fnn train``.
        params: its parameters (a tuple of ``Dense``).
        where: the file, for error messages.
        kind: ``"last"`` also requires ``progress`` (the training state), which the others may lack.

    Raises:
        RunFileError: one line naming the file and the field.
    """
    if not (isinstance(params, tuple) and params and all(isinstance(p, Dense) for p in params)):
        raise RunFileError(f"{where}: params: expected the layers of an MLP (a tuple of Dense)")
    meta = sc.record({"sizes": sc.list_of(sc.integer(1, MAX_WIDTH), min_len=2, max_len=MAX_LAYERS + 2),
                      "activation": sc.choice(ACTIVATION_NAMES)})(meta, where)
    sizes = meta["sizes"]
    n_features = sizes[0]
    shapes = [(int(p.w.shape[0]), int(p.w.shape[1])) for p in params]
    if shapes != list(zip(sizes[:-1], sizes[1:])):
        raise RunFileError(f"{where}: sizes: {'-'.join(map(str, sizes))}, but the weights are "
                           f"{', '.join(f'{a}x{b}' for a, b in shapes)}")
    if sizes[-1] != N_CLASSES:
        raise RunFileError(f"{where}: sizes: the model has {sizes[-1]} outputs, fnn's models have {N_CLASSES}")
    dtype = str(params[0].w.dtype)
    if dtype not in DTYPES:
        raise RunFileError(f"{where}: params: {dtype} weights, expected one of {', '.join(DTYPES)}")
    fields = {"normalization": _normalization(n_features)}
    optional = {
        "classes": sc.list_of(sc.string(max_len=200), min_len=N_CLASSES, max_len=N_CLASSES),
        "dtype": sc.choice((dtype,)), "image_shape": sc.optional(_image_shape(n_features)),
        "seed": sc.integer(0, MAX_SEED), "epoch": sc.integer(0, MAX_COUNT),
        "dataset": sc.optional(sc.string()), "diverged": sc.string(max_len=1 << 16),
        "dataset_sha256": sc.optional(_sha256s), "versions": sc.record({})}
    if kind == "last":
        fields["progress"] = _progress
    else:
        optional["progress"] = _progress
    return sc.record(fields, optional)(meta, where)


def _sha256s(value, where):
    if not isinstance(value, dict) or len(value) > 16:
        raise sc.fail(where, "a JSON object of file names to SHA-256 digests", value)
    for name, digest in value.items():
        if (not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)
                or len(name) > 4096):
            raise RunFileError(f"{where}: {name[:60]!r}: expected a SHA-256 hex digest, got {digest!r:.70}")
    return value


def read_checkpoint(path: str | Path, kind: str = "model") -> ckpt.Checkpoint:
    """One of a run's model files (model.npz, best.npz, last.npz) read and checked: the core's checks of the
    archive (``checkpoint.load``) and then :func:`check_model_meta` of its metadata against its arrays.

    Raises:
        RunFileError: for any fault, one line naming the file (``runs/x: last.npz: sizes: ...``).
    """
    path = Path(path)
    where = _where(path)
    sc.check_regular_file(path, where)
    try:
        loaded = ckpt.load(path)
    except ckpt.CheckpointError as e:
        raise RunFileError(str(e)) from None
    meta = check_model_meta(loaded.meta, loaded.params, where, kind=kind)
    return ckpt.Checkpoint(params=loaded.params, meta=meta, opt_state=loaded.opt_state)


def load_run_model(run_dir: str | Path, which: str = "model"):
    """(params, meta) of a run folder's model.npz / best.npz / last.npz, checked (:func:`read_checkpoint`), or a
    one-line error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    path = run_dir / f"{which}.npz"
    if not path.exists():
        if which == "model" and (run_dir / "last.npz").exists():
            if read_checkpoint(run_dir / "last.npz", "last").meta.get("diverged"):
                raise UsageError(f"{path}: missing: the run diverged (its last good weights: --checkpoint last)")
            raise UsageError(f"{path}: missing: the run did not finish (resume it with "
                             f"{resume_command(run_dir)}, or pass --checkpoint last)")
        raise UsageError(f"{path}: missing (is {run_dir} a run folder made by fnn train?)")
    loaded = read_checkpoint(path, which)
    return loaded.params, loaded.meta


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
