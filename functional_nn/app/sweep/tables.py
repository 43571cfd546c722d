"""The sweep's tables: ``trials.csv`` (one row per configuration and seed), ``summary.csv`` (per configuration, the
mean and standard deviation over its seeds, best first, like scikit-learn's ``cv_results_`` ranked) and
``best.toml`` (the best configuration's full settings, loadable by ``fnn train --config``).

``trials.csv`` is read back on ``--resume`` as untrusted input: a bounded regular UTF-8 file, parsed as CSV, rows
kept only for the spec's own trials and known statuses.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

from functional_nn.app import schema
from functional_nn.app.runs import atomic_write_text
from functional_nn.app.settings import UsageError
from functional_nn.app.sweep.spec import Spec

DONE = ("ok", "diverged", "stopped")          # finished: --resume keeps these rows
STATUSES = DONE + ("failed", "cancelled")     # not finished: --resume runs these trials again
RESULT_FIELDS = ("status", "epochs_run", "val_accuracy", "val_loss", "test_accuracy", "test_loss", "seconds",
                 "data_sha256", "error")
MAX_TABLE_BYTES = 64 << 20


def trials(spec: Spec) -> Iterator[tuple[str, int, dict, int]]:
    """``(name, config index, configuration, seed)`` of every trial, in the table's order."""
    for c, config in enumerate(spec.configs):
        for seed in spec.seeds:
            yield f"c{c:03d}-s{seed}", c, config, seed


def trial_fields(spec: Spec) -> tuple[str, ...]:
    return ("trial", "config", "seed", *sorted(spec.space), *RESULT_FIELDS)


def trial_row(spec: Spec, name: str, c: int, config: Mapping, seed: int, record: Mapping) -> dict:
    """A row of trials.csv: the trial, its swept settings (JSON), and what its record says."""
    return {"trial": name, "config": c, "seed": seed, **{k: json.dumps(config[k]) for k in sorted(spec.space)},
            **{k: "" if record.get(k) is None else record[k] for k in RESULT_FIELDS}}


def read_trials(path: Path, spec: Spec) -> dict[str, dict]:
    """The rows of an earlier ``trials.csv`` (none when there is none), by trial name."""
    if not path.exists():
        return {}
    try:
        text = schema.read_text_file(path, str(path), max_bytes=MAX_TABLE_BYTES)
    except schema.RunFileError as e:
        raise UsageError(str(e)) from None
    names = {name for name, *_ in trials(spec)}
    rows = {}
    try:
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("trial") in names and row.get("status") in STATUSES:
                rows[row["trial"]] = {k: (v if v is not None else "") for k, v in row.items() if k is not None}
    except csv.Error as e:
        raise UsageError(f"{path}: not a CSV table: {e}") from None
    return rows


def write_table(path: Path, fields, rows) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def number(value) -> float:
    """A table cell as a float (NaN when empty or not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def total_seconds(rows) -> float:
    """The seconds of the given rows together (a trial whose worker was lost has none)."""
    return sum(v for v in (number(r.get("seconds")) for r in rows) if not math.isnan(v))


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def summarize(spec: Spec, rows: Mapping[str, Mapping]) -> list[dict]:
    """Per configuration: the mean and (sample) standard deviation of the metric and of the test accuracy over its
    finished (ok) seeds, the worst seed's test accuracy, the counts of stopped and failed trials and the seconds
    of all its trials; best first (configurations without a finished seed last)."""
    out = []
    for c, config in enumerate(spec.configs):
        runs = [rows[t] for t, cc, _, _ in trials(spec) if cc == c and t in rows]
        ok = [r for r in runs if r.get("status") == "ok"]
        values = [v for v in (number(r.get(spec.metric)) for r in ok) if not math.isnan(v)]
        tests = [v for v in (number(r.get("test_accuracy")) for r in ok) if not math.isnan(v)]
        mean, std = _mean_std(values)
        test_mean, test_std = _mean_std(tests)
        out.append({"rank": 0, "config": c, **{k: json.dumps(v) for k, v in config.items()}, "seeds": len(values),
                    f"{spec.metric}_mean": mean, f"{spec.metric}_std": std,
                    "test_accuracy_mean": test_mean, "test_accuracy_std": test_std,
                    "test_accuracy_min": min(tests) if tests else math.nan,
                    "stopped": sum(r.get("status") == "stopped" for r in runs),
                    "not_ok": sum(r.get("status") in ("failed", "diverged", "cancelled") for r in runs),
                    "seconds": round(total_seconds(runs), 3)})

    def key(r):
        m = r[f"{spec.metric}_mean"]
        return (math.isnan(m), 0.0 if math.isnan(m) else (-m if spec.mode == "max" else m), r["config"])
    ranked = sorted(out, key=key)
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return ranked


def best_toml(spec: Spec, best: Mapping, sweep_dir: Path) -> str:
    """best.toml: the [train] table of the best configuration (base settings, then the swept ones)."""
    settings = {**spec.base, **spec.configs[best["config"]]}
    lines = [f"# The best configuration of the sweep {sweep_dir} ({spec.metric} {best[f'{spec.metric}_mean']:.6g}, "
             f"mean over {best['seeds']} seed(s)).",
             f"# Re-run it with: fnn train --config {sweep_dir / 'best.toml'} [--seed N]",
             "[train]"]
    # JSON's numbers, strings, booleans and lists are TOML's too
    lines += [f"{k.replace('_', '-')} = {json.dumps(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


__all__ = ["DONE", "RESULT_FIELDS", "STATUSES", "best_toml", "number", "read_trials", "summarize", "total_seconds",
           "trial_fields", "trial_row", "trials", "write_table"]
