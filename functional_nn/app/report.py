"""Pictures of a training run: curves, confusion matrix, predictions, mistakes, filters, a GIF, one HTML page.

This is an I/O edge (like the CLI): it reads a run folder and writes pictures. It imports nothing of
``functional_nn`` but its atomic file writer (``_runs``, standard library only) and nothing of ``pipelines``;
the caller passes plain arrays (test images, labels, predicted probabilities, the first layer's weights) and
the run folder supplies everything else.

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
``os.replace``), so a failed or interrupted report leaves either the old file or the new one, never half a file. matplotlib is imported lazily and used through
``Figure`` + the Agg canvas (no pyplot, no global backend switch), so it works with no display and does not
disturb an interactive session.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from functional_nn.app.data import class_names
from functional_nn.app.runs import History, RunFileError, atomic_write_bytes, read_history
from functional_nn.params import readonly

__all__ = [
    "PLOT_EXTRA_HINT",
    "accuracy_axis_floor",
    "SIZES",
    "History",
    "ReportError",
    "Run",
    "best_epoch",
    "filter_mosaic",
    "filter_scale",
    "format_confidence",
    "gif_frame_ends",
    "have_plotting",
    "read_run",
    "row_normalize",
    "select_mistakes",
    "write_report",
]

PLOT_EXTRA_HINT = "pictures need the plot extra (matplotlib, Pillow): python -m pip install 'functional-nn[plot]'"

DPI = 100
SIZES: Mapping[str, tuple[int, int]] = types.MappingProxyType({
    "curves.png": (1000, 420),
    "confusion.png": (760, 680),
    "per_class.png": (900, 460),
    "predictions.png": (800, 880),
    "mistakes.png": (800, 920),
    "filters.png": (900, 860),
    "training.gif": (800, 340),
})
"""Pixel size (width, height) of every picture ``write_report`` draws."""

GRID = 25          # images in predictions.png and mistakes.png (5 x 5)
MAX_FILTERS = 64   # first-layer units shown in filters.png (8 x 8)
_TRAIN_COLOR, _VAL_COLOR, _BEST_COLOR = "tab:blue", "tab:orange", "tab:green"
_GIF_COLORS, _GIF_TRANSPARENT = 128, 255   # palette size of training.gif; index for "unchanged pixel"
MAX_GIF_FRAMES = 500                      # longer runs: frames at evenly spaced epochs (first and last kept)
_RIGHT_COLOR, _WRONG_COLOR = "#1a7f37", "#cf222e"


class ReportError(ValueError):
    """A run folder (or the arrays given with it) cannot be drawn; the message is one line naming what is wrong."""


def have_plotting() -> bool:
    """Whether the ``plot`` extra (matplotlib and Pillow) can be imported."""
    try:
        import matplotlib  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------- run files


@attrs.frozen(eq=False)
class Run:
    """A validated run folder: ``config`` (dict), ``history`` (History), ``metrics`` (dict, lists as arrays)."""

    name: str
    config: dict
    history: History
    metrics: dict


def _load_json_object(run_dir: Path, name: str) -> dict:
    path = run_dir / name
    if not path.is_file():
        raise ReportError(f"{run_dir}: {name} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{run_dir}: {name}: cannot read: {e}") from e
    except json.JSONDecodeError as e:
        raise ReportError(f"{run_dir}: {name}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(data, dict):
        raise ReportError(f"{run_dir}: {name}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_history(run_dir: Path) -> History:
    try:
        history = read_history(run_dir / "history.csv")
    except RunFileError as e:
        raise ReportError(str(e)) from None
    if len(history) == 0:
        raise ReportError(f"{run_dir}: history.csv has no epochs (header only): the run is incomplete")
    return history


def _read_metrics(run_dir: Path) -> dict:
    name = "metrics.json"
    raw = _load_json_object(run_dir, name)
    where = f"{run_dir}: {name}"
    for key in ("test_loss", "test_accuracy", "per_class_accuracy", "confusion"):
        if key not in raw:
            raise ReportError(f"{where}: {key!r} is missing")
    metrics = dict(raw)
    for key in ("test_loss", "test_accuracy"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ReportError(f"{where}: {key!r} must be a finite number, got {value!r}")
        metrics[key] = float(value)
    if not 0.0 <= metrics["test_accuracy"] <= 1.0:
        raise ReportError(f"{where}: 'test_accuracy' must be a fraction in [0, 1], got {metrics['test_accuracy']}")
    try:
        confusion = np.asarray(raw["confusion"], dtype=np.float64)
    except (TypeError, ValueError):
        confusion = np.zeros((0,))
    k = confusion.shape[0] if confusion.ndim == 2 else 0
    if (confusion.ndim != 2 or k < 1 or confusion.shape[1] != k or not np.all(np.isfinite(confusion))
            or np.any(confusion < 0) or np.any(confusion % 1)):
        raise ReportError(f"{where}: 'confusion' must be a square list of lists of non-negative counts")
    metrics["confusion"] = readonly(confusion.astype(np.int64))
    per_class = raw["per_class_accuracy"]
    try:
        per_class = np.asarray([math.nan if v is None else v for v in per_class], dtype=np.float64)
    except (TypeError, ValueError):
        per_class = np.zeros((0,))
    if per_class.shape != (k,):
        raise ReportError(f"{where}: 'per_class_accuracy' must be a list of {k} numbers (one per confusion row)")
    finite = per_class[np.isfinite(per_class)]
    if np.any((finite < 0) | (finite > 1)):
        raise ReportError(f"{where}: 'per_class_accuracy' values must be fractions in [0, 1]")
    metrics["per_class_accuracy"] = readonly(per_class)
    classes = raw.get("classes")
    if classes is not None:
        if (not isinstance(classes, list) or len(classes) != k
                or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)):
            raise ReportError(f"{where}: 'classes' must be a list of {k} names")
        metrics["classes"] = [str(c) for c in classes]
    for key in ("best_epoch", "n_test"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ReportError(f"{where}: {key!r} must be an integer, got {value!r}")
    return metrics


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read and validate a run folder's ``config.json``, ``history.csv`` and ``metrics.json``.

    Args:
        run_dir: the run folder written by ``fnn train``.

    Returns:
        ``Run(name, config, history, metrics)``; ``metrics["confusion"]`` is an int64 (k, k) array and
        ``metrics["per_class_accuracy"]`` a float64 (k,) array.

    Raises:
        ReportError: a one-line message naming the missing or malformed file, e.g. ``runs/x: history.csv is missing``.
    """
    path = Path(run_dir)
    if not path.exists():
        raise ReportError(f"{path}: run folder is missing")
    if not path.is_dir():
        raise ReportError(f"{path}: not a folder (expected a run folder from fnn train)")
    config = _load_json_object(path, "config.json")
    history = _read_history(path)
    metrics = _read_metrics(path)
    return Run(name=path.resolve().name, config=config, history=history, metrics=metrics)


# ------------------------------------------------------------------------------------------ pure helpers


def select_mistakes(y_true: np.ndarray, probs: np.ndarray, *, k: int = GRID) -> np.ndarray:
    """Indices of the ``k`` most confident wrong predictions, most confident first (ties: lower index first).

    Args:
        y_true: int (n,) true labels.
        probs: float (n, n_classes) predicted probabilities; the prediction is the row's argmax and the
            confidence its max.
        k: how many to return at most (fewer when there are fewer mistakes).

    Returns:
        int64 (m,) indices into the rows, m = min(k, number of mistakes).

    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> select_mistakes(np.array([1, 1, 1, 0]), probs).tolist()
    [0, 3, 2]
    >>> select_mistakes(np.array([1, 1, 1, 0]), probs, k=1).tolist()
    [0]
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    wrong = np.flatnonzero(probs.argmax(axis=1) != y_true)
    confidence = probs[wrong].max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    return wrong[order[:k]].astype(np.int64)


def row_normalize(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of each true class predicted as each class); empty rows stay 0.

    >>> row_normalize(np.array([[3, 1], [0, 0]])).tolist()
    [[0.75, 0.25], [0.0, 0.0]]
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)


def format_confidence(p: float) -> str:
    """A probability as a percentage for a picture label; never "100%" unless it is exactly 1.

    >>> [format_confidence(p) for p in (0.5, 0.934, 0.9951, 0.99996, 1.0)]
    ['50%', '93%', '99.5%', '99.9%', '100%']
    """
    percent = 100.0 * float(p)
    if round(percent) >= 100 and percent < 100:
        return f"{math.floor(percent * 10) / 10:.1f}%"
    return f"{percent:.0f}%"


def filter_scale(w: np.ndarray, *, percentile: float = 99.5) -> float:
    """The shared symmetric colour limit for first-layer weight images: the ``percentile`` of ``|w|``, so a few
    extreme weights do not wash out every picture (values beyond it are clipped); 1.0 for all-zero ``w``.

    >>> filter_scale(np.array([[-2.0, 1.0], [0.5, 0.0]]), percentile=100)
    2.0
    """
    magnitudes = np.abs(np.asarray(w, dtype=np.float64))
    vmax = float(np.percentile(magnitudes, percentile)) if magnitudes.size else 0.0
    return vmax if vmax > 0 else 1.0


def filter_mosaic(w: np.ndarray, image_shape: tuple[int, int], *, gap: int = 2) -> np.ndarray:
    """Columns of ``w`` (pixels, units) as tiles of ``image_shape`` in a near-square grid, row by row, with
    ``gap`` NaN pixels between tiles and NaN in unused tiles. Returns float64 (rows*(h+gap)-gap, cols*(w+gap)-gap).

    >>> m = filter_mosaic(np.arange(12.0).reshape(4, 3), (2, 2), gap=1)
    >>> m.shape, m[:2, :2].tolist(), bool(np.isnan(m[3:, 3:]).all())
    ((5, 5), [[0.0, 3.0], [6.0, 9.0]], True)
    """
    w = np.asarray(w, dtype=np.float64)
    h, wd = image_shape
    count = w.shape[1]
    ncols = max(1, math.ceil(math.sqrt(count)))
    nrows = max(1, math.ceil(count / ncols))
    mosaic = np.full((nrows * (h + gap) - gap, ncols * (wd + gap) - gap), np.nan)
    for unit in range(count):
        r, c = divmod(unit, ncols)
        mosaic[r * (h + gap): r * (h + gap) + h, c * (wd + gap): c * (wd + gap) + wd] = w[:, unit].reshape(h, wd)
    return mosaic


def gif_frame_ends(n_epochs: int, *, max_frames: int = MAX_GIF_FRAMES) -> list[int]:
    """How many history rows each frame of training.gif shows: 1, 2, ..., n (one frame per epoch), or
    ``max_frames`` evenly spaced counts ending at n when the run is longer.

    >>> gif_frame_ends(3)
    [1, 2, 3]
    >>> gif_frame_ends(10, max_frames=4)
    [1, 4, 7, 10]
    """
    if n_epochs <= max_frames:
        return list(range(1, n_epochs + 1))
    return sorted({int(round(v)) for v in np.linspace(1, n_epochs, max_frames)})


def best_epoch(history: History, metrics: Mapping[str, Any]) -> int | None:
    """The epoch to mark as best: ``metrics["best_epoch"]`` when it is one of the run's epochs, else the epoch
    with the lowest finite ``val_loss``, else None (no validation, no marker)."""
    epochs = history.epoch.astype(np.int64)
    stated = metrics.get("best_epoch")
    if stated is not None and int(stated) in epochs.tolist():
        return int(stated)
    finite = np.isfinite(history.val_loss)
    if not finite.any():
        return None
    return int(epochs[finite][np.argmin(history.val_loss[finite])])


def _display_images(x: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(n, h*w) pixels -> (n, h, w) floats in [0, 1]: integers / 255, floats min-max scaled over the array."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        images = x.astype(np.float32) / 255.0
    else:
        images = x.astype(np.float32)
        lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 1.0)
        images = (images - lo) / (hi - lo) if hi > lo else np.zeros_like(images)
    return images.reshape((-1, *image_shape))


def _padded_limits(*series: np.ndarray, pad: float = 0.05) -> tuple[float, float]:
    values = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in series])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:      # one epoch: a window of +-10% around the value, not a microscopic one
        half = 0.1 * max(abs(hi), 0.01)
        return lo - half, hi + half
    span = hi - lo
    return lo - pad * span, hi + pad * span


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=False)


# -------------------------------------------------------------------------------------------- drawing


def _require_plotting():
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
        from PIL import Image  # noqa: F401
    except ImportError as e:
        raise ImportError(PLOT_EXTRA_HINT) from e
    return matplotlib


def _figsize(pixels: tuple[int, int]) -> tuple[float, float]:
    """Inches for a (width, height) in pixels at DPI. The 0.01-pixel margin keeps e.g. 460 / 100 * 100 =
    459.99999999999994 from becoming 459 pixels in matplotlib versions that truncate instead of rounding.

    >>> [int(v * DPI) for v in _figsize((900, 460))]
    [900, 460]
    """
    return tuple((p + 0.01) / DPI for p in pixels)


def _figure(name: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_figsize(SIZES[name]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _rc() -> dict:
    return {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "figure.titlesize": 13,
            "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
            "axes.grid": False, "savefig.transparent": False, "figure.facecolor": "white"}


def _curve_axes(fig, history: History, best: int | None, test_accuracy: float | None):
    """Two panels (loss, accuracy %) with every line drawn in full; returns (axes, lines) for the GIF to trim."""
    from matplotlib.ticker import MaxNLocator

    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history.epoch
    marker = "o" if len(epochs) <= 30 else None
    lines = {}
    lines["loss"], = ax_loss.plot(epochs, history.loss, color=_TRAIN_COLOR, marker=marker, ms=4, label="train")
    lines["accuracy"], = ax_acc.plot(epochs, 100 * history.accuracy, color=_TRAIN_COLOR, marker=marker, ms=4,
                                     label="train")
    if history.has_validation:
        lines["val_loss"], = ax_loss.plot(epochs, history.val_loss, color=_VAL_COLOR, marker=marker, ms=4,
                                          label="validation")
        lines["val_accuracy"], = ax_acc.plot(epochs, 100 * history.val_accuracy, color=_VAL_COLOR,
                                             marker=marker, ms=4, label="validation")
    if test_accuracy is not None:
        ax_acc.axhline(100 * test_accuracy, color="0.35", ls=":", lw=1.2,
                       label=f"test accuracy {100 * test_accuracy:.2f}%")
    pad = max(0.5, 0.02 * float(epochs[-1] - epochs[0]))   # first/last points and best-epoch line off the frame
    x_lo, x_hi = epochs[0] - pad, epochs[-1] + pad
    for ax in (ax_loss, ax_acc):
        ax.set_xlim(x_lo, x_hi)
        if len(epochs) <= 12:
            ax.set_xticks(epochs.astype(np.int64))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if best is not None:
            ax.axvline(best, color=_BEST_COLOR, ls="--", lw=1.2, label=f"best epoch ({best})")
    ax_loss.set_ylim(*_padded_limits(history.loss, history.val_loss))
    acc_series = [100 * history.accuracy, 100 * history.val_accuracy]
    if test_accuracy is not None:
        acc_series.append(np.array([100 * test_accuracy]))
    ax_acc.set_ylim(*_padded_limits(*acc_series))
    ax_loss.set_title("Loss (mean cross-entropy)")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_acc.set_title("Accuracy")
    ax_acc.set_ylabel("accuracy (%)")
    ax_loss.legend(loc="best")      # placed where the (full) curves are not
    ax_acc.legend(loc="best")
    return (ax_loss, ax_acc), lines


def _draw_curves(run: Run, best: int | None) -> bytes:
    fig = _figure("curves.png")
    _curve_axes(fig, run.history, best, run.metrics["test_accuracy"])
    n = len(run.history.epoch)
    fig.suptitle(f"Learning curves: {run.name} ({n} epoch{'s' if n != 1 else ''})")
    return _png_bytes(fig)


def _draw_gif(run: Run) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=_figsize(SIZES["training.gif"]), dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    history = run.history
    # The final axes limits from the start, so each frame only adds to the last (small GIF deltas).
    _, lines = _curve_axes(fig, history, None, None)
    full = {key: line.get_data() for key, line in lines.items()}
    title = fig.suptitle(f"Training {run.name}: epoch {int(history.epoch[-1])} of {int(history.epoch[-1])}")
    canvas.draw()                    # lay out once with the longest title, then freeze the layout
    fig.set_layout_engine("none")
    for ax in fig.axes:              # pin each legend where "best" put it for the full curves
        legend = ax.get_legend()
        box = legend.get_window_extent().transformed(ax.transAxes.inverted())
        ax.legend(loc="lower left", bbox_to_anchor=(box.x0, box.y0), borderaxespad=0.0)
    # Blit: draw the static parts once, then per frame restore them and draw only the lines and the title
    # (the legends were made above, so their handles stay drawn).
    for artist in (*lines.values(), title):
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    legends = [canvas.copy_from_bbox(ax.get_legend().get_window_extent()) for ax in fig.axes]
    ends = gif_frame_ends(len(history.epoch))
    frames = []
    for i in ends:
        canvas.restore_region(background)
        for key, line in lines.items():
            xs, ys = full[key]
            line.set_data(xs[:i], ys[:i])
            line.axes.draw_artist(line)
        title.set_text(f"Training {run.name}: epoch {int(history.epoch[i - 1])} of {int(history.epoch[-1])}")
        fig.draw_artist(title)
        for region in legends:       # legends stay on top of the lines, as in curves.png (pixels pasted back)
            canvas.restore_region(region)
        rgba = np.asarray(canvas.buffer_rgba())
        frames.append(Image.fromarray(np.array(rgba[..., :3])))
    # One palette for all frames (from the last, which has every colour), no dithering: unchanged pixels keep
    # their index, and each later frame stores only what changed, the rest as the transparent index
    # (the gifsicle trick; a 200-epoch GIF shrinks from ~2 MB to ~0.25 MB).
    palette = frames[-1].quantize(colors=_GIF_COLORS, method=Image.Quantize.FASTOCTREE)
    indexed = [np.asarray(f.quantize(palette=palette, dither=Image.Dither.NONE)) for f in frames]
    colors = palette.getpalette()[: 3 * _GIF_COLORS]
    colors += [255, 255, 255] * (256 - len(colors) // 3)
    images = []
    for k, current in enumerate(indexed):
        delta = current if k == 0 else np.where(current == indexed[k - 1], _GIF_TRANSPARENT, current)
        image = Image.fromarray(delta.astype(np.uint8))    # mode "L"; putpalette makes it "P"
        image.putpalette(colors)
        images.append(image)
    step_ms = int(np.clip(6000 / len(images), 60, 500))
    durations = [step_ms] * (len(images) - 1) + [2500]   # hold the finished curves before looping
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                   loop=0, optimize=False, disposal=1, transparency=_GIF_TRANSPARENT)
    return buf.getvalue()


def _draw_confusion(run: Run, names: list[str]) -> bytes:
    confusion = run.metrics["confusion"]
    k = confusion.shape[0]
    fractions = row_normalize(confusion)
    fig = _figure("confusion.png")
    ax = fig.subplots()
    from matplotlib.colors import PowerNorm

    # A square-root colour scale: a 2% confusion is visibly blue next to a 98% diagonal.
    image = ax.imshow(fractions, cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0))
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85)
    colorbar.set_ticks([0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0])
    colorbar.set_label("fraction of the true class (row-normalized, square-root scale)")
    if k <= 30:
        fontsize = 9 if k <= 10 else (7 if k <= 20 else 5)
        for i in range(k):
            for j in range(k):
                count = int(confusion[i, j])
                color = "white" if fractions[i, j] > 0.3 else ("0.6" if count == 0 else "black")
                ax.text(j, i, str(count), ha="center", va="center", fontsize=fontsize, color=color)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0,
                  ha="right" if max(map(len, names)) > 2 else "center", rotation_mode="anchor")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(confusion.sum())
    ax.set_title(f"Test confusion matrix: {run.name}\n"
                 f"{total} test images, accuracy {100 * run.metrics['test_accuracy']:.2f}% (cell text = count)")
    return _png_bytes(fig)


def accuracy_axis_floor(percent: np.ndarray) -> float:
    """Lower y limit (%) for accuracy bars: a multiple of 5 far enough below the lowest bar to compare them.

    With every class near 98%, bars drawn from 0 all look the same height; the axis starts instead at the lowest
    value less half its distance to 100 (at least one point), rounded down to a multiple of 5.

    >>> accuracy_axis_floor(np.array([97.9, 99.3])), accuracy_axis_floor(np.array([70.1, 98.0]))
    (95.0, 55.0)
    >>> accuracy_axis_floor(np.array([12.0])), accuracy_axis_floor(np.array([]))
    (0.0, 0.0)
    """
    finite = percent[np.isfinite(percent)]
    if finite.size == 0:
        return 0.0
    lowest = float(finite.min())
    return max(0.0, 5.0 * math.floor((lowest - max(1.0, (100.0 - lowest) / 2)) / 5))


def _draw_per_class(run: Run, names: list[str]) -> bytes:
    accuracy = 100 * run.metrics["per_class_accuracy"]
    support = run.metrics["confusion"].sum(axis=1)
    k = len(accuracy)
    fig = _figure("per_class.png")
    ax = fig.subplots()
    low = accuracy_axis_floor(accuracy)
    top = 100 + 0.05 * (100 - low)
    span = top - low
    heights = np.nan_to_num(accuracy, nan=low)
    ax.bar(range(k), heights - low, bottom=low, color="tab:blue", width=0.7)
    if k <= 30:   # values in one row inside the bars (clear of the overall line), above a bar too short
        fontsize = 9 if k <= 15 else 6
        for x, a, h in zip(range(k), accuracy, heights):
            text = "n/a" if not np.isfinite(a) else f"{a:.1f}"
            inside = h - low >= (0.2 if k > 15 else 0.12) * span
            ax.text(x, low + 0.03 * span if inside else h + 0.015 * span, text, ha="center", va="bottom",
                    fontsize=fontsize, color="white" if inside else "black",
                    rotation=90 if k > 15 else 0, fontweight="bold" if inside else "normal")
    overall = 100 * run.metrics["test_accuracy"]
    ax.axhline(overall, color="tab:red", ls="--", lw=1.2, label=f"overall test accuracy {overall:.2f}%")
    ax.set_ylim(low, top)
    tick_labels = [f"{n}\n(n={s})" for n, s in zip(names, support)] if k <= 15 else names
    long_names = max(map(len, names)) > 6 or k > 15
    ax.set_xticks(range(k), tick_labels, rotation=30 if long_names else 0,
                  ha="right" if long_names else "center", rotation_mode="anchor" if long_names else "default")
    ax.set_xlabel("class (n = test images of that class)" if k <= 15 else "class")
    ax.set_ylabel("test accuracy (%)" if low == 0 else f"test accuracy (%; axis starts at {low:g}%)")
    ax.set_title(f"Per-class test accuracy: {run.name}", loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.1)  # above: bars fill the axes
    ax.grid(True, axis="y", alpha=0.3)
    return _png_bytes(fig)


def _image_grid(fig, count: int, ncols: int = 5):
    nrows = max(1, math.ceil(count / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def _draw_predictions(run: Run, images: np.ndarray, y_test: np.ndarray, probs: np.ndarray,
                      names: list[str]) -> bytes:
    count = min(GRID, len(y_test))
    fig = _figure("predictions.png")
    axes = _image_grid(fig, GRID)
    predicted = probs.argmax(axis=1)
    for i, ax in enumerate(axes):
        if i >= count:
            ax.set_axis_off()
            continue
        ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        right = predicted[i] == y_test[i]
        label = f"{names[predicted[i]]} ({format_confidence(probs[i, predicted[i]])})"
        if not right:
            label += f"\ntrue: {names[y_test[i]]}"
        color = _RIGHT_COLOR if right else _WRONG_COLOR
        ax.set_title(label, color=color, fontsize=9)
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(2 if right else 3)
    n_right = int((predicted[:count] == y_test[:count]).sum())
    fig.suptitle(f"Predictions on the first {count} test images: {run.name}\n"
                 f"predicted class (confidence); green = right ({n_right}), red = wrong ({count - n_right})")
    return _png_bytes(fig)


def _draw_mistakes(run: Run, chosen: np.ndarray, images: np.ndarray, y_test: np.ndarray, probs: np.ndarray,
                   names: list[str]) -> bytes:
    """``chosen``: row indices from ``select_mistakes``; ``images``: those rows' images, in the same order."""
    n_wrong = int((probs.argmax(axis=1) != y_test).sum())
    fig = _figure("mistakes.png")
    if len(chosen) == 0:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"No mistakes: all {len(y_test)} test images were classified correctly.",
                ha="center", va="center", fontsize=13)
        fig.suptitle(f"Most confident mistakes: {run.name}")
        return _png_bytes(fig)
    axes = _image_grid(fig, GRID)
    predicted = probs.argmax(axis=1)
    for slot, ax in enumerate(axes):
        if slot >= len(chosen):
            ax.set_axis_off()
            continue
        i = chosen[slot]
        ax.imshow(images[slot], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"true: {names[y_test[i]]}\npred: {names[predicted[i]]} "
                     f"({format_confidence(probs[i, predicted[i]])})",
                     color=_WRONG_COLOR, fontsize=9)
        for spine in ax.spines.values():
            spine.set_edgecolor(_WRONG_COLOR)
            spine.set_linewidth(2)
    fig.suptitle(f"Most confident mistakes: {run.name}\n{mistakes_subtitle(len(chosen), n_wrong, len(y_test))}")
    return _png_bytes(fig)


def mistakes_subtitle(n_shown: int, n_wrong: int, n_test: int) -> str:
    """The second title line of mistakes.png.

    >>> mistakes_subtitle(25, 158, 10000)
    'the 25 most confident of 158 wrong predictions on 10000 test images'
    >>> mistakes_subtitle(3, 3, 40), mistakes_subtitle(1, 1, 40)
    ('all 3 wrong predictions on 40 test images, most confident first', 'the only wrong prediction on 40 test images')
    """
    if n_wrong == 1:
        return f"the only wrong prediction on {n_test} test images"
    if n_shown < n_wrong:
        return f"the {n_shown} most confident of {n_wrong} wrong predictions on {n_test} test images"
    return f"all {n_wrong} wrong predictions on {n_test} test images, most confident first"


def _draw_filters(run: Run, first_layer_w: np.ndarray, image_shape: tuple[int, int]) -> bytes:
    w = np.asarray(first_layer_w, dtype=np.float64)
    n_units = w.shape[1]
    count = min(MAX_FILTERS, n_units)
    shown = w[:, :count]
    vmax = filter_scale(shown)
    clipped = bool(np.abs(shown).max() > vmax)
    fig = _figure("filters.png")
    ax = fig.subplots()
    # One image of tiles (one axes, not 64: far faster to lay out), tiles separated by NaN drawn grey.
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    gap = 1
    mosaic = filter_mosaic(shown, image_shape, gap=gap)
    scale = ScalarMappable(norm=Normalize(-vmax, vmax), cmap=_colormap("RdBu_r"))
    rgba = scale.to_rgba(np.nan_to_num(mosaic))
    rgba[np.isnan(mosaic)] = (0.6, 0.6, 0.6, 1.0)                 # grey lines between tiles
    ncols = math.ceil(math.sqrt(count))
    if count % ncols:                                              # unused tiles of the last row: blank
        top = (math.ceil(count / ncols) - 1) * (image_shape[0] + gap)
        left = (count % ncols) * (image_shape[1] + gap) - gap
        rgba[top:, left:] = (1.0, 1.0, 1.0, 0.0)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_axis_off()
    colorbar = fig.colorbar(scale, ax=ax, shrink=0.6, pad=0.02, extend="both" if clipped else "neither")
    colorbar.set_label("weight (one shared scale, red > 0, blue < 0"
                       + (f"; beyond \u00b1{vmax:.2g} clipped)" if clipped else ")"))
    first = f"units 1-{count} of {n_units}" if count < n_units else f"all {n_units} units"
    fig.suptitle(f"First-layer weights as {image_shape[0]}x{image_shape[1]} images: {run.name}\n"
                 f"{first}, left to right, top to bottom; each image = the input pattern one unit responds to")
    return _png_bytes(fig)


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


# ------------------------------------------------------------------------------------------------ HTML


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1040px;
       padding: 0 1em; color: #1f2328; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.95em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: 0.9em; }
"""

_CAPTIONS = {
    "curves": "Loss and accuracy per epoch on the training and validation data; the dashed line marks the best epoch.",
    "training": "The learning curves growing epoch by epoch (animated).",
    "confusion": "Test confusion matrix: rows are true classes, columns predicted; colour is the row fraction.",
    "per_class": "Test accuracy of each class; the dashed line is the overall test accuracy.",
    "predictions": "The first 25 test images with the predicted class and its probability.",
    "mistakes": "The most confident wrong predictions on the test set.",
    "filters": "First-layer weights drawn as images on one shared colour scale.",
}


def _html_table(rows: Sequence[Sequence[str]], header: Sequence[str], numeric: Sequence[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{html.escape(c)}</td>' if num else f"<td>{html.escape(c)}</td>"
                         for c, num in zip(row, numeric)) + "</tr>\n"
        for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _render_html(run: Run, names: list[str], best: int | None, pictures: Mapping[str, bytes]) -> str:
    m, h = run.metrics, run.history
    config_rows = [(str(k), _format_value(v)) for k, v in run.config.items()]
    results = [("test accuracy", f"{100 * m['test_accuracy']:.2f}%"),
               ("test loss (mean cross-entropy)", f"{m['test_loss']:.4f}")]
    if m.get("n_test") is not None:
        results.append(("test images", str(m["n_test"])))
    results.append(("epochs run", str(len(h.epoch))))
    if best is not None:
        results.append(("best epoch", str(best)))
    last = len(h.epoch) - 1
    results.append(("final train loss / accuracy", f"{h.loss[last]:.4f} / {100 * h.accuracy[last]:.2f}%"))
    if h.has_validation:
        results.append(("final validation loss / accuracy",
                        f"{h.val_loss[last]:.4f} / {100 * h.val_accuracy[last]:.2f}%"))
    total_seconds = float(np.nansum(h.seconds))
    if np.isfinite(h.seconds).any():
        results.append(("training time", f"{total_seconds:.1f} s"))
    support = m["confusion"].sum(axis=1)
    per_class_rows = [(name, f"{100 * acc:.2f}%" if np.isfinite(acc) else "n/a", str(int(n)))
                      for name, acc, n in zip(names, m["per_class_accuracy"], support)]
    figures = []
    for file_name, data in pictures.items():
        key, ext = file_name.rsplit(".", 1)
        mime = "image/gif" if ext == "gif" else "image/png"
        width, height = SIZES[file_name]
        uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        caption = _CAPTIONS.get(key, "")
        figures.append(f'<figure id="fig-{key}">\n<img id="{key}" alt="{html.escape(file_name)}: '
                       f'{html.escape(caption)}" width="{width}" height="{height}" src="{uri}">\n'
                       f"<figcaption>{html.escape(file_name)}: {html.escape(caption)}</figcaption>\n</figure>")
    title = f"functional-nn run report: {run.name}"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}'
            f"</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            f"<h2>Results</h2>\n{_html_table(results, ('measure', 'value'), (False, True))}\n"
            f"<h2>Per-class test accuracy</h2>\n"
            f"{_html_table(per_class_rows, ('class', 'accuracy', 'test images'), (False, True, True))}\n"
            f"<h2>Configuration</h2>\n{_html_table(config_rows, ('setting', 'value'), (False, False))}\n"
            f"<h2>Pictures</h2>\n" + "\n".join(figures) + "\n</body>\n</html>\n")


# ------------------------------------------------------------------------------------------- the edge


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
    matplotlib = _require_plotting()
    best = best_epoch(run.history, run.metrics)
    grid_rows = np.arange(min(GRID, len(y_test)))
    mistake_rows = select_mistakes(y_test, probs, k=GRID)
    shown = _display_images(x_test[np.concatenate([grid_rows, mistake_rows])], image_shape)
    grid_images, mistake_images = shown[: len(grid_rows)], shown[len(grid_rows):]
    with matplotlib.rc_context(_rc()):
        pictures = {
            "curves.png": _draw_curves(run, best),
            "confusion.png": _draw_confusion(run, names),
            "per_class.png": _draw_per_class(run, names),
            "predictions.png": _draw_predictions(run, grid_images, y_test, probs, names),
            "mistakes.png": _draw_mistakes(run, mistake_rows, mistake_images, y_test, probs, names),
            "filters.png": _draw_filters(run, first_layer_w, image_shape),
            "training.gif": _draw_gif(run),
        }
    page = _render_html(run, names, best, pictures)
    target = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for file_name, data in {**pictures, "report.html": page.encode("utf-8")}.items():
        path = target / file_name
        atomic_write_bytes(path, data)
        written[file_name] = path
    return written
