"""The README's "Using the library" example runs as written (on small synthetic data instead of the download)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipelines import Chunk, datasets
from tests.synthetic import synthetic_digits

README = Path(__file__).resolve().parents[1] / "README.md"


def library_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Using the library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section should hold one python example"
    return blocks[0]


def test_the_library_example_runs_and_learns(monkeypatch, capsys):
    x, y = synthetic_digits(700, 1)
    y = y.astype(np.int64)
    small = datasets.Dataset("mnist", Chunk(x[:600], y[:600]), Chunk(x[600:], y[600:]), sha256={})
    monkeypatch.setattr(datasets, "load", lambda name, **kwargs: small)
    namespace: dict = {}
    exec(compile(library_example(), str(README), "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch 1: loss ") and 2 <= len(lines) <= 11     # epoch lines, then the accuracy
    final = namespace["final"]
    assert int(final.epoch) == len(lines) - 1 and final.best is not None
    assert float(lines[-1]) > 0.9                                             # the synthetic classes are easy


def ecosystem_examples() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Trained runs in Python, scikit-learn and ONNX", 1)[1]
    return re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)


def test_the_load_run_example_runs_on_a_trained_run(tmp_path):
    from functional_nn.app.cli import main
    from pipelines import read_arrays

    csv = README.parent / "data" / "fixtures" / "mnist_test_40.csv"
    run = tmp_path / "run"
    assert main(["train", "--train", str(csv), "--test", str(csv), "--out", str(run), "--hidden", "8", "--epochs",
                 "1", "--no-plots", "--quiet"]) == 0
    code = ecosystem_examples()[0].replace('"runs/20261203-101500"', repr(str(run)))
    namespace = {"pixels": read_arrays(csv).x}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["model"].sizes == (784, 8, 10)


def test_the_scikit_learn_example_runs(capsys):
    import pytest
    pytest.importorskip("sklearn")
    exec(compile(ecosystem_examples()[1], str(README), "exec"), {})
    best, score = capsys.readouterr().out.rsplit(" ", 1)
    assert "hidden_layer_sizes" in best and float(score) > 0.8
