"""Command-line conventions (issue 13, item 6): --version, python -m functional_nn, did-you-mean, help on every
argument, ignored options refused, the warm-up note, evaluate's messages and report."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from functional_nn.app import cli
from functional_nn.app.cli import build_parser, main, suggest_flag
from functional_nn.app.evaluate import warn_other_dataset
from functional_nn.app.inference import load_run
from tests.app.interrupt import REPO_ROOT

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"
FAST = ["--train", str(CSV), "--test", str(CSV), "--hidden", "8", "--epochs", "2", "--batch-size", "8",
        "--no-plots"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("conv") / "run"
    assert main(["train", *FAST, "--out", str(run), "--quiet"]) == 0
    return run


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("fnn (functional-nn) ")


def test_python_dash_m_functional_nn_is_fnn():
    result = subprocess.run([sys.executable, "-m", "functional_nn", "--version"], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.startswith("fnn (functional-nn) "), result.stderr
    result = subprocess.run([sys.executable, "-m", "functional_nn", "train", "--learning-rate", "1"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)
    assert result.returncode == 2 and "did you mean --lr?" in result.stderr


@pytest.mark.parametrize("argv, line", [
    (["train", "--learning-rate", "0.1"],
     "fnn train: error: unrecognized argument --learning-rate (did you mean --lr?) (see fnn train --help)"),
    (["train", "--batch_size", "8"], "fnn train: error: unrecognized argument --batch_size (did you mean "
                                     "--batch-size?) (see fnn train --help)"),
    (["train", "--epocs", "3"], "fnn train: error: unrecognized argument --epocs (did you mean --epochs?) "
                                "(see fnn train --help)"),
    (["train", "--hidden-layer-sizes", "8"], "fnn train: error: unrecognized argument --hidden-layer-sizes (did "
                                             "you mean --hidden?) (see fnn train --help)"),
    (["evaluate", "r", "--jsn"], "fnn evaluate: error: unrecognized argument --jsn (did you mean --json?) "
                                 "(see fnn evaluate --help)"),
    (["predict", "r", "x", "--qqqq"], "fnn predict: error: unrecognized argument --qqqq (see fnn predict --help)"),
    (["train", "stray"], "fnn train: error: unexpected argument 'stray' (see fnn train --help)"),
])
def test_a_mistyped_flag_names_the_subcommand_and_the_nearest_flag(capsys, argv, line):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == line


def test_every_alias_points_at_a_real_train_flag():
    known = {s for a in _subparsers()["train"]._actions for s in a.option_strings}
    assert set(cli.FLAG_ALIASES.values()) <= known
    assert all(suggest_flag(alias, sorted(known)) == flag for alias, flag in cli.FLAG_ALIASES.items())


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_argument_has_help_text():
    parsers = {"fnn": build_parser(), **_subparsers()}
    missing = [f"{name} {a.dest}" for name, p in parsers.items() for a in p._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help and a.help.strip())]
    assert missing == []


def test_the_warm_up_note_when_the_run_never_decays(tmp_path, capsys):
    assert main(["train", *FAST, "--epochs", "1", "--warmup-epochs", "1", "--out", str(tmp_path / "r")]) == 0
    assert "the learning rate warms up for the whole run and never decays" in capsys.readouterr().err
    assert main(["train", *FAST, "--epochs", "1", "--warmup-epochs", "0", "--out", str(tmp_path / "s")]) == 0
    assert "never decays" not in capsys.readouterr().err


def test_evaluate_names_a_test_file_without_labels(run, tmp_path, capsys):
    rows = CSV.read_text().splitlines()
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("\n".join(",".join(r.split(",")[1:]) for r in rows) + "\n")
    assert main(["evaluate", str(run), "--test", str(unlabelled)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"fnn evaluate: error: {unlabelled}: 784 columns, the model's 784 pixels and no label: fnn "
                   "evaluate needs a label first on each row (fnn predict classifies unlabelled rows)")


def test_a_model_trained_on_another_dataset_is_named_in_a_warning(run, capsys):
    model = load_run(run)
    object.__setattr__(model, "dataset", "mnist")
    warn_other_dataset(model, "fashion-mnist", "fnn evaluate")
    assert "was trained on mnist, this is fashion-mnist: expect chance-level results" in capsys.readouterr().err
    warn_other_dataset(model, "mnist", "fnn evaluate")
    assert capsys.readouterr().err == ""


def test_evaluate_reports_precision_recall_f1(run, capsys):
    assert main(["evaluate", str(run), "--test", str(CSV)]) == 0
    out = capsys.readouterr().out
    assert "precision    recall  f1-score   support" in out and "macro avg" in out and "weighted avg" in out
    assert main(["evaluate", str(run), "--test", str(CSV), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["precision"]) == 10 and report["macro_avg"]["support"] == 40
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    assert len(metrics["f1"]) == 10 and sum(metrics["support"]) == 40


def test_bash_completion_completes_commands_flags_and_choices(tmp_path, capsys):
    import shutil
    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    assert main(["--completion", "bash"]) == 0
    script = tmp_path / "fnn.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words):
        code = (f'source {script}; COMP_WORDS=({" ".join(words)}); COMP_CWORD={len(words) - 1}; _fnn; '
                'echo "${COMPREPLY[@]}"')
        return subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True).stdout.split()

    assert complete("fnn", "ev") == ["evaluate"] and "export" in complete("fnn", "e")
    assert complete("fnn", "train", "--opt") == ["--optimizer"]
    assert complete("fnn", "train", "--optimizer", "ada") == ["adam", "adamw"]
    assert complete("fnn", "evaluate", "r", "--check") == ["--checkpoint"]
