"""End to end on the real MNIST download: a short `fnn train` (2 epochs) reaches >= 96.5% test accuracy."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_epochs_on_real_mnist_reach_96_5_percent(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "functional_nn.app.cli", "train", "--epochs", "2", "--warmup-epochs", "0.25",
           "--out", str(run), "--no-plots", "--log", "json"]
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 10000
    assert metrics["test_accuracy"] >= 0.965, metrics["test_accuracy"]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "test"]
