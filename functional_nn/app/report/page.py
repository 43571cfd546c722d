"""report.html: one self-contained page (results, per-class and configuration tables, every picture inline).

Holds ``render_html`` (the page's text from a ``Run`` and the pictures' bytes) and its table and CSS helpers.
Imports: the standard library, numpy, ``.figures`` (picture sizes) and ``.run``; no plotting package.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from functional_nn.app.report.figures import SIZES
from functional_nn.app.report.run import Run


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=False)


CSS = """
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


def html_table(rows: Sequence[Sequence[str]], header: Sequence[str], numeric: Sequence[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{html.escape(str(c))}</td>' if num else f"<td>{html.escape(str(c))}</td>"
                         for c, num in zip(row, numeric)) + "</tr>\n"
        for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def render_html(run: Run, names: list[str], best: int | None, pictures: Mapping[str, bytes]) -> str:
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
            f"</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            f"<h2>Results</h2>\n{html_table(results, ('measure', 'value'), (False, True))}\n"
            f"<h2>Per-class test accuracy</h2>\n"
            f"{html_table(per_class_rows, ('class', 'accuracy', 'test images'), (False, True, True))}\n"
            f"<h2>Configuration</h2>\n{html_table(config_rows, ('setting', 'value'), (False, False))}\n"
            f"<h2>Pictures</h2>\n" + "\n".join(figures) + "\n</body>\n</html>\n")
