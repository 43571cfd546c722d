"""scripts/train_mnist.py runs (one epoch on small data) and matches `fnn train` with the same settings."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from functional_nn.app.cli import main as fnn_main
from tests.synthetic import write_digits

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "train_mnist.py"


FIXTURES = REPO_ROOT / "data" / "fixtures"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Synthetic digit-like CSVs with a few hundred rows (the committed real fixture has only 40)."""
    root = tmp_path_factory.mktemp("digits")
    return write_digits(root / "train.csv", 400, 1), write_digits(root / "test.csv", 100, 2)


def test_script_one_epoch_runs_on_the_fixture_data():
    train, test = FIXTURES / "mnist_test_40.csv", FIXTURES / "mnist40-images-idx3-ubyte.gz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--train", str(train),
                             "--test", str(test)], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Epoch 1 - loss: ") and lines[-1].startswith("Test - loss: ")


def test_script_matches_fnn_train_with_the_same_settings(files, tmp_path, capsys):
    train, test = files
    script_main = runpy.run_path(str(SCRIPT), run_name="train_mnist")["main"]
    settings = ["--epochs", "6", "--hidden", "32", "--seed", "3", "--batch-size", "64", "--lr", "0.05",
                "--patience", "1"]
    result = script_main(["--train", str(train), "--test", str(test), *settings])
    run = tmp_path / "run"
    assert fnn_main(["train", "--train", str(train), "--test", str(test), "--out", str(run), "--no-plots",
                     "--data-dir", str(tmp_path / "cache"), "--quiet", "--early-stopping", "--warmup-epochs", "1",
                     *settings]) == 0                              # the script warms up for one epoch
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped_early"]                                # the high lr makes early stopping end both
    assert metrics["test_accuracy"] == result.accuracy            # same split, batches and steps: identical
    assert metrics["test_loss"] == pytest.approx(result.loss, rel=1e-12)


def test_script_runs_from_a_checkout_without_installing_and_needs_test_with_train(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    train = FIXTURES / "mnist_test_40.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--train", str(train)], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and "--train needs --test" in result.stderr, result.stderr
    result = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--hidden", "8", "--train", str(train),
                             "--test", str(train)], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
