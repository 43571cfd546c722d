"""The benchmark harness runs end to end in its quick mode and emits well-formed JSON (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench.py"


def _is_seconds(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value >= 0


def _check_summary(row, rounds):
    assert set(row) == {"median", "min", "max", "samples"}
    assert len(row["samples"]) == rounds
    assert all(_is_seconds(v) for v in row["samples"])
    assert row["min"] <= row["median"] <= row["max"]


@pytest.fixture(scope="module")
def quick_report():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_quick_json_structure(quick_report):
    report = quick_report
    assert set(report) >= {"machine", "settings", "configs", "data", "train", "notes", "load_after"}
    blas = report["machine"]["blas"]
    assert isinstance(blas["threads"], int) and blas["threads"] >= 1
    assert blas["name"]
    assert set(report["machine"]["env"]) >= {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    assert isinstance(report["machine"]["malloc"], str)
    settings = report["settings"]
    assert settings["quick"] is True and settings["rounds"] == 1 and settings["batch_size"] == 128
    assert settings["steps"] == -(-settings["rows"] // 128)

    assert set(report["configs"]) == {"a", "b"}
    expected = {"a": ([128, 64, 10], "sgd", 0.1), "b": ([256, 128, 10], "adam", 1e-3)}
    for key, cfg in report["configs"].items():
        assert (cfg["sizes"][1:], cfg["optimizer"], cfg["lr"]) == expected[key]
        timings = cfg["timings"]
        assert set(timings) == {"floor", "fed", "ours", "torch", "sklearn"}
        for name, row in timings.items():
            if row is None:  # an absent peer: skipped with a note
                assert name in ("torch", "sklearn")
                assert any(name in note for note in report["notes"])
                assert "skipped" in cfg["impl"][name]
            else:
                _check_summary(row, 1)
        ratio = cfg["ratios"]["ours/floor"]
        assert ratio["of_medians"] > 0 and ratio["of_mins"] > 0 and ratio["paired_min"] <= ratio["paired_max"]
        assert (cfg["ratios"]["ours/torch"] is None) == (timings["torch"] is None)
        assert cfg["ratios"]["ours/fed"]["of_medians"] > 0

    data = report["data"]
    for name in ("first_parse", "loadtxt", "cached_reload"):
        _check_summary(data[name], 1)
    assert data["reader"]
    assert report["train"] == {"skipped": "--quick"}


def test_table_output_and_argument_errors():
    """The table mode and argparse errors, without the peers (fast)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-peers", "--configs", "a"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ours/floor" in done.stdout and "config (a)" in done.stdout and "config (b)" not in done.stdout
    assert "BLAS" in done.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--rounds" in bad.stderr
