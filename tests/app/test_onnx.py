"""ONNX export (issue 13, item 3): onnxruntime matches predict_proba to float32 rounding for every activation and
both normalizations; the model passes onnx.checker; without the extra, one line says how to install it."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from functional_nn.app import load_run
from functional_nn.app.cli import main
from pipelines import read_arrays
from tests.app.interrupt import REPO_ROOT

onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'functional-nn[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'functional-nn[onnx]'")

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"


@pytest.mark.parametrize("normalize", ["scale", "standardize"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_onnxruntime_matches_predict_proba(tmp_path, capsys, activation, normalize):
    run = tmp_path / "run"
    assert main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(run), "--hidden", "16", "8",
                 "--epochs", "2", "--batch-size", "8", "--activation", activation, "--normalize", normalize,
                 "--no-plots", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx"]) == 0
    path = run / "model.onnx"
    assert capsys.readouterr().out.strip() == str(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [p.value for p in proto.metadata_props if p.key == "classes"] == [",".join("0123456789")]
    x = read_arrays(CSV).x
    got = ort.InferenceSession(str(path)).run(["probabilities"], {"pixels": x.astype(np.float32)})[0]
    want = load_run(run).predict_proba(x)
    assert got.shape == want.shape == (40, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)       # float32 rounding, no more
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_export_without_the_extra_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    real = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert main(["export", str(tmp_path), "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == ("fnn export: error: fnn export --format onnx needs the onnx extra: "
                                               "python -m pip install 'functional-nn[onnx]'")


def test_export_of_a_broken_run_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
