"""``fnn report``: draw the pictures of a finished run again, on its own test set or another.

Imports the report package (matplotlib and Pillow lazily, through it), the core and the application's readers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import functional_nn as fnn
from functional_nn.app import data as _data
from functional_nn.app import report
from functional_nn.app import runs as _runs
from functional_nn.app.evaluate import evaluation_metrics, predict_proba_batches
from functional_nn.app.output import resume_command
from functional_nn.app.runs import load_run_model
from functional_nn.app.settings import UsageError


def report_command(args) -> int:
    """``fnn report RUN_DIR``: (re)draw a finished run's pictures into RUN_DIR/plots (or --out)."""
    if not report.have_plotting():
        raise UsageError(report.PLOT_EXTRA_HINT)
    run_dir = Path(args.run_dir)
    if run_dir.is_dir() and not _runs.is_complete(run_dir):   # before the model: report needs a finished run
        last = run_dir / "last.npz"
        if last.is_file() and _runs.read_checkpoint(last, "last").meta.get("diverged"):
            raise UsageError(f"{run_dir / 'metrics.json'}: missing: the run diverged, there is nothing to report")
        raise UsageError(f"{run_dir / 'metrics.json'}: missing: the run did not finish (resume it with "
                         f"{resume_command(run_dir)})")
    params, meta = load_run_model(run_dir, args.checkpoint)
    chunk, where = _data.run_test_set(run_dir, test=args.test, dataset=args.dataset, data_dir=args.data_dir)
    _data.check_width(chunk, meta["sizes"][0], where)
    norm = _data.normalizer(meta["normalization"], meta.get("dtype", "float32"))
    probs = predict_proba_batches(params, chunk, norm)
    classes = _data.class_names(meta["sizes"][-1], meta.get("classes"))
    shape = tuple(meta.get("image_shape") or (28, 28))
    metrics = None
    if args.test or args.dataset or args.checkpoint != "model":    # not what metrics.json describes
        result = fnn.evaluate(params, _data.eval_batches(chunk, norm), n_classes=meta["sizes"][-1])
        metrics = evaluation_metrics(result)
    written = report.write_report(run_dir, x_test=chunk.x, y_test=chunk.y, probs=probs,
                                  first_layer_w=np.asarray(params[0].w), classes=classes, image_shape=shape,
                                  out_dir=args.out, metrics=metrics)
    for path in written.values():
        print(path)
    return 0
