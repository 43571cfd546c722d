"""``fnn predict``: classify CSV rows, IDX items or photos of digits with a trained run.

Images are preprocessed as MNIST was made (:mod:`pipelines.images`). Imports the core, ``pipelines`` and the
application's run-folder reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from functional_nn.app import data as _data
from functional_nn.app.inference import load_run
from functional_nn.app.settings import UsageError
from pipelines import io as pl_io
from pipelines.images import ImageError, is_image_path, load_gray, mnist_style


def _predict_rows(path: str, n_features: int):
    """(x uint8, y or None, names) for a CSV / IDX input, with or without a label column."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: {_data.missing_file(p)}")
    if "idx" in p.name.lower():                    # IDX has no lines: the record, 0-based, as in DataError
        chunk = pl_io.read_arrays(p)
        _data.check_width(chunk, n_features, path)
        return chunk.x, chunk.y, [f"{path}: item {i}" for i in range(len(chunk.x))]
    lines, fields = pl_io.csv_row_lines(p)
    if fields not in (n_features, n_features + 1):
        raise UsageError(f"{path}:1: {fields} fields per row, but the model expects {n_features} "
                         f"(or {n_features + 1} with a label first)")
    chunk = pl_io.read_arrays(p, label_col=0 if fields == n_features + 1 else None)
    _data.check_width(chunk, n_features, path)
    return chunk.x, chunk.y, [f"{path}:{n}" for n in lines.tolist()]


def predict_command(args) -> int:
    """``fnn predict RUN_DIR INPUT...``: label and top-K probabilities of each CSV row, IDX item or image."""
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    model = load_run(args.run_dir, args.checkpoint)
    n_features, n_classes, classes = model.n_features, model.sizes[-1], list(model.classes)
    xs, ys, names = [], [], []
    for item in args.inputs:
        if is_image_path(item):
            if n_features != 784:
                raise UsageError(f"{item}: images need a model of 28x28 inputs, this one takes {n_features}")
            try:
                image = mnist_style(load_gray(item))
            except ImageError as e:
                raise ImageError(str(e) if str(e).startswith(item) else f"{item}: {e}") from None
            xs.append(image.reshape(1, 784))
            ys.append(None)
            names.append(item)
        else:
            x, y, rows = _predict_rows(item, n_features)
            xs.append(x)
            ys.extend([None] * len(x) if y is None else [int(v) for v in y])
            names.extend(rows)
    probs = model.predict_proba(np.concatenate(xs).astype(np.uint8, copy=False))
    k = min(args.top, n_classes)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    results = []
    for name, y, p, top in zip(names, ys, probs, order):
        entry = {"input": name, "label": classes[int(top[0])], "index": int(top[0]),
                 "top": [{"label": classes[int(j)], "probability": float(p[j])} for j in top]}
        if y is not None:
            entry["true"] = classes[y]
        results.append(entry)
    labelled = [r for r in results if "true" in r]
    accuracy = sum(r["label"] == r["true"] for r in labelled) / len(labelled) if labelled else None
    if args.json:
        print(json.dumps({"predictions": results, **({"accuracy": accuracy} if labelled else {})}))
        return 0
    for r in results:
        tops = ", ".join(f"{t['label']} {percent(t['probability'])}" for t in r["top"])
        truth = f"  [true {r['true']}{'' if r['true'] == r['label'] else ', wrong'}]" if "true" in r else ""
        print(f"{r['input']}: {r['label']}  ({tops}){truth}")
    if labelled:
        print(f"accuracy on the {len(labelled)} labelled rows: {accuracy:.4f}")
    return 0


def percent(p: float) -> str:
    """A probability as a percentage with one decimal, never rounded to a certain 0% or 100%.

    >>> percent(0.25), percent(0.0), percent(1e-5), percent(0.99999), percent(1.0)
    ('25.0%', '0%', '<0.1%', '>99.9%', '100%')
    """
    if p <= 0.0 or p >= 1.0:
        return f"{p:.0%}"
    if p < 0.0005:
        return "<0.1%"
    if p >= 0.9995:
        return ">99.9%"
    return f"{p:.1%}"
