"""Run folders (the ``fnn`` command's I/O edge): atomic writes, config.json, history.csv, metrics.json.

A run folder is *complete* when ``metrics.json`` exists: it is the last file ``fnn train`` writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.npz", "last.npz", "best.npz")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp files are private (0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history.csv as dicts: epoch int, other fields float or None for empty cells."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append({k: (int(v) if k == "epoch" else (float(v) if v not in ("", None) else None))
                         for k, v in row.items() if k in HISTORY_FIELDS})
        return rows
