"""The ``fnn`` command: fetch, train, evaluate, predict, report and bench (the application edge).

Every expected failure (a bad flag or value, a missing or malformed file, a model/data mismatch) ends as
one line on stderr and exit status 2, never a traceback. ``main(argv)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from functional_nn.app import data as _data, runs as _runs
from functional_nn.app.malloc import tune_malloc
from functional_nn import checkpoint as ckpt
from functional_nn.app.settings import (ACTIVATION_NAMES, DEFAULTS, DTYPES, INITS, NORMALIZATIONS, OPTIMIZERS, PRESETS,
                                     SCHEDULES, UsageError, check, read_toml, resolve)
from functional_nn.app.train import (Output, _nan_to_none, absolute_paths, evaluation_metrics, predict_proba_batches,
                                  resume_command, train_command)
from pipelines.images import ImageError, is_image_path, load_gray, mnist_style
from pipelines import DataError, FetchError
from pipelines import datasets as pl_datasets
from pipelines import io as pl_io

PROG = "fnn"
CHECKPOINTS = ("model", "best", "last")
REPO_ROOT = Path(__file__).resolve().parents[2]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int_list(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer width, got {text!r}") from None


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    d = DEFAULTS
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=S, metavar="NAME",
                      help=f"named dataset: {', '.join(pl_datasets.DATASETS)} (default {d['dataset']})")
    data.add_argument("--train", default=S, metavar="PATH", help="training CSV or IDX file instead of --dataset")
    data.add_argument("--test", default=S, metavar="PATH", help="test CSV or IDX file (with --train, or to "
                      "replace the dataset's test set)")
    data.add_argument("--data-dir", default=S, metavar="DIR", help=f"dataset cache folder (default {d['data_dir']})")
    data.add_argument("--validation-fraction", type=float, default=S, metavar="F",
                      help=f"share of the training set held out for validation (default {d['validation_fraction']})")
    data.add_argument("--normalize", default=S, choices=NORMALIZATIONS,
                      help="scale: pixels / 255; standardize: per-pixel mean and std of the training split "
                           f"(default {d['normalize']})")
    data.add_argument("--augment-shift", type=int, default=S, metavar="PIXELS",
                      help="random shifts of up to PIXELS in each direction, 28x28 images (default 0: off)")
    model = p.add_argument_group("model")
    model.add_argument("--hidden", type=_positive_int_list, nargs="*", default=S, metavar="N",
                       help=f"hidden layer widths (default {' '.join(map(str, d['hidden']))}; "
                            "none: softmax regression)")
    model.add_argument("--activation", default=S, choices=ACTIVATION_NAMES,
                       help=f"hidden activation (default {d['activation']})")
    model.add_argument("--init", default=S, choices=INITS,
                       help=f"weight init (default {d['init']})")
    model.add_argument("--dtype", default=S, choices=DTYPES, help=f"(default {d['dtype']})")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--optimizer", default=S, choices=OPTIMIZERS, help=f"(default {d['optimizer']})")
    opt.add_argument("--lr", type=float, default=S, help=f"peak learning rate (default {d['lr']:g})")
    opt.add_argument("--momentum", type=float, default=S, help=f"momentum / nesterov beta (default {d['momentum']})")
    opt.add_argument("--beta1", type=float, default=S, help=f"adam(w) beta1 (default {d['beta1']})")
    opt.add_argument("--beta2", type=float, default=S, help=f"adam(w) beta2 (default {d['beta2']})")
    opt.add_argument("--weight-decay", type=float, default=S, help="adamw decoupled weight decay (default 0)")
    opt.add_argument("--l2", type=float, default=S, help="L2 penalty added to the loss (default 0)")
    opt.add_argument("--dropout", type=float, default=S, help="dropout rate on hidden layers, in [0, 1) (default 0)")
    opt.add_argument("--clip-norm", type=float, default=S, metavar="NORM", help="clip gradients to this global norm")
    opt.add_argument("--batch-size", type=int, default=S, help=f"(default {d['batch_size']})")
    opt.add_argument("--epochs", type=int, default=S, help=f"(default {d['epochs']})")
    opt.add_argument("--lr-schedule", default=S, choices=SCHEDULES, help=f"(default {d['lr_schedule']})")
    opt.add_argument("--warmup-epochs", type=float, default=S,
                     help=f"linear learning-rate warm-up, in epochs (default {d['warmup_epochs']:g})")
    opt.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=S,
                     help="stop when the validation loss has not improved for --patience epochs, keep the best")
    opt.add_argument("--patience", type=int, default=S, help=f"(default {d['patience']})")
    opt.add_argument("--seed", type=int, default=S, help=f"seeds init, split, shuffles, dropout (default {d['seed']})")
    run = p.add_argument_group("run")
    run.add_argument("--preset", default=S, choices=tuple(PRESETS),
                     help="best: " + ", ".join(f"{k}={v}" for k, v in PRESETS["best"].items()))
    run.add_argument("--config", metavar="FILE.toml", help="settings file (TOML); flags override it")
    run.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<timestamp>)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.npz")
    run.add_argument("--overwrite", action="store_true", help="replace the run files in an existing --out folder")
    run.add_argument("--dry-run", action="store_true", help="print the resolved settings and exit")
    run.add_argument("--log", choices=("text", "json"), default="text", help="epoch lines as text or JSON lines")
    run.add_argument("--quiet", action="store_true", help="print only the final result")
    run.add_argument("--no-plots", action="store_true", help="do not draw plots/ at the end")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``fnn`` and its subcommands."""
    parser = _Parser(prog=PROG, description="Train and use a pure-NumPy MLP on MNIST-style data.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("fetch", help="download and verify a dataset into the data folder")
    p.add_argument("dataset", nargs="?", default="mnist", choices=pl_datasets.DATASETS)
    p.add_argument("--data-dir", default="data", metavar="DIR")

    p = sub.add_parser("train", help="train an MLP (MNIST by default)",
                       description="Train an MLP. Settings: defaults < --preset < --config file < flags.")
    _add_train_flags(p)

    for name, text in (("evaluate", "test loss, accuracy, per-class accuracy and confusion matrix of a run"),
                       ("report", "(re)draw the pictures of a run into RUN_DIR/plots")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_dir", metavar="RUN_DIR")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--dataset", metavar="NAME", help="evaluate on this dataset's test set")
        g.add_argument("--test", metavar="PATH", help="evaluate on this CSV or IDX file")
        p.add_argument("--data-dir", metavar="DIR", help="dataset cache folder (default: the run's)")
        p.add_argument("--checkpoint", choices=CHECKPOINTS, default="model",
                       help="which weights: model (final), best (validation) or last (default model)")
        if name == "evaluate":
            p.add_argument("--json", action="store_true", help="print one JSON object")
        else:
            p.add_argument("--out", metavar="DIR", help="write the pictures here (default RUN_DIR/plots)")

    p = sub.add_parser("predict", help="classify CSV rows or digit images with a trained run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="CSV / IDX files, or PNG / JPEG images of one digit")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many classes to show (default 3)")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="model")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("bench", help="benchmark the training step (see README, Performance)", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fnn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    tune_malloc()  # keep freed arrays in the heap: a training step then costs no page faults (see _malloc)
    command = next((a for a in argv if not a.startswith("-")), "")
    prog = f"{PROG} {command}".strip()
    try:
        return _run(argv)
    except SystemExit as e:                                  # argparse: --help, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                                   # e.g. `fnn predict ... | head`
        return 0
    except Exception as e:                                    # noqa: BLE001 - only the known kinds below
        if not isinstance(e, _expected_errors()):
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _expected_errors() -> tuple[type[BaseException], ...]:
    kinds = [UsageError, DataError, FetchError, ckpt.CheckpointError, ImageError, OSError, _runs.RunFileError]
    try:
        from functional_nn.app.report import ReportError
        kinds.append(ReportError)
    except ImportError:
        pass
    return tuple(kinds)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__


def _run(argv: list[str]) -> int:
    parser = build_parser()
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = parser.parse_args(argv)
    return {"fetch": _fetch, "train": _train, "evaluate": _evaluate, "predict": _predict,
            "report": _report}[args.command](args)


# ----------------------------------------------------------------------------------------------- fetch

def _fetch(args) -> int:
    paths = pl_datasets.fetch(args.dataset, data_dir=args.data_dir, progress=_progress)
    for path in paths:
        print(path)
    return 0


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- train

def _train(args) -> int:
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    file_settings = read_toml(args.config) if args.config else {}
    if args.resume is not None:
        if args.out is not None or args.overwrite:
            raise UsageError("--resume continues a run in its own folder: drop --out / --overwrite")
        if args.dry_run:
            raise UsageError("--dry-run cannot be combined with --resume")
        settings, sources = dict(DEFAULTS), {}
        given = {**file_settings, **given}
    else:
        settings, sources = resolve(given, file_settings, config_path=args.config)
        if settings["dataset"] is not None and settings["dataset"] not in pl_datasets.DATASETS:
            raise UsageError(f"{sources.get('dataset', '--dataset')}: unknown dataset '{settings['dataset']}' "
                             f"(choose from {', '.join(pl_datasets.DATASETS)})")
        check(settings, sources)
        for key in ("train", "test"):
            if settings[key] is not None and not Path(settings[key]).is_file():
                raise UsageError(f"{sources.get(key, '--' + key)} {settings[key]}: "
                                 f"{_data.missing_file(settings[key])}")
        settings = absolute_paths(settings)                 # as config.json will record them
    if args.dry_run:
        print(json.dumps(settings, indent=2))
        print(f"fnn train: dry run: nothing trained; the run folder would be "
              f"{args.out or _runs.default_run_dir()}", file=sys.stderr)
        return 0
    output = Output(log=args.log, quiet=args.quiet)
    return train_command(settings, sources, out_dir=args.out, resume=args.resume, overwrite=args.overwrite,
                         given=given, plots=not args.no_plots, output=output)


# ------------------------------------------------------------------------------- evaluate / report / predict

def load_run_model(run_dir: str | Path, which: str = "model"):
    """(params, meta) of a run folder's model.npz / best.npz / last.npz, or a one-line UsageError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    path = run_dir / f"{which}.npz"
    if not path.is_file():
        if which == "model" and (run_dir / "last.npz").is_file():
            if ckpt.load(run_dir / "last.npz").meta.get("diverged"):
                raise UsageError(f"{path}: missing: the run diverged (its last good weights: --checkpoint last)")
            raise UsageError(f"{path}: missing: the run did not finish (resume it with "
                             f"{resume_command(run_dir)}, or pass --checkpoint last)")
        raise UsageError(f"{path}: missing (is {run_dir} a run folder made by fnn train?)")
    loaded = ckpt.load(path)
    for key in ("sizes", "normalization"):
        if key not in loaded.meta:
            raise UsageError(f"{path}: no '{key}' in its metadata (not written by fnn train)")
    return loaded.params, loaded.meta


def _run_config(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        return _runs.read_json(path)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _test_set(args, run_dir: Path) -> tuple:
    """(chunk, description) of the labelled data to evaluate on."""
    config = _run_config(run_dir)
    data_dir = args.data_dir or config.get("data_dir") or "data"
    if args.test:
        return _data.read_labelled(args.test, data_dir=data_dir)[0], args.test
    name = args.dataset or (None if config.get("test") else config.get("dataset"))
    if name:
        return _data.load_named_test(name, data_dir=data_dir, progress=_progress), f"{name} test set"
    if config.get("test"):
        return _data.read_labelled(config["test"], data_dir=data_dir)[0], config["test"]
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"{run_dir / 'config.json'}: missing, so the run's test set is unknown; "
                         "pass --dataset NAME or --test PATH")
    raise UsageError(f"{run_dir}: no test set recorded in config.json; pass --dataset NAME or --test PATH")


def _evaluate(args) -> int:
    import functional_nn as fnn
    run_dir = Path(args.run_dir)
    params, meta = load_run_model(run_dir, args.checkpoint)
    chunk, where = _test_set(args, run_dir)
    _data.check_width(chunk, meta["sizes"][0], where)
    n_classes = meta["sizes"][-1]
    norm = _data.normalizer(meta["normalization"], meta.get("dtype", "float32"))
    result = fnn.evaluate(params, _data.eval_batches(chunk, norm), n_classes=n_classes)
    classes = _data.class_names(n_classes, meta.get("classes"))
    confusion = np.asarray(result.confusion)
    off = [(int(confusion[t, p]), classes[t], classes[p]) for t in range(n_classes) for p in range(n_classes)
           if t != p and confusion[t, p] > 0]
    top = sorted(off, key=lambda c: -c[0])[:5]
    report = {"data": str(where), "checkpoint": args.checkpoint, "n": int(result.n),
              "loss": float(result.loss), "accuracy": float(result.accuracy),
              "per_class_accuracy": dict(zip(classes, map(_nan_to_none, result.per_class_accuracy))),
              "top_confusions": [{"true": t, "predicted": p, "count": c} for c, t, p in top],
              "classes": classes, "confusion": confusion.tolist()}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{run_dir} ({args.checkpoint}.npz) on {where}: {report['n']} rows")
    print(f"loss: {report['loss']:.4f} - accuracy: {report['accuracy']:.4f}")
    print("per-class accuracy:")
    width = max(len(c) for c in classes)
    for c, a in report["per_class_accuracy"].items():
        print(f"  {c:>{width}}: {'-' if a is None else format(a, '.4f')}")
    print("top confusions (true -> predicted: count):")
    for c, t, p in top:
        print(f"  {t} -> {p}: {c}")
    print(confusion_table(confusion, classes))
    return 0


def confusion_table(confusion: np.ndarray, classes: list[str]) -> str:
    """The confusion matrix as a text table (rows = true class, columns = predicted class).

    >>> print(confusion_table(np.array([[5, 1], [0, 7]]), ["a", "b"]))
    confusion matrix (rows = true, columns = predicted):
    true\\pred  a  b
            a  5  1
            b  0  7
    """
    labels = [c if len(c) <= 6 else c[:6].strip() for c in classes]
    cell = max(max(len(str(int(confusion.max()))) if confusion.size else 1, 1), max(len(c) for c in labels))
    head = "true\\pred"
    lines = ["confusion matrix (rows = true, columns = predicted):",
             f"{head}  " + "  ".join(f"{c:>{cell}}" for c in labels)]
    for label, row in zip(labels, confusion):
        lines.append(f"{label:>{len(head)}}  " + "  ".join(f"{int(v):>{cell}}" for v in row))
    return "\n".join(lines)


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


def _predict(args) -> int:
    import functional_nn as fnn
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    params, meta = load_run_model(args.run_dir, args.checkpoint)
    n_features, n_classes = meta["sizes"][0], meta["sizes"][-1]
    classes = _data.class_names(n_classes, meta.get("classes"))
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
    from pipelines import Chunk
    chunk = Chunk(np.concatenate(xs).astype(np.uint8, copy=False), None)
    norm = _data.normalizer(meta["normalization"], meta.get("dtype", "float32"))
    probs = predict_proba_batches(params, chunk, norm) if len(chunk.x) else np.zeros((0, n_classes))
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


def _report(args) -> int:
    from functional_nn.app import report
    if not report.have_plotting():
        raise UsageError(report.PLOT_EXTRA_HINT)
    run_dir = Path(args.run_dir)
    if run_dir.is_dir() and not _runs.is_complete(run_dir):   # before the model: report needs a finished run
        last = run_dir / "last.npz"
        if last.is_file() and ckpt.load(last).meta.get("diverged"):
            raise UsageError(f"{run_dir / 'metrics.json'}: missing: the run diverged, there is nothing to report")
        raise UsageError(f"{run_dir / 'metrics.json'}: missing: the run did not finish (resume it with "
                         f"{resume_command(run_dir)})")
    params, meta = load_run_model(run_dir, args.checkpoint)
    chunk, where = _test_set(args, run_dir)
    _data.check_width(chunk, meta["sizes"][0], where)
    norm = _data.normalizer(meta["normalization"], meta.get("dtype", "float32"))
    probs = predict_proba_batches(params, chunk, norm)
    classes = _data.class_names(meta["sizes"][-1], meta.get("classes"))
    shape = tuple(meta.get("image_shape") or (28, 28))
    metrics = None
    if args.test or args.dataset or args.checkpoint != "model":    # not what metrics.json describes
        import functional_nn as fnn
        result = fnn.evaluate(params, _data.eval_batches(chunk, norm), n_classes=meta["sizes"][-1])
        metrics = evaluation_metrics(result)
    written = report.write_report(run_dir, x_test=chunk.x, y_test=chunk.y, probs=probs,
                                  first_layer_w=np.asarray(params[0].w), classes=classes, image_shape=shape,
                                  out_dir=args.out, metrics=metrics)
    for path in written.values():
        print(path)
    return 0


def _bench(argv: list[str]) -> int:
    from functional_nn.app.bench import main as bench_main  # the harness loads only for this command

    return bench_main(argv, prog=f"{PROG} bench")


if __name__ == "__main__":
    sys.exit(main())
