"""The report's matplotlib pictures: curves, confusion, per-class, predictions, mistakes and filters.

Holds the picture sizes (``SIZES``), the plot-extra check (``PLOT_EXTRA_HINT``, ``have_plotting``), the figure
plumbing shared with the GIF (``figsize``, ``curve_axes``) and the pure helpers the drawings use
(``select_mistakes``, ``row_normalize``, ``format_confidence``, ``filter_scale``, ``filter_mosaic``, ...).
Each ``draw_*`` returns PNG bytes and writes nothing. Imports: the standard library, numpy and ``.run``;
matplotlib only lazily, inside functions (through ``Figure`` + the Agg canvas: no pyplot, no global backend).
"""

from __future__ import annotations

import io
import math
import types
from collections.abc import Mapping

import numpy as np

from functional_nn.app.report.run import Run
from functional_nn.app.runs import History

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
_RIGHT_COLOR, _WRONG_COLOR = "#1a7f37", "#cf222e"


def have_plotting() -> bool:
    """Whether the ``plot`` extra (matplotlib and Pillow) can be imported."""
    try:
        import matplotlib  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


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


def display_images(x: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
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


def require_plotting():
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
        from PIL import Image  # noqa: F401
    except ImportError as e:
        raise ImportError(PLOT_EXTRA_HINT) from e
    return matplotlib


def figsize(pixels: tuple[int, int]) -> tuple[float, float]:
    """Inches for a (width, height) in pixels at DPI. The 0.01-pixel margin keeps e.g. 460 / 100 * 100 =
    459.99999999999994 from becoming 459 pixels in matplotlib versions that truncate instead of rounding.

    >>> [int(v * DPI) for v in figsize((900, 460))]
    [900, 460]
    """
    return tuple((p + 0.01) / DPI for p in pixels)


def new_figure(pixels: tuple[int, int]):
    """A matplotlib Figure of ``pixels`` (width, height) on its own Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize(pixels), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure(name: str):
    return new_figure(SIZES[name])


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes at DPI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def rc_params() -> dict:
    return {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "figure.titlesize": 13,
            "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
            "axes.grid": False, "savefig.transparent": False, "figure.facecolor": "white"}


def curve_axes(fig, history: History, best: int | None, test_accuracy: float | None):
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


def draw_curves(run: Run, best: int | None) -> bytes:
    fig = _figure("curves.png")
    curve_axes(fig, run.history, best, run.metrics["test_accuracy"])
    n = len(run.history.epoch)
    fig.suptitle(f"Learning curves: {run.name} ({n} epoch{'s' if n != 1 else ''})")
    return png_bytes(fig)


def draw_confusion(run: Run, names: list[str]) -> bytes:
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
    return png_bytes(fig)


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


def draw_per_class(run: Run, names: list[str]) -> bytes:
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
    # above the axes: the bars fill them
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.1)
    ax.grid(True, axis="y", alpha=0.3)
    return png_bytes(fig)


def _image_grid(fig, count: int, ncols: int = 5):
    nrows = max(1, math.ceil(count / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def draw_predictions(run: Run, images: np.ndarray, y_test: np.ndarray, probs: np.ndarray,
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
    return png_bytes(fig)


def draw_mistakes(run: Run, chosen: np.ndarray, images: np.ndarray, y_test: np.ndarray, probs: np.ndarray,
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
        return png_bytes(fig)
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
    return png_bytes(fig)


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


def draw_filters(run: Run, first_layer_w: np.ndarray, image_shape: tuple[int, int]) -> bytes:
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
    return png_bytes(fig)


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]
