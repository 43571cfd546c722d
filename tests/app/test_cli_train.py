"""`fnn train` runs: resume after SIGINT is bitwise exact, divergence stops cleanly, resume rules."""

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from functional_nn import checkpoint, tree_leaves
from functional_nn.app.cli import main
from tests.app.interrupt import fnn_signalled_at_step
from tests.synthetic import write_digits

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return {"train": write_digits(root / "train.csv", 1200, 1), "test": write_digits(root / "test.csv", 100, 2),
            "cache": root / "cache"}


def base_args(data, run, *extra):
    return ["train", "--train", str(data["train"]), "--test", str(data["test"]), "--data-dir", str(data["cache"]),
            "--out", str(run), "--no-plots", *extra]


def assert_params_bitwise_equal(path_a, path_b):
    a, b = checkpoint.load(path_a).params, checkpoint.load(path_b).params
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# Dropout and random shifts on, so the resumed run must also replay the per-batch randomness exactly.
# 1080 training rows at batch 4: 270 batches per epoch.
RESUME_SETTINGS = ["--hidden", "64", "32", "--epochs", "3", "--batch-size", "4", "--dropout", "0.2",
                   "--augment-shift", "1", "--seed", "5"]
STEPS_PER_EPOCH = 270

@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(base_args(data, run, *RESUME_SETTINGS, "--quiet")) == 0
    return run


def assert_resumes_to(straight, run):
    assert not (run / "model.npz").exists() and not (run / "metrics.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "functional_nn.app.cli", "train", "--resume", str(run)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_params_bitwise_equal(straight / "model.npz", run / "model.npz")
    assert_params_bitwise_equal(straight / "last.npz", run / "last.npz")
    hist_a = (straight / "history.csv").read_text().splitlines()
    hist_b = (run / "history.csv").read_text().splitlines()
    drop_seconds = lambda rows: [r.rsplit(",", 1)[0] for r in rows]   # noqa: E731
    assert drop_seconds(hist_a) == drop_seconds(hist_b)
    metrics_a = json.loads((straight / "metrics.json").read_text())
    metrics_b = json.loads((run / "metrics.json").read_text())
    assert metrics_a["test_accuracy"] == metrics_b["test_accuracy"]


@pytest.mark.parametrize("sig, at, code, position", [
    (signal.SIGINT, STEPS_PER_EPOCH + 41, 130, (1, 41)),      # inside epoch 2: 40 batches done, then 1 more
    (signal.SIGTERM, 2 * STEPS_PER_EPOCH, 143, (2, 0)),       # during the last batch of epoch 2
])
def test_resume_after_a_signal_at_an_exact_batch_is_bitwise_equal(data, straight, tmp_path, sig, at, code,
                                                                   position):
    run = tmp_path / "interrupted"
    result = fnn_signalled_at_step(sig, at, base_args(data, run, *RESUME_SETTINGS))
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert f"Resume with: fnn train --resume {run}" in result.stderr
    progress = checkpoint.load(run / "last.npz").meta["progress"]
    assert (progress["epoch"], progress["batch"]) == position   # the batch in flight was finished first
    assert_resumes_to(straight, run)


def test_resume_refuses_fewer_epochs_than_a_run_interrupted_mid_epoch_has_started(data, tmp_path, capsys):
    run = tmp_path / "mid"
    settings = ["--hidden", "8", "--epochs", "3", "--batch-size", "64"]          # 17 batches per epoch
    assert fnn_signalled_at_step(signal.SIGINT, 17 + 5, base_args(data, run, *settings)).returncode == 130
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2     # epoch 2 is half done
    assert "--epochs may only grow (at least 2)" in capsys.readouterr().err
    assert not (run / "model.npz").exists() and not (run / "metrics.json").exists()


def test_resume_after_sigint_from_outside_is_bitwise_equal(data, tmp_path):
    settings = ["--hidden", "32", "--epochs", "40", "--batch-size", "1", "--seed", "2", "--dropout", "0.1"]
    small = {**data, "train": write_digits(tmp_path / "small.csv", 200, 4)}
    straight_run = tmp_path / "straight"
    assert main(base_args(small, straight_run, *settings, "--quiet")) == 0
    run = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "functional_nn.app.cli", *base_args(small, run, *settings)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()                 # the first epoch line: epoch 2 has begun
    assert first.startswith("Epoch 1/40"), first + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"fnn train --resume {run}" in err
    assert_resumes_to(straight_run, run)


def test_divergence_exits_nonzero_and_keeps_the_last_good_checkpoint(data, tmp_path, capsys):
    run = tmp_path / "diverged"
    status = main(base_args(data, run, "--hidden", "16", "--optimizer", "sgd", "--lr", "1e30",
                            "--lr-schedule", "constant", "--warmup-epochs", "0", "--epochs", "3"))
    err = capsys.readouterr().err
    assert status == 1
    assert "loss became" in err and "lower --lr" in err and "epoch 1, batch" in err
    assert main(["train", "--resume", str(run)]) == 2                   # it would only diverge again
    assert "diverged" in capsys.readouterr().err
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "diverged" in err and "--resume" not in err
    if importlib.util.find_spec("matplotlib") is not None:
        assert main(["report", str(run)]) == 2
        err = capsys.readouterr().err
        assert "diverged" in err and "--resume" not in err
    assert "Traceback" not in err
    last = checkpoint.load(run / "last.npz")
    assert all(np.isfinite(leaf).all() for leaf in tree_leaves(last.params))
    assert not (run / "model.npz").exists() and not (run / "metrics.json").exists()


def test_resume_refuses_changed_settings_and_reports_complete_runs(data, tmp_path, capsys):
    run = tmp_path / "done"
    assert main(base_args(data, run, "--hidden", "16", "--epochs", "1", "--quiet")) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--lr", "0.1"]) == 2
    assert "--lr cannot be changed" in capsys.readouterr().err
    assert main(["train", "--resume", str(run)]) == 0
    assert "complete" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0   # train further
    assert len((run / "history.csv").read_text().splitlines()) == 3
    assert (run / "metrics.json").is_file()
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    (run / "metrics.json").unlink()                        # stopped while writing the final files
    (run / "model.npz").unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert (run / "metrics.json").is_file() and (run / "model.npz").is_file()
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_resume_accepts_the_run_settings_repeated_unchanged(data, tmp_path, capsys):
    run = tmp_path / "again"
    config = tmp_path / "run.toml"
    config.write_text("hidden = [16]\nlr = 0.002\n")
    assert main(base_args(data, run, "--config", str(config), "--epochs", "1", "--quiet")) == 0
    capsys.readouterr()
    repeated = [a for a in base_args(data, run) if a not in ("--out", str(run))]
    assert main([*repeated, "--config", str(config), "--resume", str(run), "--epochs", "2", "--quiet"]) == 0, \
        capsys.readouterr().err
    assert len((run / "history.csv").read_text().splitlines()) == 3
    assert main(["train", "--resume", str(run), "--hidden", "32"]) == 2
    assert "--hidden cannot be changed with --resume (the run has [16]" in capsys.readouterr().err


def test_same_seed_same_model_different_seed_different_model(data, tmp_path):
    args = ("--hidden", "16", "--epochs", "1", "--quiet")
    assert main(base_args(data, tmp_path / "a", *args, "--seed", "3")) == 0
    assert main(base_args(data, tmp_path / "b", *args, "--seed", "3")) == 0
    assert main(base_args(data, tmp_path / "c", *args, "--seed", "4")) == 0
    assert_params_bitwise_equal(tmp_path / "a" / "model.npz", tmp_path / "b" / "model.npz")
    w_a = checkpoint.load(tmp_path / "a" / "model.npz").params[0].w
    w_c = checkpoint.load(tmp_path / "c" / "model.npz").params[0].w
    assert not np.array_equal(w_a, w_c)


@pytest.mark.parametrize("extra", [
    ["--optimizer", "nesterov", "--lr", "0.05", "--lr-schedule", "step"],
    ["--optimizer", "adamw", "--weight-decay", "0.01", "--lr-schedule", "exponential", "--clip-norm", "1"],
    ["--optimizer", "rmsprop", "--lr", "1e-3", "--normalize", "standardize", "--activation", "tanh",
     "--init", "glorot", "--dtype", "float64"],
    ["--early-stopping", "--patience", "1", "--l2", "1e-4", "--validation-fraction", "0.2"],
    ["--validation-fraction", "0", "--hidden"],
])
def test_option_combinations_train_and_evaluate(data, tmp_path, extra, capsys):
    run = tmp_path / "run"
    assert main(base_args(data, run, "--hidden", "16", "--epochs", "2", "--quiet", *extra)) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.3 < metrics["test_accuracy"] <= 1.0
    assert main(["evaluate", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_the_progress_bar_on_a_terminal_counts_batches_shows_the_loss_and_changes_no_bit(data, tmp_path,
                                                                                          monkeypatch):
    settings = ["--hidden", "8", "--epochs", "2", "--batch-size", "16"]       # 68 batches per epoch
    assert main(base_args(data, tmp_path / "plain", *settings, "--quiet")) == 0
    from functional_nn.app.output import Output
    bars = []

    class Bar:                                        # records what tqdm would be told
        def __init__(self, total, initial, desc):
            self.total, self.initial, self.n, self.desc = total, initial, initial, desc
            self.postfix, self.closed = [], False
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix(self, refresh=True, **values):
            self.postfix.append(values)

        def close(self):
            self.closed = True

    monkeypatch.setattr(Output, "shows_progress", lambda self: True)         # as if stderr were a terminal
    monkeypatch.setattr(Output, "progress_bar", lambda self, total, initial, desc: Bar(total, initial, desc))
    assert main(base_args(data, tmp_path / "bar", *settings)) == 0
    assert [(b.desc, b.total, b.n, b.closed) for b in bars] == [("Epoch 1/2", 68, 68, True),
                                                                 ("Epoch 2/2", 68, 68, True)]
    assert len(bars[0].postfix) == 3 and float(bars[0].postfix[-1]["loss"]) > 0      # every 20 batches
    assert_params_bitwise_equal(tmp_path / "plain" / "model.npz", tmp_path / "bar" / "model.npz")
    # a run resumed in the middle of epoch 2 starts that epoch's bar where it stopped
    interrupted = fnn_signalled_at_step(signal.SIGINT, 68 + 10, base_args(data, tmp_path / "resumed", *settings))
    assert interrupted.returncode == 130, interrupted.stderr
    bars.clear()
    assert main(["train", "--resume", str(tmp_path / "resumed")]) == 0
    assert [(b.desc, b.initial, b.n, b.closed) for b in bars] == [("Epoch 2/2", 10, 68, True)]
    assert_params_bitwise_equal(tmp_path / "plain" / "model.npz", tmp_path / "resumed" / "model.npz")
