"""The `fnn` command: flag and file errors, settings precedence, evaluate / predict output.

Training here runs on tiny synthetic digit-like CSVs written to tmp_path (a few hundred rows), in process
through ``main(argv)``; a few cases go through ``python -m functional_nn.app.cli`` to check the real entry.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from functional_nn import checkpoint
from functional_nn.app.cli import main
from functional_nn.app.settings import PRESETS
from functional_nn.app.evaluate import confusion_table
from tests.synthetic import synthetic_digits

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
FAST = ["--hidden", "32", "--epochs", "2", "--batch-size", "32", "--no-plots"]


def write_csv(path, n, seed, *, label=True, width=784):
    x, y = synthetic_digits(n, seed)
    x = x[:, :width]
    rows = np.column_stack([y, x]) if label else x
    header = HEADER if label else HEADER.split(",", 1)[1]
    header = ",".join(header.split(",")[: rows.shape[1]])
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=header, comments="")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return {"train": write_csv(root / "train.csv", 300, 1), "test": write_csv(root / "test.csv", 100, 2),
            "dir": root}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    status = main(["train", "--train", str(data["train"]), "--test", str(data["test"]), "--out", str(run),
                   "--data-dir", str(data["dir"] / "cache"), "--quiet", *FAST])
    assert status == 0
    return run


def train_args(data, *extra):
    return ["train", "--train", str(data["train"]), "--test", str(data["test"]),
            "--data-dir", str(data["dir"] / "cache"), *FAST, *extra]


def assert_one_line_error(status, capsys, *, contains=""):
    captured = capsys.readouterr()
    assert status == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert "error" in lines[0] and contains in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("flags, contains", [
    (["--lr", "-1"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "abc"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--hidden", "256", "0"], "--hidden"),
    (["--dropout", "1"], "--dropout"),
    (["--dropout", "-0.1"], "--dropout"),
    (["--epochs", "0"], "--epochs"),
    (["--validation-fraction", "1"], "--validation-fraction"),
    (["--momentum", "1.5"], "--momentum"),
    (["--seed", "-1"], "--seed"),
    (["--augment-shift", "9"], "--augment-shift"),
    (["--optimizer", "lbfgs"], "--optimizer"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--dataset", "cifar"], "cifar"),
    (["--weight-decay", "0.1"], "--weight-decay"),
    (["--early-stopping", "--validation-fraction", "0"], "--early-stopping"),
    (["--train", "missing.csv", "--test", "missing.csv"], "missing.csv"),
    (["--config", "missing.toml"], "missing.toml"),
    (["--preset", "fastest"], "--preset"),
])
def test_bad_train_flags_exit_2_with_one_line(flags, contains, capsys, tmp_path):
    status = main(["train", "--out", str(tmp_path / "run"), *flags])
    assert_one_line_error(status, capsys, contains=contains)
    assert not (tmp_path / "run").exists()


def test_train_needs_test_with_train(data, capsys, tmp_path):
    status = main(["train", "--train", str(data["train"]), "--out", str(tmp_path / "r")])
    assert_one_line_error(status, capsys, contains="--test")


@pytest.mark.parametrize("text, contains", [
    ("lr = ", "not valid TOML"),
    ("learning_rate = 0.1", "unknown setting 'learning_rate'"),
    ("lr = 'fast'", "lr"),
    ("hidden = [256, 'a']", "hidden"),
    ("lr = -0.5", "lr must be"),
])
def test_bad_config_file_exit_2(text, contains, capsys, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text + "\n")
    status = main(["train", "--config", str(cfg), "--dry-run"])
    line = assert_one_line_error(status, capsys, contains=contains)
    assert "bad.toml" in line


def test_malformed_data_file_names_the_line_and_leaves_no_run(data, capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = Path(data["train"]).read_text().splitlines()
    lines[5] = lines[5].replace(",", ",x", 1)
    bad.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    status = main(["train", "--train", str(bad), "--test", str(data["test"]), "--out", str(run), "--no-plots",
                   "--data-dir", str(tmp_path / "cache")])
    line = assert_one_line_error(status, capsys, contains="bad.csv")
    assert not (run / "config.json").exists() and not (run / "metrics.json").exists(), line


def test_test_set_width_mismatch_exit_2(data, capsys, tmp_path):
    narrow = write_csv(tmp_path / "narrow.csv", 20, 3, width=780)
    status = main(["train", "--train", str(data["train"]), "--test", str(narrow), "--out", str(tmp_path / "r"),
                   "--data-dir", str(tmp_path / "cache")])
    assert_one_line_error(status, capsys, contains="narrow.csv")


def test_config_precedence_defaults_preset_file_flags(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "best"\nepochs = 7\nbatch-size = 64\n[train]\nlr = 0.5\n')
    assert main(["train", "--config", str(cfg), "--lr", "0.25", "--dry-run"]) == 0
    settings = json.loads(capsys.readouterr().out)
    assert settings["lr"] == 0.25              # flag beats file
    assert settings["epochs"] == 7             # file beats preset
    assert settings["batch_size"] == 64        # hyphenated key in the file
    assert settings["dropout"] == PRESETS["best"]["dropout"]          # from the preset
    assert settings["hidden"] == [1024, 512]   # preset beats defaults
    assert settings["activation"] == "relu"    # default
    assert settings["preset"] == "best"


def test_dry_run_writes_nothing(capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["hidden"] == [256, 128]
    assert not (tmp_path / "r").exists()


def test_dry_run_prints_the_settings_config_json_records(data, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(data["dir"])
    relative = ["train", "--train", "train.csv", "--test", "test.csv", "--data-dir", "cache", *FAST, "--quiet"]
    assert main([*relative, "--out", str(tmp_path / "r")]) == 0
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    capsys.readouterr()
    assert main([*relative, "--out", str(tmp_path / "r2"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == recorded


def test_train_writes_a_complete_run_folder(trained, data):
    for name in ("config.json", "history.csv", "metrics.json", "model.npz", "last.npz", "best.npz"):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "config.json").read_text())
    assert config["hidden"] == [32] and config["epochs"] == 2 and config["seed"] == 0
    history = (trained / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"
    assert [r.split(",")[0] for r in history[1:]] == ["1", "2"]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["n_test"] == 100 and len(metrics["per_class_accuracy"]) == 10
    assert np.asarray(metrics["confusion"]).sum() == 100
    assert metrics["classes"] == [str(i) for i in range(10)]
    assert metrics["test_accuracy"] > 0.5      # the synthetic classes are easy
    meta = checkpoint.load(trained / "model.npz").meta
    for key in ("sizes", "activation", "normalization", "seed", "dataset", "dataset_sha256", "versions", "classes"):
        assert key in meta, key
    assert meta["sizes"] == [784, 32, 10]


def test_a_run_made_with_relative_paths_works_from_another_folder(data, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    (work / "d").mkdir(parents=True)
    for name in ("train", "test"):
        (work / "d" / f"{name}.csv").write_bytes(data[name].read_bytes())
    monkeypatch.chdir(work)
    assert main(["train", "--train", "d/train.csv", "--test", "d/test.csv", "--out", "run", "--quiet",
                 "--data-dir", "cache", *FAST, "--epochs", "1"]) == 0
    config = json.loads((work / "run" / "config.json").read_text())
    assert config["test"] == str(work / "d" / "test.csv") and config["data_dir"] == str(work / "cache")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", str(work / "run"), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n"] == 100
    assert not (elsewhere / "cache").exists()


def test_existing_run_folder_is_not_overwritten(trained, data, capsys):
    before = (trained / "model.npz").read_bytes()
    status = main(train_args(data, "--out", str(trained)))
    assert_one_line_error(status, capsys, contains="--overwrite")
    assert (trained / "model.npz").read_bytes() == before


def test_overwrite_replaces_the_run(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data, "--out", str(run), "--epochs", "1", "--quiet")) == 0
    assert main(train_args(data, "--out", str(run), "--overwrite", "--quiet")) == 0
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_log_json_and_quiet(data, tmp_path, capsys):
    assert main(train_args(data, "--out", str(tmp_path / "j"), "--log", "json")) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "epoch", "epoch", "test"]
    assert events[1]["epoch"] == 1 and 0 <= events[1]["val_accuracy"] <= 1
    assert main(train_args(data, "--out", str(tmp_path / "q"), "--quiet")) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and "test accuracy" in captured.out
    assert captured.err == ""


def test_quiet_json_log_prints_only_the_final_event(data, tmp_path, capsys):
    assert main(train_args(data, "--out", str(tmp_path / "qj"), "--log", "json", "--quiet")) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [e["event"] for e in events] == ["test"] and captured.err == ""


def test_text_epoch_lines_are_keras_style(data, tmp_path, capsys):
    assert main(train_args(data, "--out", str(tmp_path / "t"))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Epoch 1/2 - ") and " - loss: " in lines[0] and " - val_acc: " in lines[0]
    assert lines[0].split(" - ")[-1].startswith("lr: ")
    assert any(line.startswith("Test - loss: ") for line in lines)


def test_evaluate_text_and_json(trained, data, capsys):
    assert main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "confusion matrix" in out and "top confusions" in out
    assert main(["evaluate", str(trained), "--json", "--test", str(data["test"])]) == 0
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert report["n"] == 100 and np.asarray(report["confusion"]).shape == (10, 10)


def test_evaluate_errors(trained, tmp_path, capsys):
    assert_one_line_error(main(["evaluate", str(tmp_path / "nowhere")]), capsys, contains="nowhere")
    narrow = write_csv(tmp_path / "narrow.csv", 10, 3, width=780)
    assert_one_line_error(main(["evaluate", str(trained), "--test", str(narrow)]), capsys, contains="784")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "last.npz").write_bytes((trained / "last.npz").read_bytes())
    assert_one_line_error(main(["evaluate", str(incomplete)]), capsys, contains="--resume")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.npz").write_bytes(b"not a zip")
    assert_one_line_error(main(["evaluate", str(broken)]), capsys, contains="model.npz")


def test_predict_csv_with_and_without_labels(trained, data, tmp_path, capsys):
    unlabelled = write_csv(tmp_path / "rows.csv", 4, 2, label=False)
    assert main(["predict", str(trained), str(unlabelled)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith(f"{unlabelled}:2: ")    # the header is line 1
    assert lines[0].count("%") == 3
    assert main(["predict", str(trained), str(data["test"]), "--json", "--top", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["predictions"]) == 100 and 0 <= result["accuracy"] <= 1
    first = result["predictions"][0]
    assert len(first["top"]) == 2 and first["label"] == first["top"][0]["label"] and "true" in first
    assert sum(t["probability"] for t in first["top"]) <= 1 + 1e-6


def test_predict_names_the_real_file_line_of_each_row(trained, tmp_path, capsys):
    x, y = synthetic_digits(3, 5)
    rows = [",".join(map(str, [label, *pixels])) for label, pixels in zip(y, x)]
    with_header = tmp_path / "with_header.csv"
    with_header.write_text("\n".join([HEADER, rows[0], "", rows[1], rows[2]]) + "\n")   # a blank line 3
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("\n".join(rows) + "\n")
    assert main(["predict", str(trained), str(with_header), str(headerless), "--json"]) == 0
    names = [p["input"] for p in json.loads(capsys.readouterr().out)["predictions"]]
    assert names == [f"{with_header}:2", f"{with_header}:4", f"{with_header}:5",
                     f"{headerless}:1", f"{headerless}:2", f"{headerless}:3"]
    assert main(["predict", str(trained), str(FIXTURES / "mnist40-images-idx3-ubyte"), "--json"]) == 0
    names = [p["input"] for p in json.loads(capsys.readouterr().out)["predictions"]]
    assert names[0] == f"{FIXTURES / 'mnist40-images-idx3-ubyte'}: item 0" and len(names) == 40


def test_a_folder_given_as_a_file_is_named_as_a_folder(trained, data, tmp_path, capsys):
    folder = tmp_path / "digits.png"
    folder.mkdir()
    for argv in (["train", "--train", str(tmp_path), "--test", str(data["test"]), "--out", str(tmp_path / "r")],
                 ["evaluate", str(trained), "--test", str(tmp_path)],
                 ["predict", str(trained), str(tmp_path)],
                 ["predict", str(trained), str(folder)]):
        assert_one_line_error(main(argv), capsys, contains="is a folder, not a file")


def test_predict_image(trained, tmp_path, capsys):
    PIL = pytest.importorskip("PIL.Image")
    canvas = np.full((80, 60), 255, np.uint8)
    canvas[15:65, 25:33] = 0
    PIL.fromarray(canvas).save(tmp_path / "one.png")
    assert main(["predict", str(trained), str(tmp_path / "one.png"), "--json"]) == 0
    [p] = json.loads(capsys.readouterr().out)["predictions"]
    assert p["input"].endswith("one.png") and len(p["top"]) == 3
    (tmp_path / "fake.png").write_bytes(b"no picture")
    assert_one_line_error(main(["predict", str(trained), str(tmp_path / "fake.png")]), capsys, contains="fake.png")


def test_predict_wrong_width_csv(trained, tmp_path, capsys):
    narrow = write_csv(tmp_path / "narrow.csv", 3, 3, width=100)
    assert_one_line_error(main(["predict", str(trained), str(narrow)]), capsys, contains="narrow.csv")


def test_predict_text_never_shows_a_rounded_0_or_100_percent():
    from functional_nn.app.predict import percent
    assert [percent(p) for p in (0.9999999, 1e-7, 0.5, 0.0)] == [">99.9%", "<0.1%", "50.0%", "0%"]


def test_confusion_table_shape():
    text = confusion_table(np.arange(9).reshape(3, 3), ["a", "b", "c"])
    assert len(text.splitlines()) == 5


@pytest.mark.parametrize("argv", [["train", "--lr", "-1"], ["train", "--bogus"], ["evaluate", "/nonexistent/run"]])
def test_real_entry_point_errors_have_no_traceback(argv):
    result = subprocess.run([sys.executable, "-m", "functional_nn.app.cli", *argv], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_exits_0(capsys):
    assert main(["train", "--help"]) == 0
    assert "--warmup-epochs" in capsys.readouterr().out


FIXTURES = REPO_ROOT / "data" / "fixtures"


def test_train_on_the_committed_real_fixtures_csv_gz_and_idx(tmp_path, capsys):
    run = tmp_path / "fixture-run"
    status = main(["train", "--train", str(FIXTURES / "mnist_test_40.csv.gz"),
                   "--test", str(FIXTURES / "mnist40-images-idx3-ubyte"), "--out", str(run), "--hidden", "16",
                   "--epochs", "1", "--batch-size", "8", "--no-plots", "--quiet", "--data-dir", str(tmp_path / "c")])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 40
    capsys.readouterr()
    assert main(["predict", str(run), str(FIXTURES / "mnist_test_40.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 41 and out[-1].startswith("accuracy on the 40 labelled rows")


def test_train_draws_the_report_and_fnn_report_redraws_it(data, tmp_path, capsys):
    report = pytest.importorskip("functional_nn.app.report")
    if not report.have_plotting():
        pytest.skip("the plot extra (matplotlib, Pillow) is not installed")
    run = tmp_path / "plotted"
    assert main(["train", "--train", str(data["train"]), "--test", str(data["test"]), "--out", str(run),
                 "--hidden", "16", "--epochs", "2", "--quiet", "--data-dir", str(data["dir"] / "cache")]) == 0
    names = ("curves.png", "confusion.png", "per_class.png", "predictions.png", "mistakes.png", "filters.png",
             "training.gif", "report.html")
    for name in names:
        assert (run / "plots" / name).is_file(), name
    capsys.readouterr()
    out = tmp_path / "again"
    assert main(["report", str(run), "--test", str(data["test"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert {Path(p).name for p in printed} == set(names)
    assert all((out / name).is_file() for name in names)
    written = [p for p in [*run.rglob("*"), *(data["dir"] / "cache").rglob("*")] if p.is_file()]
    private = [str(p) for p in written if p.stat().st_mode & 0o044 != 0o044]
    assert not private, f"not readable by others (mkstemp's 0o600): {private}"


def test_a_run_without_config_json_says_it_is_missing(trained, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.npz", "history.csv", "metrics.json"):
        (run / name).write_bytes((trained / name).read_bytes())
    for command in ("evaluate", "report"):
        line = assert_one_line_error(main([command, str(run)]), capsys, contains=str(run / "config.json"))
        assert "missing" in line


def test_report_on_other_data_describes_that_data_in_every_picture_and_the_page(trained, tmp_path, capsys):
    report = pytest.importorskip("functional_nn.app.report")
    if not report.have_plotting():
        pytest.skip("the plot extra (matplotlib, Pillow) is not installed")
    out = tmp_path / "other"
    assert main(["report", str(trained), "--test", str(FIXTURES / "mnist_test_40.csv"), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert '<td>test images</td><td class="num">40</td>' in page             # not metrics.json's 100
    assert main(["report", str(trained), "--out", str(tmp_path / "own")]) == 0
    assert '<td>test images</td><td class="num">100</td>' in (tmp_path / "own" / "report.html").read_text()


def test_report_of_an_unfinished_run_does_not_suggest_checkpoint_last(trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "unfinished"
    run.mkdir()
    for name in ("config.json", "history.csv", "last.npz"):
        (run / name).write_bytes((trained / name).read_bytes())
    line = assert_one_line_error(main(["report", str(run)]), capsys, contains="metrics.json")
    assert "--resume" in line and "--checkpoint" not in line


def test_the_printed_resume_command_is_quoted_for_the_shell(trained, tmp_path, capsys):
    run = tmp_path / "my run"
    run.mkdir()
    for name in ("config.json", "history.csv", "last.npz"):
        (run / name).write_bytes((trained / name).read_bytes())
    assert_one_line_error(main(["evaluate", str(run)]), capsys, contains=f"fnn train --resume '{run}'")


def test_report_errors_are_one_line(trained, tmp_path, capsys):
    assert_one_line_error(main(["report", str(tmp_path / "nothing")]), capsys, contains="nothing")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "model.npz").write_bytes((trained / "model.npz").read_bytes())
    assert_one_line_error(main(["report", str(unfinished)]), capsys, contains="metrics.json")


def test_fetch_unknown_dataset_and_fetch_errors_are_one_line(tmp_path, capsys):
    assert_one_line_error(main(["fetch", "cifar10"]), capsys, contains="cifar10")
    status = main(["fetch", "fashion-mnist", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    if status == 0:                                   # the Debian package dataset-fashion-mnist is installed
        assert len(captured.out.splitlines()) == 2
    else:
        assert status == 2 and len(captured.err.strip().splitlines()) == 1
        assert "Traceback" not in captured.err


def test_example_config_resolves_to_the_defaults(capsys):
    assert main(["train", "--config", str(REPO_ROOT / "configs" / "example.toml"), "--dry-run"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["train", "--dry-run"]) == 0
    assert from_file == json.loads(capsys.readouterr().out)
