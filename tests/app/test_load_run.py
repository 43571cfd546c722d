"""load_run: a trained run as a predictor that applies the run's own preprocessing (issue 13, item 1)."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functional_nn.app import TrainedModel, load_run
from functional_nn.app import data as _data
from functional_nn.app.cli import main
from functional_nn.app.settings import UsageError
from pipelines import read_arrays
from tests.app.interrupt import REPO_ROOT

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"


@pytest.fixture(scope="module", params=["scale", "standardize"])
def run(request, tmp_path_factory):
    run = tmp_path_factory.mktemp(request.param) / "run"
    assert main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(run), "--hidden", "16",
                 "--epochs", "2", "--batch-size", "8", "--normalize", request.param, "--no-plots", "--quiet"]) == 0
    return run


@pytest.fixture(scope="module")
def rows():
    return read_arrays(CSV)


def test_load_run_bundles_the_parameters_with_the_preprocessing(run):
    model = load_run(run)
    assert isinstance(model, TrainedModel) and model.sizes == (784, 16, 10) and model.n_features == 784
    assert model.classes == tuple("0123456789") and model.image_shape == (28, 28) and model.dtype == "float32"
    assert model.normalization["kind"] in ("scale", "standardize")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        model.sizes = (1,)


def test_predictions_are_those_of_fnn_predict(run, rows, capsys):
    model = load_run(run)
    capsys.readouterr()
    assert main(["predict", str(run), str(CSV), "--json", "--top", "10"]) == 0
    cli = json.loads(capsys.readouterr().out)["predictions"]
    probs = model.predict_proba(rows.x)
    labels = model.predict(rows.x)
    assert [p["index"] for p in cli] == labels.tolist()
    for p, row in zip(cli, probs):
        for top in p["top"]:
            assert top["probability"] == float(row[int(top["label"])])
    assert model.class_names(labels[:3]) == [cli[i]["label"] for i in range(3)]


def test_preprocess_is_the_training_normalization(run, rows):
    model = load_run(run)
    stage = _data.normalizer(model.normalization, model.dtype)
    expected = np.concatenate([b.x for b in _data.eval_batches(rows, stage)])
    got = model.preprocess(rows.x)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    np.testing.assert_array_equal(model.preprocess(rows.x.reshape(-1, 28, 28)), expected)   # images too


@settings(deadline=None, max_examples=25)
@given(n=st.integers(0, 40), batch=st.integers(1, 50))
def test_probabilities_are_rows_of_a_distribution_whatever_the_batch(run, rows, n, batch):
    model = load_run(run)
    probs = model.predict_proba(rows.x[:n], batch_size=batch)
    assert probs.shape == (n, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(probs, model.predict_proba(rows.x[:n]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("pixels, message", [
    (np.zeros((2, 783)), "expected rows of 784 pixels"),
    (np.full((1, 784), 256.0), "whole numbers from 0 to 255"),
    (np.full((1, 784), -1), "whole numbers from 0 to 255"),
    (np.full((1, 784), 0.5), "whole numbers from 0 to 255"),
    (np.full((1, 784), np.nan), "whole numbers from 0 to 255"),
])
def test_bad_pixels_are_refused(run, pixels, message):
    with pytest.raises(ValueError, match=message):
        load_run(run).predict(pixels)


def test_load_run_errors_name_the_file(run, tmp_path):
    with pytest.raises(UsageError, match="no such run folder"):
        load_run(tmp_path / "nothing")
    with pytest.raises(ValueError, match="checkpoint must be"):
        load_run(run, checkpoint="final")
    assert load_run(run, "last").checkpoint == "last"
