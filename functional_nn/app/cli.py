"""The ``fnn`` command line: parses the arguments and dispatches to the command's own module.

``fetch``: :mod:`~functional_nn.app.data`; ``train``: :mod:`~functional_nn.app.train`; ``evaluate``:
:mod:`~functional_nn.app.evaluate`; ``predict``: :mod:`~functional_nn.app.predict`; ``report``:
:mod:`~functional_nn.app.report.command`; ``bench``: :mod:`~functional_nn.app.bench`.

Every expected failure (a bad flag or value, a missing or malformed file, a model/data mismatch) ends as one line
on stderr and exit status 2, never a traceback. ``main(argv)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import sys

from functional_nn import checkpoint as ckpt
from functional_nn.app import data as _data
from functional_nn.app import runs as _runs
from functional_nn.app.entry import exit_status
from functional_nn.app.evaluate import evaluate_command
from functional_nn.app.malloc import tune_malloc
from functional_nn.app.predict import predict_command
from functional_nn.app.settings import (ACTIVATION_NAMES, DEFAULTS, DTYPES, INITS, NORMALIZATIONS, OPTIMIZERS,
                                        PRESETS, SCHEDULES, UsageError)
from functional_nn.app.train import train_from_args
from pipelines import DataError, FetchError
from pipelines import datasets as pl_datasets
from pipelines.images import ImageError

PROG = "fnn"
CHECKPOINTS = ("model", "best", "last")


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
    data.add_argument("--data-dir", default=S, metavar="DIR",
                      help="downloads and parse cache (default $FNN_DATA_DIR, else ~/.cache/functional-nn)")
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
    parser.add_argument("--version", action="version", version=f"{PROG} (functional-nn) {_version()}",
                        help="print the version and exit")
    parser.add_argument("--completion", choices=("bash",), metavar="SHELL",
                        help="print a bash completion script: eval \"$(fnn --completion bash)\" in ~/.bashrc")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                help="fetch, train, evaluate, predict, report, export, serve, sweep or bench "
                                     "(fnn COMMAND --help)")
    sub.required = True

    p = sub.add_parser("fetch", help="download and verify a dataset into the data folder")
    p.add_argument("dataset", nargs="?", default="mnist", choices=pl_datasets.DATASETS,
                   help="the dataset to fetch (default mnist)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where to put it (default $FNN_DATA_DIR, else ~/.cache/functional-nn)")

    p = sub.add_parser("train", help="train an MLP (MNIST by default)",
                       description="Train an MLP. Settings: defaults < --preset < --config file < flags.")
    _add_train_flags(p)

    for name, text in (("evaluate", "test loss, accuracy, per-class accuracy and confusion matrix of a run"),
                       ("report", "(re)draw the pictures of a run into RUN_DIR/plots")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder made by fnn train")
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
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder made by fnn train")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="CSV / IDX files, or PNG / JPEG images of one digit")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many classes to show (default 3)")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="model",
                   help="which weights: model (final), best (validation) or last (default model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("export", help="write a trained run as an ONNX model (raw pixels in, probabilities out)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder made by fnn train")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="the model format (default onnx)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default RUN_DIR/<checkpoint>.onnx)")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="model",
                   help="which weights: model (final), best (validation) or last (default model)")

    p = sub.add_parser("serve", help="a page to draw digits and see the network answer, and a JSON API")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders made by fnn train")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the web browser")

    p = sub.add_parser("sweep", help="train every configuration of a space with several seeds, and rank them")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep file (see configs/sweep-example.toml)")
    p.add_argument("--out", metavar="SWEEP_DIR",
                   help="the sweep folder (default sweeps/<timestamp>; never overwritten)")
    p.add_argument("--resume", metavar="SWEEP_DIR", help="run the unfinished trials of an earlier sweep")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: cores / threads per worker)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="BLAS threads of each worker (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", metavar="ADDRESS", help="run the trials on this Dask scheduler (cluster extra)")
    g.add_argument("--local-cluster", type=int, metavar="N",
                   help="start a Dask LocalCluster of N worker processes (cluster extra)")
    p.add_argument("--dry-run", action="store_true", help="print the trials and exit")
    p.add_argument("--log", choices=("text", "json"), default="text",
                   help="one line per finished trial as text or JSON lines (a progress bar on a terminal)")
    p.add_argument("--quiet", action="store_true", help="print only the ranking")
    p.add_argument("--no-plots", action="store_true", help="do not draw the sweep's pictures")
    p.add_argument("--trial-plots", action="store_true",
                   help="draw each trial's own report pictures too (off by default: they take seconds each)")

    p = sub.add_parser("bench", help="benchmark the training step (see README, Performance)", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help="fnn bench's own flags (fnn bench --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fnn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    if command != "bench":   # fnn bench sets the allocator itself, as its --malloc says
        tune_malloc()        # keep freed arrays in the heap: a training step then costs no page faults (see malloc)
    prog = f"{PROG} {command}".strip()
    try:
        return _run(argv)
    except SystemExit as e:                                  # argparse: --help, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt as e:                           # Ctrl-C, or SIGTERM (entry.Terminated)
        print(f"{prog}: interrupted", file=sys.stderr)
        return exit_status(e)
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
    if argv[:1] == ["--completion"] and argv[1:] == ["bash"]:
        print(bash_completion(parser))
        return 0
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _unknown_flag(parser, args.command, unknown[0])
    return {"fetch": _data.fetch_command, "train": train_from_args, "evaluate": evaluate_command,
            "predict": predict_command, "report": _report_command, "export": _export_command,
            "serve": _serve_command, "sweep": _sweep_command}[args.command](args)


# Names people bring from PyTorch, Keras and scikit-learn, and common slips: mistyped flag -> ours.
FLAG_ALIASES = {
    "--learning-rate": "--lr", "--learning_rate": "--lr", "--learning-rate-init": "--lr", "--eta": "--lr",
    "--batch": "--batch-size", "--bs": "--batch-size", "--epoch": "--epochs", "--n-epochs": "--epochs",
    "--max-iter": "--epochs", "--max-epochs": "--epochs", "--layers": "--hidden", "--hidden-layers": "--hidden",
    "--hidden-layer-sizes": "--hidden", "--units": "--hidden", "--alpha": "--l2", "--decay": "--weight-decay",
    "--val-split": "--validation-fraction", "--validation-split": "--validation-fraction",
    "--random-state": "--seed", "--output": "--out", "--output-dir": "--out", "--opt": "--optimizer",
    "--schedule": "--lr-schedule", "--scheduler": "--lr-schedule", "--warmup": "--warmup-epochs",
    "--clip": "--clip-norm", "--grad-clip": "--clip-norm", "--momentum-beta": "--momentum",
}


def suggest_flag(flag: str, known: list[str]) -> str | None:
    """The nearest known flag to a mistyped one: an alias, the hyphenated spelling, or a close match.

    >>> suggest_flag("--learning-rate", ["--lr", "--epochs"]), suggest_flag("--batch_size", ["--batch-size"])
    ('--lr', '--batch-size')
    >>> suggest_flag("--epocs", ["--lr", "--epochs"]), suggest_flag("--zzz", ["--lr"])
    ('--epochs', None)
    """
    import difflib
    name = flag.split("=", 1)[0]
    for candidate in (FLAG_ALIASES.get(name.lower().replace("_", "-")), name.replace("_", "-"), name.lower()):
        if candidate in known:
            return candidate
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_flag(parser: argparse.ArgumentParser, command: str, flag: str) -> None:
    """Exit 2 with one line naming the subcommand and, where there is one, the nearest flag."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    known = [s for a in sub._actions for s in a.option_strings if s.startswith("--")]
    hint = suggest_flag(flag, known) if flag.startswith("-") else None
    what = f"unrecognized argument {flag}" if flag.startswith("-") else f"unexpected argument {flag!r}"
    sub.exit(2, f"{PROG} {command}: error: {what}" + (f" (did you mean {hint}?)" if hint else "")
             + f" (see {PROG} {command} --help)\n")


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``fnn``, generated from the parser itself (no dependency): subcommands,
    each one's flags, the choices of flags that have them, and file names elsewhere."""
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    lines = ["_fnn() {", '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" '
             'cmd="${COMP_WORDS[1]}" opts=""',
             '    if [ "$COMP_CWORD" -eq 1 ]; then',
             '        COMPREPLY=($(compgen -W "' + " ".join([*subs, "--help", "--version", "--completion"])
             + '" -- "$cur"))',
             "        return", "    fi", '    case "$cmd $prev" in']
    for name, sub in subs.items():
        for action in sub._actions:
            if action.choices and action.option_strings:
                for flag in action.option_strings:
                    words = " ".join(map(str, action.choices))
                    lines.append(f'        "{name} {flag}") COMPREPLY=($(compgen -W "{words}" -- "$cur")); return;;')
    lines += ["    esac", '    case "$cmd" in']
    for name, sub in subs.items():
        flags = sorted(s for a in sub._actions for s in a.option_strings)
        positional = next((a.choices for a in sub._actions if not a.option_strings and a.choices), None)
        words = " ".join([*flags, *(map(str, positional) if positional else [])])
        lines.append(f'        {name}) opts="{words}";;')
    lines += ["    esac",
              '    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
              '    else COMPREPLY=($(compgen -f -W "$opts" -- "$cur")); fi', "}",
              "complete -o filenames -F _fnn fnn"]
    return "\n".join(lines)


def _version() -> str:
    import importlib.metadata
    try:
        return importlib.metadata.version("functional-nn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _sweep_command(args) -> int:
    from functional_nn.app.sweep import sweep_command
    return sweep_command(args)


def _serve_command(args) -> int:
    from functional_nn.app.serve import serve_command    # the server only when asked for
    return serve_command(args)


def _export_command(args) -> int:
    from functional_nn.app.export import export_command   # onnx only when asked for
    return export_command(args)


def _report_command(args) -> int:
    from functional_nn.app.report.command import report_command   # the report package only when asked for
    return report_command(args)


# ----------------------------------------------------------------------------------------------- fetch


# ----------------------------------------------------------------------------------------------- train


# ------------------------------------------------------------------------------- evaluate / report / predict


def _bench(argv: list[str]) -> int:
    from functional_nn.app.bench import main as bench_main  # the harness loads only for this command

    return bench_main(argv, prog=f"{PROG} bench")


if __name__ == "__main__":
    from functional_nn.app.entry import install_sigterm
    install_sigterm()
    sys.exit(main())
