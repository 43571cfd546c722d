"""``bench``'s command line: arguments, one-line errors (exit 2), and the run from data to the printed report.

An I/O edge (prints, reads the clock, temporary files). Imports the standard library, numpy and the bench's other
modules; ``fnn bench`` (``functional_nn.app.cli``) and ``scripts/bench.py`` call :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from functional_nn.app.bench import data as bench_data
from functional_nn.app.bench.configs import BATCH_SIZE, CONFIGS, SEED, SETTLE_SECONDS
from functional_nn.app.bench.feed import batch_bounds
from functional_nn.app.bench.machine import blas_info, machine_info, set_malloc
from functional_nn.app.bench.report import config_report, format_report, summarize
from functional_nn.app.bench.rounds import alternate, contenders, warm_up
from functional_nn.app.bench.train_run import measure_fnn_train

DESCRIPTION = ("Benchmark harness: this project's training step against the GEMM-only floor, PyTorch CPU and"
               " scikit-learn.")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as ``fnn`` reports them."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_args(argv: Sequence[str] | None, prog: str = "bench") -> argparse.Namespace:
    """The options of ``bench``; a usage error exits 2 with one line on stderr."""
    p = OneLineParser(prog=prog, description=DESCRIPTION)
    p.add_argument("--data", help="MNIST training CSV (default: data/**/mnist_train.csv)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="fixture or synthetic data, one round (CI smoke run)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--configs", default="a,b", help="comma-separated subset of: " + ",".join(CONFIGS))
    p.add_argument("--no-peers", action="store_true", help="skip torch and scikit-learn")
    p.add_argument("--no-train", action="store_true", help="skip the fnn train memory/time measurement")
    p.add_argument("--train-args", default="", help="extra arguments for the measured `fnn train`")
    p.add_argument("--time-to", type=float, metavar="ACC",
                   help="also time PyTorch CPU training fnn's default configuration until its test accuracy reaches"
                        " ACC (e.g. 0.98), to print beside the wall time of the whole fnn train command")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="tuned (default): fixed glibc thresholds that keep freed memory in the heap, for every"
                        " contender (reproducible: glibc's adaptive ones make the same epoch 1-4x slower depending"
                        " on what was freed before); default: glibc as it is")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.time_to is not None and not 0 < args.time_to < 1:
        p.error(f"--time-to must be an accuracy between 0 and 1, got {args.time_to}")
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {unknown}; choose from {sorted(CONFIGS)}")
    return args


def serve_round_trip(repeats: int) -> dict:
    """Seconds of fnn serve's work for one drawing (decode a 280x280 PNG, preprocess, forward the default
    network), the first tenth of the repeats left out as warm-up; skipped without Pillow."""
    try:
        from functional_nn.app.serve import default_network_run, round_trip_seconds, sample_drawing_png
        png = sample_drawing_png()
    except ImportError:
        return {"skipped": "Pillow not installed"}
    seconds = round_trip_seconds(default_network_run(), png, repeats=repeats)
    return summarize(seconds[max(1, repeats // 10):])


def time_to_accuracy(args, csv: Path, *, threads: int) -> dict:
    """PyTorch's training seconds to ``--time-to`` on fnn's default configuration (MNIST's own test set)."""
    from functional_nn.app.bench.time_to import torch_time_to
    from functional_nn.app.settings import resolve
    data_dir = bench_data.dataset_dir(csv)
    if data_dir is None:
        return {"skipped": "needs the MNIST data folder (train and test CSVs)"}
    from pipelines import datasets
    mnist = datasets.load("mnist", data_dir=data_dir)
    settings, _ = resolve({}, {})
    result = torch_time_to(args.time_to, (np.asarray(mnist.train.x), np.asarray(mnist.train.y)),
                           (np.asarray(mnist.test.x), np.asarray(mnist.test.y)), settings, threads=threads)
    return result if result is not None else {"skipped": "torch not installed"}


def main(argv: Sequence[str] | None = None, prog: str = "bench") -> int:
    """Run the harness and print its report; the exit status. ``prog`` names it in errors (``fnn bench``)."""
    args = parse_args(argv, prog)
    blas = blas_info()  # before torch / sklearn load their own thread pools
    machine = machine_info(blas)
    machine["malloc"], malloc_note = set_malloc(args.malloc)
    notes = [malloc_note] if malloc_note else []
    rounds = 1 if args.quick else args.rounds
    settle = 0.0 if args.quick else SETTLE_SECONDS

    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as tmp:
        tmp = Path(tmp)
        if args.quick:
            csv, quick_note = bench_data.quick_csv(tmp)
            notes += [quick_note] if quick_note else []
        else:
            csv = bench_data.find_csv(args.data)
            if csv is None or not csv.is_file():
                print(bench_data.missing_csv(csv, prog), file=sys.stderr)
                return 2
        loaded = bench_data.load_training_csv(csv, prog)
        if loaded is None:
            return 2
        x_u8, y = loaded
        n, n_features = x_u8.shape

        configs, impls, runners = {}, {}, {}
        for key in args.configs.split(","):
            configs[key] = {**CONFIGS[key], "sizes": (n_features, *CONFIGS[key]["sizes"][1:])}
            impls[key], runners[key], skipped = contenders(configs[key], x_u8, y, threads=blas["threads"],
                                                           peers=not args.no_peers)
            notes += [f"config {key}: {note}" for note in skipped]
        warm_up(runners)
        samples, data_samples = alternate(runners, rounds=rounds, settle=settle, csv=csv, tmp=tmp)
        data_label = "synthetic CSV" if csv.is_relative_to(tmp) else str(csv)
        data = {"path": data_label, "megabytes": csv.stat().st_size / 1e6, "reader": bench_data.READER,
                **{k: summarize(v) for k, v in data_samples.items()}}

    if args.quick or args.no_train:
        train = {"skipped": "--quick" if args.quick else "--no-train"}
        notes.append(f"fnn train peak memory: skipped ({train['skipped']})")
    else:
        data_dir = bench_data.dataset_dir(csv) or bench_data.data_dirs()[0]
        train = measure_fnn_train(args.train_args.split(), data_dir)

    time_to = time_to_accuracy(args, csv, threads=blas["threads"]) if args.time_to is not None else None
    serve = serve_round_trip(repeats=20 if args.quick else 200)
    report = {
        "machine": machine,
        "settings": {"rounds": rounds, "quick": args.quick, "batch_size": BATCH_SIZE, "rows": n,
                     "steps": len(batch_bounds(n, BATCH_SIZE)), "data": data_label, "seed": SEED},
        "configs": {key: config_report({**cfg, "impl": impls[key]}, samples[key]) for key, cfg in configs.items()},
        "data": data,
        "train": train,
        "serve": serve,
        "time_to": time_to,
        "notes": notes,
        "load_after": list(os.getloadavg()),
    }
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0
