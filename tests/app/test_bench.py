"""The benchmark harness (``functional_nn.app.bench``, run by ``scripts/bench.py`` and ``fnn bench``) runs end to end
in its quick mode and emits well-formed JSON (no timing is asserted); ``scripts/bench_step.py`` builds on it.
``test_wheel_install.py`` runs ``fnn bench`` from a wheel."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
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


# ------------------------------------------------------------------------------------------ scripts/bench_step.py
@pytest.fixture(scope="module")
def bench_step():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_step
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return bench_step


@pytest.mark.parametrize("key", ["a", "b"])
def test_inline_step_is_bitwise_the_library_step(bench_step, key):
    """bench_step's hand-written step must do exactly this project's arithmetic, or its comparison means nothing."""
    from functional_nn import init_mlp, make_train_step, optim, tree_leaves
    from functional_nn.app.bench.configs import BATCH_SIZE, CONFIGS, SEED
    from functional_nn.app.bench.feed import epoch_batches_factory

    rng = np.random.default_rng(0)
    x_u8, y = rng.integers(0, 256, (300, 20), dtype=np.uint8), rng.integers(0, 10, 300)  # 3 batches, last short
    config = {**CONFIGS[key], "sizes": (20, 12, 8, 10)}
    _, feed = epoch_batches_factory(x_u8, y, BATCH_SIZE)
    kept: list = []
    bench_step.make_inline(config, feed)(1, keep=kept)

    optimizer = getattr(optim, config["optimizer"])(config["lr"])
    params = init_mlp(np.random.default_rng(SEED), config["sizes"], activation=config["activation"])
    state, step = optimizer.init(params), make_train_step(optimizer)
    for xb, yb in feed(1):
        params, state, _ = step(params, state, xb, yb, None)
    assert len(kept) == len(tree_leaves(params))
    for inline_leaf, leaf in zip(kept, tree_leaves(params)):
        np.testing.assert_array_equal(inline_leaf, leaf)


@pytest.mark.slow
def test_bench_step_quick_runs_and_reports_every_row():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_step.py"), "--quick"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("(a) fed", "(a) inline", "(a) ours", "(a) overhead", "(b) fed", "(b) ours", "adam update"):
        assert row in done.stdout
    assert "(b) inline / fed" in done.stdout


@pytest.mark.parametrize("script", ["bench.py", "bench_step.py"])
@pytest.mark.parametrize("args, expected", [
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--data", "{tmp}/missing.csv"], "missing.csv: no such file"),
    (["--data", "{tmp}/bad.csv"], "bad.csv: cannot read it as an MNIST CSV"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, script, args, expected):
    (tmp_path / "bad.csv").write_text("label,a\n1,x\n")
    args = [a.format(tmp=tmp_path) for a in args]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_fnn_bench_names_itself_in_its_one_line_errors(capsys):
    from functional_nn.app.cli import main

    assert main(["bench", "--rounds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fnn bench: error: --rounds must be at least 1 (see fnn bench --help)"]


# ------------------------------------------------------------------------------ installs without a checkout
def test_quick_data_without_a_checkout_is_synthetic(tmp_path, monkeypatch):
    """From a wheel there is no data/fixtures: --quick writes QUICK_ROWS synthetic rows and says so."""
    from functional_nn.app.bench import data
    from functional_nn.app.bench.configs import QUICK_ROWS

    assert data.checkout_root() == REPO and data.find_fixture().parent == REPO / "data" / "fixtures"
    monkeypatch.setattr(data, "checkout_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    from pipelines.datasets import default_data_dir
    assert data.find_fixture() is None and data.data_dirs() == [default_data_dir(), Path("data")]
    csv, note = data.quick_csv(tmp_path)
    x_u8, y = data.load_training_csv(csv, "bench")
    assert x_u8.shape == (QUICK_ROWS, 784) and x_u8.dtype == np.uint8 and set(y) <= set(range(10))
    assert "synthetic" in note
    assert (f"no MNIST training CSV under {default_data_dir()}/ or data/ (run `fnn fetch`)"
            in data.missing_csv(None, "fnn bench"))


def test_fnn_bench_needs_no_checkout(tmp_path, monkeypatch, capsys):
    """fnn bench runs the package, not scripts/bench.py: without a checkout --quick still works (synthetic rows).

    test_wheel_install.py runs it from a real install."""
    from functional_nn.app import cli
    from functional_nn.app.bench import data

    monkeypatch.setattr(data, "checkout_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--quick", "--json", "--no-peers", "--configs", "a"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["data"] == "synthetic CSV" and report["configs"]["a"]["timings"]["ours"]["median"] > 0
    # fnn serve's round trip of one drawing (issue 14): measured here, never in a timed test
    assert report["serve"]["median"] > 0 and len(report["serve"]["samples"]) == 18


def test_fnn_train_child_runs_this_checkout_from_anywhere():
    """The measured `fnn train` imports the same functional_nn as the harness and finds fnn's data layout."""
    from functional_nn.app.bench import data, train_run

    env = train_run.child_env()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert "from functional_nn.app.cli import main" in train_run.FNN[1]
    assert data.dataset_dir(Path("/d/mnist/mnist_train.csv")) == Path("/d")
    assert data.dataset_dir(Path("/d/other.csv")) is None


def test_fnn_bench_leaves_the_allocator_to_its_malloc_flag(monkeypatch, capsys):
    """`fnn` tunes glibc's malloc at start for every command but bench, whose --malloc decides (default: as is)."""
    from functional_nn.app import cli
    from functional_nn.app.bench import machine

    calls = []
    monkeypatch.setattr(cli, "tune_malloc", lambda: calls.append("fnn"))
    monkeypatch.setattr(machine, "tune_malloc", lambda: calls.append("bench") or "tuned for the test")
    assert cli.main(["bench", "--quick", "--json", "--no-peers", "--no-train", "--configs", "a",
                     "--malloc", "default"]) == 0
    assert calls == [] and json.loads(capsys.readouterr().out)["machine"]["malloc"] == "glibc defaults"
    assert cli.main(["bench", "--quick", "--json", "--no-peers", "--no-train", "--configs", "a"]) == 0
    assert calls == ["bench"] and json.loads(capsys.readouterr().out)["machine"]["malloc"] == "tuned for the test"
    assert cli.main(["fetch", "--help"]) == 0
    assert calls == ["bench", "fnn"]


def test_measure_fnn_train_reports_time_memory_accuracy_and_epochs(tmp_path, monkeypatch):
    """The bench's whole-command measurement, on the fixture (its dataset preload made to fail: no download)."""
    from functional_nn.app.bench import train_run

    def offline(*args, **kwargs):
        raise RuntimeError("offline")
    monkeypatch.setattr(train_run.datasets, "load", offline)
    csv = REPO / "data" / "fixtures" / "mnist_test_40.csv"
    result = train_run.measure_fnn_train(["--train", str(csv), "--test", str(csv), "--epochs", "2", "--hidden", "8",
                                          "--no-plots"], tmp_path)
    assert result["returncode"] == 0 and result["data_cached"] is False, result
    assert result["epochs"] == 2 and len(result["epoch_seconds"]) == 2 and 0 <= result["test_accuracy"] <= 1
    assert result["peak_rss_mb"] > 10 and result["seconds"] > 0


def test_time_to_accuracy_flag_is_checked_and_reported():
    from functional_nn.app.bench.cli import parse_args
    from functional_nn.app.bench.report import _time_to_lines
    with pytest.raises(SystemExit) as e:
        parse_args(["--time-to", "1.5"])
    assert e.value.code == 2
    assert parse_args(["--time-to", "0.98"]).time_to == 0.98
    history = [{"epoch": 1, "train_seconds": 1.0, "test_accuracy": 0.97},
               {"epoch": 2, "train_seconds": 2.5, "test_accuracy": 0.981}]
    line, = _time_to_lines({"impl": "torch 9", "target": 0.98, "reached": True, "epochs": 2, "train_seconds": 2.5,
                            "history": history}, {"seconds": 9.25})
    assert "reached 0.9800 after epoch 2" in line and "2.5 s of training" in line and "9.2 s wall" in line
    assert _time_to_lines({"skipped": "torch not installed"}, {}) == \
        ["time to accuracy: skipped (torch not installed)"]


def test_torch_trains_fnns_configuration_until_the_target(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is a peer for comparison, not a dependency")
    from functional_nn.app.bench.time_to import torch_time_to
    from functional_nn.app.settings import resolve
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 784), dtype=np.uint8)
    y = (x[:, 0] > 127).astype(np.int64)                           # a learnable rule: the first pixel
    settings, _ = resolve({"hidden": [16], "epochs": 3, "batch_size": 20}, {})
    never = torch_time_to(1.01, (x, y), (x[:50], y[:50]), settings, threads=1)
    assert not never["reached"] and never["epochs"] == 3 and len(never["history"]) == 3
    assert [h["epoch"] for h in never["history"]] == [1, 2, 3]
    at_once = torch_time_to(0.0, (x, y), (x[:50], y[:50]), settings, threads=1)
    assert at_once["reached"] and at_once["epochs"] == 1
    assert at_once["train_seconds"] == pytest.approx(at_once["history"][0]["train_seconds"], abs=1e-3)
