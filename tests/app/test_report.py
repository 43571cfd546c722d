"""Tests for functional_nn.app.report: a fake run folder + random arrays -> every picture, the page, the errors."""

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the plot extra is not installed: python -m pip install 'functional-nn[plot]'")
pytest.importorskip("PIL", reason="the plot extra is not installed: python -m pip install 'functional-nn[plot]'")

from PIL import Image  # noqa: E402

from functional_nn.app import runs as _runs, report  # noqa: E402
from functional_nn.app.settings import DEFAULTS  # noqa: E402
from functional_nn.app.report import ReportError, read_run, select_mistakes, write_report  # noqa: E402

PICTURES = ("curves.png", "confusion.png", "per_class.png", "predictions.png", "mistakes.png", "filters.png",
            "training.gif")
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def make_run(run_dir, *, epochs=3, validation=True, classes=None, best_epoch=2, n_classes=10):
    """A run folder as ``fnn train`` writes it (contract: "Run folder"), with made-up numbers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**DEFAULTS, "dataset": "mnist", "hidden": [16], "activation": "relu", "optimizer": "adam",
              "lr": 0.001, "batch_size": 32, "epochs": epochs, "seed": 0, "dropout": 0.0}
    (run_dir / "config.json").write_text(json.dumps(config))
    with (run_dir / "history.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_runs.HISTORY_FIELDS)
        for e in range(1, epochs + 1):
            val = [0.5 / e + 0.1 * (e == 3), 0.8 + 0.03 * e] if validation else ["", ""]
            writer.writerow([e, 0.6 / e, 0.75 + 0.05 * e, *val, 0.001, 1.5])
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 5, size=(n_classes, n_classes)) + np.diag(rng.integers(50, 100, size=n_classes))
    metrics = {"test_loss": 0.31, "test_accuracy": float(np.trace(confusion) / confusion.sum()),
               "per_class_accuracy": (np.diag(confusion) / confusion.sum(axis=1)).tolist(),
               "confusion": confusion.tolist(), "n_test": int(confusion.sum()), "best_epoch": best_epoch}
    if classes is not None:
        metrics["classes"] = classes
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def make_arrays(n=60, *, hidden=20, n_classes=10, perfect=False, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    y = rng.integers(0, n_classes, size=n).astype(np.int64)
    probs = rng.dirichlet(np.full(n_classes, 0.3), size=n)
    if perfect:
        probs = np.full((n, n_classes), 0.01)
        probs[np.arange(n), y] = 1 - 0.01 * (n_classes - 1)
    w = rng.standard_normal((784, hidden)).astype(np.float32) * 0.05
    return {"x_test": x, "y_test": y, "probs": probs, "first_layer_w": w}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("runs") / "mnist-tiny")
    arrays = make_arrays()
    return run_dir, arrays, write_report(run_dir, **arrays)


def test_every_file_is_written_with_its_documented_pixel_size(drawn):
    run_dir, _, written = drawn
    assert set(written) == {*PICTURES, "report.html"}
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == sorted(written)   # no temp files left
    for name in PICTURES:
        path = written[name]
        assert path == run_dir / "plots" / name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == ("GIF" if name.endswith(".gif") else "PNG"), name
            assert image.size == report.SIZES[name], name


def test_gif_has_one_frame_per_epoch_loops_and_is_small(drawn):
    _, _, written = drawn
    assert written["training.gif"].stat().st_size < 2_000_000
    with Image.open(written["training.gif"]) as gif:
        assert gif.n_frames == 3
        assert gif.info.get("loop") == 0          # loop forever
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB"), dtype=np.int16))
    assert np.abs(frames[0] - frames[-1]).sum() > 0   # the curves grow


def test_html_page_embeds_every_picture_and_the_tables(drawn):
    run_dir, _, written = drawn
    page = written["report.html"].read_text(encoding="utf-8")
    assert "<title>functional-nn run report: mnist-tiny</title>" in page
    for name in PICTURES:
        key, ext = name.rsplit(".", 1)
        mime = "image/gif" if ext == "gif" else "image/png"
        match = re.search(rf'<img id="{key}" alt="{re.escape(name)}: [^"]+" width="\d+" height="\d+" '
                          rf'src="data:{mime};base64,([A-Za-z0-9+/=]+)">', page)
        assert match, name
        assert base64.b64decode(match.group(1)) == written[name].read_bytes(), name
    assert "http://" not in page and "https://" not in page    # readable offline: nothing fetched
    for text in ("Configuration", "hidden", "[16]", "adam", "test accuracy", "Per-class test accuracy"):
        assert text in page, text


def test_select_mistakes_returns_the_most_confident_wrong_ones_in_order():
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array([[0.1, 0.9, 0.0],     # wrong, 0.9
                      [0.2, 0.7, 0.1],     # right
                      [0.6, 0.1, 0.3],     # wrong, 0.6
                      [0.0, 0.05, 0.95],   # wrong, 0.95
                      [0.9, 0.1, 0.0],     # wrong, 0.9 (tie: later index)
                      [0.0, 0.0, 1.0]])    # right
    assert select_mistakes(y, probs).tolist() == [3, 0, 4, 2]
    assert select_mistakes(y, probs, k=2).tolist() == [3, 0]
    assert select_mistakes(y[[1, 5]], probs[[1, 5]]).tolist() == []
    assert select_mistakes(y, probs).dtype == np.int64


def test_select_mistakes_matches_a_brute_force_ranking():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 10, size=500)
    probs = rng.dirichlet(np.ones(10), size=500)
    wrong = [i for i in range(500) if probs[i].argmax() != y[i]]
    expected = sorted(wrong, key=lambda i: (-probs[i].max(), i))[:25]
    assert select_mistakes(y, probs).tolist() == expected


def test_short_run_no_validation_no_mistakes_named_classes(tmp_path):
    run_dir = make_run(tmp_path / "fashion-1", epochs=1, validation=False, best_epoch=None, classes=FASHION)
    out_dir = tmp_path / "elsewhere"
    written = write_report(run_dir, **make_arrays(n=7, hidden=3, perfect=True), out_dir=out_dir)
    assert all(p.parent == out_dir for p in written.values())
    assert not (run_dir / "plots").exists()
    with Image.open(written["training.gif"]) as gif:
        assert gif.n_frames == 1
        assert gif.size == report.SIZES["training.gif"]
    for name in PICTURES:
        with Image.open(written[name]) as image:
            assert image.size == report.SIZES[name], name
    page = written["report.html"].read_text(encoding="utf-8")
    assert "T-shirt/top" in page and "Ankle boot" in page
    assert "validation" not in page.split("<h2>Configuration</h2>")[0]


def test_pure_helpers(tmp_path):
    run = read_run(make_run(tmp_path / "helpers"))
    assert report.best_epoch(run.history, run.metrics) == 2                    # stated in metrics.json
    assert report.best_epoch(run.history, {}) == 2                             # lowest val_loss
    np.testing.assert_allclose(report.row_normalize(np.array([[1, 3], [0, 0]])), [[0.25, 0.75], [0, 0]])
    assert report.gif_frame_ends(1200)[-1] == 1200 and len(report.gif_frame_ends(1200)) == report.MAX_GIF_FRAMES
    m = report.filter_mosaic(np.ones((784, 5)), (28, 28))
    assert m.shape == (2 * 30 - 2, 3 * 30 - 2) and np.isnan(m).sum() == m.size - 5 * 784
    assert report.have_plotting()
    assert "python -m pip install 'functional-nn[plot]'" in report.PLOT_EXTRA_HINT


def _drop(name):
    return lambda d: (d / name).unlink()


def _write(name, text):
    return lambda d: (d / name).write_text(text)


def _edit_metrics(**changes):
    def edit(d):
        metrics = json.loads((d / "metrics.json").read_text())
        for key, value in changes.items():
            if value is None:
                metrics.pop(key)
            else:
                metrics[key] = value
        (d / "metrics.json").write_text(json.dumps(metrics))
    return edit


BROKEN = {
    "no history": (_drop("history.csv"), "{run}: history.csv is missing"),
    "no metrics": (_drop("metrics.json"), "{run}: metrics.json is missing"),
    "no config": (_drop("config.json"), "{run}: config.json is missing"),
    "config not an object": (_write("config.json", "[1, 2]"), "{run}: config.json: expected a JSON object"),
    "metrics not JSON": (_write("metrics.json", '{"test_loss": 0.3,'), "{run}: metrics.json: not valid JSON"),
    "metrics lacks confusion": (_edit_metrics(confusion=None), "{run}: metrics.json: confusion: missing"),
    "confusion not square": (_edit_metrics(confusion=[[1, 2, 3], [4, 5, 6]]), "{run}: metrics.json: confusion: expected a square matrix"),
    "accuracy in percent": (_edit_metrics(test_accuracy=95.5), "{run}: metrics.json: test_accuracy: expected a finite number >= 0 and <= 1, got 95.5"),
    "per-class wrong length": (_edit_metrics(per_class_accuracy=[0.9]), "{run}: metrics.json: per_class_accuracy: expected 10 entries"),
    "classes wrong length": (_edit_metrics(classes=["a"]), "{run}: metrics.json: classes: expected 10 entries"),
    "history header only": (_write("history.csv", ",".join(_runs.HISTORY_FIELDS) + "\n"),
                            "{run}: history.csv has no epochs"),
    "history empty": (_write("history.csv", ""), "{run}: history.csv is empty"),
    "history lacks loss": (_write("history.csv", "epoch,accuracy\n1,0.5\n"), "{run}: history.csv: header lacks"),
    "history bad number": (_write("history.csv", "epoch,loss,accuracy\n1,abc,0.5\n"),
                           "{run}: history.csv:2: loss is not a number: 'abc'"),
    "history short row": (_write("history.csv", "epoch,loss,accuracy\n1,0.5\n"),
                          "{run}: history.csv:2: expected 3 fields, got 2"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_run_folder_raises_one_line_report_error_naming_the_file(tmp_path, case):
    breaker, expected = BROKEN[case]
    run_dir = make_run(tmp_path / "run")
    breaker(run_dir)
    with pytest.raises(ReportError) as info:
        read_run(run_dir)
    message = str(info.value)
    assert message.startswith(expected.format(run=run_dir)), message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_write_report_checks_the_folder_before_drawing(tmp_path):
    with pytest.raises(ReportError, match=r"nowhere: run folder is missing$"):
        write_report(tmp_path / "nowhere", **make_arrays(n=3))
    run_dir = make_run(tmp_path / "run")
    (run_dir / "history.csv").unlink()
    with pytest.raises(ReportError, match=r"history\.csv is missing$"):
        write_report(run_dir, **make_arrays(n=3))
    assert not (run_dir / "plots").exists()


@pytest.mark.parametrize("change, match", [
    ({"probs": np.full((3, 4), 0.25)}, r"probs must be \(3, 10\)"),
    ({"first_layer_w": np.zeros((100, 4))}, r"first_layer_w must be \(784, h\)"),
    ({"x_test": np.zeros((3, 10), np.uint8)}, r"x_test must be \(n, 784\)"),
    ({"y_test": np.array([0, 1, 12])}, r"y_test labels must lie in 0\.\.9"),
    ({"classes": ["a", "b"]}, r"classes must be 10 names \(one per confusion row\), got 2"),
])
def test_arrays_that_do_not_fit_the_run_raise(tmp_path, change, match):
    run_dir = make_run(tmp_path / "run")
    with pytest.raises(ReportError, match=match) as info:
        write_report(run_dir, **{**make_arrays(n=3), **change})
    assert str(info.value).startswith(f"{run_dir}: ") and "\n" not in str(info.value)


def test_module_imports_and_explains_without_the_plot_extra(tmp_path):
    """Without matplotlib/Pillow: importing works, have_plotting() is False, drawing raises the install hint."""
    import subprocess
    import sys

    run_dir = make_run(tmp_path / "run")
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("matplotlib", "PIL"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from functional_nn.app import report
assert not report.have_plotting()
try:
    report.write_report({str(run_dir)!r}, x_test=np.zeros((2, 784), np.uint8), y_test=np.array([0, 1]),
                        probs=np.full((2, 10), 0.1), first_layer_w=np.zeros((784, 2)))
except ImportError as e:
    print(e)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=str(Path(__file__).parents[2]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == report.PLOT_EXTRA_HINT


def test_mistakes_subtitle_reads_well_for_one_some_and_many_mistakes():
    from functional_nn.app.report import mistakes_subtitle
    assert mistakes_subtitle(1, 1, 40) == "the only wrong prediction on 40 test images"
    assert "all 1" not in mistakes_subtitle(1, 1, 40)
    assert mistakes_subtitle(25, 158, 10000).startswith("the 25 most confident of 158 wrong predictions")
