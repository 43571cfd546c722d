"""Pictures of a training run: curves, confusion matrix, predictions, mistakes, filters, a GIF, one HTML page.

This is an I/O edge (like the CLI): it reads a run folder and writes pictures. The caller passes plain arrays
(test images, labels, predicted probabilities, the first layer's weights) and the run folder supplies everything
else. The package, one module per idea (``write_report``, here, composes them and is the only one that writes):

- ``run``: reading a run folder (``ReportError``, ``Run``, ``read_run``, ``best_epoch``).
- ``figures``: the matplotlib pictures (``draw_*`` -> PNG bytes), their sizes and pure helpers.
- ``gif``: training.gif's frames and encoding.
- ``page``: report.html.

Imports: numpy, attrs, ``functional_nn.params``, ``functional_nn.app.runs`` (history.csv's reader, atomic
writes) and ``functional_nn.app.data`` (class names); matplotlib and Pillow only lazily, inside functions, so
that importing the package works without the ``plot`` extra.

Public API:

- ``PLOT_EXTRA_HINT``: one line telling how to install the ``plot`` extra (matplotlib, Pillow).
- ``have_plotting() -> bool``: whether matplotlib and Pillow can be imported.
- ``ReportError(ValueError)``: a one-line message naming what is missing or malformed, e.g.
  ``runs/x: history.csv is missing`` or ``runs/x: history.csv:3: loss is not a number: 'abc'``.
- ``read_run(run_dir) -> Run(name, config, history, metrics)``: read and validate ``config.json``, ``history.csv`` and
  ``metrics.json`` (formats in the team contract, "Run folder"); raises ``ReportError``. Cheap: call it first to
  fail fast before loading test data.
- ``write_report(run_dir, *, x_test, y_test, probs, first_layer_w, classes=None, image_shape=(28, 28),
  out_dir=None) -> dict[str, Path]``: draw every picture into ``out_dir`` (default ``run_dir/plots``) and return
  ``{file name: path}``. Raises ``ReportError`` for a bad run folder or arrays that do not fit it, and
  ``ImportError`` (message: ``PLOT_EXTRA_HINT``) when the extra is not installed.

  ``x_test`` (n, 784) uint8 raw pixels (float is min-max scaled for display), ``y_test`` int (n,) true labels,
  ``probs`` (n, k) predicted probabilities, ``first_layer_w`` (784, h) the first Dense weight. Class names come
  from the ``classes`` argument, else ``metrics.json`` "classes", else "0".."k-1". Accuracies in
  ``history.csv`` and ``metrics.json`` are fractions in [0, 1]; the pictures show them in %.

Files written (fixed pixel sizes, width x height, drawn at 100 dpi; also in ``SIZES``):

- ``curves.png`` 1000 x 420: loss and accuracy (%) per epoch, train and validation, on two panels; the best epoch
  (``metrics.json`` "best_epoch", else the lowest validation loss) as a dashed line; test accuracy as a dotted line.
- ``confusion.png`` 760 x 680: the test confusion matrix; cell text = count, colour = fraction of the true class
  (row-normalized, square-root colour scale so that small confusions show); axes "true" and "predicted".
- ``per_class.png`` 900 x 460: per-class test accuracy (%) bars with their values, overall accuracy dashed.
- ``predictions.png`` 800 x 880: the first 25 test images, predicted class and confidence (green right, red wrong).
- ``mistakes.png`` 800 x 920: the 25 most confident wrong predictions (fewer if there are fewer), true and predicted.
- ``filters.png`` 900 x 860: the first layer's weights of units 1..64 as images, one shared symmetric colour scale
  (the 99.5th percentile of ``|w|``; beyond it clipped), as scikit-learn's "Visualization of MLP weights on MNIST".
- ``training.gif`` 800 x 340: the learning curves growing, one frame per epoch (evenly spaced epochs beyond
  ``MAX_GIF_FRAMES`` = 500), loops forever, well under 2 MB (about 0.3 MB for 200 epochs).
- ``report.html``: one self-contained page titled with the run name: results table, per-class table, configuration
  table, and every picture as a base64 data URI (``<img id="curves">``, ..., ``<img id="training">``); no network.

Every picture is drawn in memory first, then each file is written atomically (temp file in the same folder, then
``os.replace``), so a failed or interrupted report leaves either the old file or the new one, never half a file.
matplotlib is imported lazily and used through
``Figure`` + the Agg canvas (no pyplot, no global backend switch), so it works with no display and does not
disturb an interactive session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np

from functional_nn.app.data import class_names
from functional_nn.app.report.figures import (
    GRID, PLOT_EXTRA_HINT, SIZES, accuracy_axis_floor, display_images, draw_confusion, draw_curves,
    draw_filters, draw_mistakes, draw_per_class, draw_predictions, filter_mosaic, filter_scale, format_confidence,
    have_plotting, mistakes_subtitle, rc_params, require_plotting, row_normalize, select_mistakes)
from functional_nn.app.report.gif import MAX_GIF_FRAMES, draw_gif, gif_frame_ends
from functional_nn.app.report.page import render_html
from functional_nn.app.report.run import ReportError, Run, best_epoch, read_run
from pipelines.io.atomic import atomic_write_bytes

__all__ = [
    "MAX_GIF_FRAMES",
    "PLOT_EXTRA_HINT",
    "SIZES",
    "ReportError",
    "Run",
    "accuracy_axis_floor",
    "best_epoch",
    "filter_mosaic",
    "filter_scale",
    "format_confidence",
    "gif_frame_ends",
    "have_plotting",
    "mistakes_subtitle",
    "read_run",
    "row_normalize",
    "select_mistakes",
    "write_report",
]


def _check_arrays(where: str, run: Run, x_test, y_test, probs, first_layer_w, image_shape,
                  classes) -> tuple[np.ndarray, ...]:
    pixels = int(np.prod(image_shape))
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    probs, first_layer_w = np.asarray(probs), np.asarray(first_layer_w)
    k = run.metrics["confusion"].shape[0]
    if x_test.ndim != 2 or x_test.shape[1] != pixels:
        raise ReportError(f"{where}: x_test must be (n, {pixels}) for {image_shape} images, got {x_test.shape}")
    n = x_test.shape[0]
    if n == 0:
        raise ReportError(f"{where}: x_test has no rows")
    if y_test.shape != (n,) or not np.issubdtype(y_test.dtype, np.integer):
        raise ReportError(f"{where}: y_test must be int ({n},), got {y_test.dtype} {y_test.shape}")
    if probs.shape != (n, k):
        raise ReportError(f"{where}: probs must be ({n}, {k}) (k from metrics.json confusion), got {probs.shape}")
    if y_test.min() < 0 or y_test.max() >= k:
        raise ReportError(f"{where}: y_test labels must lie in 0..{k - 1}")
    if first_layer_w.ndim != 2 or first_layer_w.shape[0] != pixels or first_layer_w.shape[1] < 1:
        raise ReportError(f"{where}: first_layer_w must be ({pixels}, h), got {first_layer_w.shape}")
    if not np.all(np.isfinite(probs)):
        raise ReportError(f"{where}: probs has non-finite values")
    if classes is not None and len(classes) != k:
        raise ReportError(f"{where}: classes must be {k} names (one per confusion row), got {len(classes)}")
    return x_test, y_test.astype(np.int64), probs, first_layer_w


def write_report(run_dir: str | os.PathLike, *, x_test: np.ndarray, y_test: np.ndarray, probs: np.ndarray,
                 first_layer_w: np.ndarray, classes: Sequence[str] | None = None,
                 image_shape: tuple[int, int] = (28, 28),
                 out_dir: str | os.PathLike | None = None, metrics: Mapping | None = None) -> dict[str, Path]:
    """Draw every picture of a run and the HTML page into ``out_dir`` (default ``run_dir/plots``).

    Args:
        run_dir: the run folder (``config.json``, ``history.csv``, ``metrics.json``).
        x_test: (n, h*w) test images, uint8 raw pixels or floats (min-max scaled for display).
        y_test: int (n,) true labels.
        probs: float (n, k) predicted probabilities of the run's model on ``x_test``.
        first_layer_w: (h*w, units) the first Dense layer's weight.
        classes: k class names; default ``metrics.json`` "classes", else "0".."k-1".
        image_shape: (height, width) of one image.
        out_dir: where to write; created if needed.
        metrics: test results of ``probs`` ("test_loss", "test_accuracy", "per_class_accuracy", "confusion",
            "n_test") replacing metrics.json's, when the pictures are drawn on other data or weights than the
            run's own test set and final model, so that every picture and the page describe the same thing.

    Returns:
        ``{file name: path}`` for curves.png, confusion.png, per_class.png, predictions.png, mistakes.png,
        filters.png, training.gif and report.html.

    Raises:
        ReportError: a missing or malformed run file, or arrays that do not fit the run (one-line message).
        ImportError: the ``plot`` extra is not installed (message: ``PLOT_EXTRA_HINT``).
    """
    run = read_run(run_dir)
    if metrics is not None:
        run = attrs.evolve(run, metrics={
            **run.metrics, **metrics,
            "confusion": np.asarray(metrics["confusion"], dtype=np.int64),
            "per_class_accuracy": np.asarray([np.nan if a is None else a for a in metrics["per_class_accuracy"]],
                                             dtype=np.float64)})
    image_shape = tuple(int(s) for s in image_shape)
    x_test, y_test, probs, first_layer_w = _check_arrays(str(run_dir), run, x_test, y_test, probs,
                                                          first_layer_w, image_shape, classes)
    k = run.metrics["confusion"].shape[0]
    names = class_names(k, classes if classes is not None else run.metrics.get("classes"))
    matplotlib = require_plotting()
    best = best_epoch(run.history, run.metrics)
    grid_rows = np.arange(min(GRID, len(y_test)))
    mistake_rows = select_mistakes(y_test, probs, k=GRID)
    shown = display_images(x_test[np.concatenate([grid_rows, mistake_rows])], image_shape)
    grid_images, mistake_images = shown[: len(grid_rows)], shown[len(grid_rows):]
    with matplotlib.rc_context(rc_params()):
        pictures = {
            "curves.png": draw_curves(run, best),
            "confusion.png": draw_confusion(run, names),
            "per_class.png": draw_per_class(run, names),
            "predictions.png": draw_predictions(run, grid_images, y_test, probs, names),
            "mistakes.png": draw_mistakes(run, mistake_rows, mistake_images, y_test, probs, names),
            "filters.png": draw_filters(run, first_layer_w, image_shape),
            "training.gif": draw_gif(run),
        }
    page = render_html(run, names, best, pictures)
    target = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for file_name, data in {**pictures, "report.html": page.encode("utf-8")}.items():
        path = target / file_name
        atomic_write_bytes(path, data)
        written[file_name] = path
    return written
