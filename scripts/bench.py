#!/usr/bin/env python
"""Benchmark harness: this project's training step against the GEMM-only floor, PyTorch CPU and scikit-learn.

Usage::

    python scripts/bench.py                    # MNIST (data/**/mnist_train.csv or --data PATH), 5 rounds
    python scripts/bench.py --rounds 9 --json  # machine-readable output
    python scripts/bench.py --quick            # fixture or synthetic data, one round: a few seconds (CI)

Everything runs in ONE process, in alternating rounds (round r: floor, fed, ours, torch, sklearn per configuration,
then the data timings), so that drift of a shared machine hits every contender alike; the report gives medians,
min-max and the ratios ours / floor, ours / fed and ours / torch. Configurations, float32, batch 128:

    (a) 784-128-64-10 ReLU, SGD lr 0.1        (b) 784-256-128-10 ReLU, Adam lr 1e-3

Rows timed per configuration, each one MNIST epoch (60000 rows, 469 steps):

- ``floor``: the 3 forward and 5 backward matrix products of every step, on preallocated random float32 operands
  (``np.matmul(..., out=...)``); nothing else. No NumPy trainer can beat it with this BLAS.
- ``fed``: the same 8 products, but the data layer's operand is each real batch of the epoch, fed as ``ours`` is
  fed and timed with it. What separates it from ``floor`` is the data: a new 400 kB batch per step that the first
  product must read (the floor's stays in cache) and the feed itself. No trainer fed this way can beat it.
- ``ours``: ``functional_nn.train.make_train_step`` over one epoch, fed as the ``fnn`` command feeds it
  (pipelines ``shuffle -> batch -> scale``: one permutation of the rows per epoch, gathered a megabyte at a time,
  batches scaled to float32 as they are drawn), all of it timed. When ``functional_nn.train`` is not importable,
  a plain NumPy reference step in this file stands in (reported as such).
- ``torch``: the same network, initial weights and batch order in PyTorch CPU, ``torch.set_num_threads`` equal to
  our BLAS threads: the uint8 tensor permuted once per epoch, then plain slices scaled to float32 per batch,
  ``F.cross_entropy``, ``torch.optim.SGD`` / ``Adam``.
- ``sklearn``: ``MLPClassifier.partial_fit`` for one epoch (same sizes, solver, learning rate, batch size, no L2);
  it shuffles with its own generator and gets the whole float32 array pre-scaled (outside the timing).

Before each timed run the harness sleeps 0.15 s so that idle BLAS / OpenMP workers of the previous contender stop
spinning. Epoch times on a shared machine have outliers: compare the minima and the per-round (paired) ratios too.

Data rows: the first parse of the CSV (``pipelines.io.read_arrays`` into an empty cache) against
``np.loadtxt(dtype=np.uint8)``, and the cached reload. Finally the peak resident memory and wall time of a default
``fnn train`` in a subprocess (skipped, with a note, when the command is missing or in ``--quick``).

torch and scikit-learn are peers for comparison, never dependencies: when absent they are skipped with a note.
This is an I/O edge (a script): it prints, reads the clock and the environment.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BATCH_SIZE = 128
SEED = 0
CONFIGS = {
    "a": {"sizes": (784, 128, 64, 10), "activation": "relu", "optimizer": "sgd", "lr": 0.1},
    "b": {"sizes": (784, 256, 128, 10), "activation": "relu", "optimizer": "adam", "lr": 1e-3},
}
CONTENDERS = ("floor", "fed", "ours", "torch", "sklearn")
WARMUP_STEPS = 20
# Before each timed run: let the previous contender's idle worker threads stop spinning (OpenBLAS spins ~0.1 s
# after its last call, OpenMP briefly), so that they do not take a core from the next one.
SETTLE_SECONDS = 0.15
QUICK_ROWS = 512  # synthetic rows for --quick when no fixture CSV exists
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


# ----------------------------------------------------------------------------------------------- environment


def blas_info() -> dict[str, Any]:
    """The BLAS NumPy uses and its thread count: threadpoolctl when installed, else ``np.show_config``.

    Called before torch or scikit-learn is imported, so every pool threadpoolctl sees here belongs to NumPy.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = pools[0]
            return {
                "name": p.get("internal_api"),
                "version": p.get("version"),
                "architecture": p.get("architecture"),
                "threading_layer": p.get("threading_layer"),
                "threads": int(p.get("num_threads") or 1),
                "source": "threadpoolctl",
            }
    config = np.show_config(mode="dicts")
    blas = config.get("Build Dependencies", {}).get("blas", {})
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return {
        "name": blas.get("name"),
        "version": blas.get("version"),
        "architecture": None,
        "threading_layer": None,
        "threads": int(threads) if threads else (os.cpu_count() or 1),
        "source": "np.show_config (threads assumed from the environment or the CPU count)",
    }


def machine_info(blas: dict[str, Any]) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "env": {k: os.environ.get(k) for k in OPENBLAS_ENV},
        "load_before": list(os.getloadavg()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


try:  # the fnn command tunes glibc the same way at its start (functional_nn/_malloc.py says why)
    from functional_nn.app.malloc import tune_malloc
except ImportError:  # the harness without the package: glibc as it is

    def tune_malloc() -> str | None:
        return None


# ------------------------------------------------------------------------------------------------------- data


def _has_header(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline().strip()
    return not first[:1].isdigit()


def find_csv(arg: str | None) -> Path | None:
    """``--data`` when given, else the first ``mnist_train.csv`` under ``data/`` (not the fixtures)."""
    if arg:
        return Path(arg)
    data = REPO / "data"
    for path in sorted(data.rglob("mnist_train.csv")):
        if "fixtures" not in path.parts:
            return path
    return None


def find_fixture() -> Path | None:
    """A labelled fixture CSV under ``data/fixtures`` (the MNIST-shaped one when there are several)."""
    fixtures = sorted((REPO / "data" / "fixtures").glob("*.csv"))
    for path in fixtures:
        if "mnist" in path.name and "test" not in path.name:
            return path
    return fixtures[0] if fixtures else None


def write_synthetic_csv(path: Path, n: int, rng: np.random.Generator) -> None:
    """A headerless MNIST-shaped CSV: label, then 784 uint8 pixels per row."""
    rows = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 784))], axis=1)
    np.savetxt(path, rows, fmt="%d", delimiter=",")


def load_training_csv(path: Path, prog: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The harness's data (``loadtxt_parse``), or None after one line on stderr naming the file and the problem."""
    try:
        x_u8, y = loadtxt_parse(path)
    except (OSError, ValueError) as exc:
        print(f"{prog}: {path}: cannot read it as an MNIST CSV (label, then pixels 0-255): {exc}", file=sys.stderr)
        return None
    return np.ascontiguousarray(x_u8, dtype=np.uint8), y


def loadtxt_parse(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The baseline parser: ``np.loadtxt(dtype=np.uint8)``; column 0 is the label."""
    table = np.loadtxt(path, dtype=np.uint8, delimiter=",", skiprows=1 if _has_header(path) else 0, ndmin=2)
    return np.ascontiguousarray(table[:, 1:]), table[:, 0].astype(np.int64)


def project_reader() -> tuple[str, Callable[[Path, Path], tuple[np.ndarray, np.ndarray]]]:
    """``pipelines.io.read_arrays`` with a cache folder when available, else a loadtxt + ``.npy`` stand-in."""
    try:
        from pipelines.io import read_arrays
    except ImportError:
        read_arrays = None
    if read_arrays is not None:

        def read(path: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
            chunk = read_arrays(path, cache_dir=cache_dir)
            return chunk.x, chunk.y

        return "pipelines.io.read_arrays", read

    def read_fallback(path: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = cache_dir / "x.npy", cache_dir / "y.npy"
        if xs.exists() and ys.exists():
            return np.load(xs), np.load(ys)
        x, y = loadtxt_parse(path)
        np.save(xs, x)
        np.save(ys, y)
        return x, y

    return "harness stand-in (np.loadtxt + .npy cache; pipelines.io not importable)", read_fallback


# ------------------------------------------------------------------------------------------- timed contenders


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def epoch_order(n: int, epoch: int) -> np.ndarray:
    """The epoch's row order, as the CLI draws it: ``default_rng([seed, epoch]).permutation(n)``."""
    return np.random.default_rng([SEED, epoch]).permutation(n)


def gather_scaled(x_u8: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of the uint8 matrix, scaled to float32 in [0, 1] (gather first: only the batch is converted)."""
    out = x_u8[idx].astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    return out


def make_floor(sizes: Sequence[int], n: int, batch_size: int, batches: Callable | None = None) -> Callable[..., float]:
    """One epoch of only the matrix products of a training step, on preallocated float32 operands.

    Per step: ``h_i @ w_i`` for the 3 layers (forward), then ``h_i.T @ d_i`` (3 weight gradients) and ``d_i @ w_i.T``
    (2 input gradients, none for the data layer): 8 GEMMs, written into preallocated outputs. ``run(steps)``.

    With ``batches`` (``epoch -> iterator of (x, y)``, the feed of :func:`epoch_batches_factory`), the data layer's
    operand is each real batch instead, made as it is drawn and included in the timing: ``run(epoch, steps)``.
    That is the ``fed`` row, the least any trainer fed this way can take: every step's products read a new batch
    (not one that stays in cache, as the floor's does), and the feed's shuffling and scaling take their time.
    """
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal((a, b), dtype=np.float32) * 0.05 for a, b in zip(sizes[:-1], sizes[1:])]
    gws = [np.empty_like(w) for w in ws]
    operands = {}
    for lo, hi in batch_bounds(n, batch_size):
        m = hi - lo
        if m not in operands:
            acts = [rng.standard_normal((m, s), dtype=np.float32) for s in sizes]
            deltas = [rng.standard_normal((m, s), dtype=np.float32) for s in sizes]
            operands[m] = (acts, deltas)
    plan = [operands[hi - lo] for lo, hi in batch_bounds(n, batch_size)]
    n_layers = len(ws)

    def products(acts: list, deltas: list) -> None:
        for i in range(n_layers):
            np.matmul(acts[i], ws[i], out=acts[i + 1])
        for i in range(n_layers - 1, -1, -1):
            np.matmul(acts[i].T, deltas[i + 1], out=gws[i])
            if i:
                np.matmul(deltas[i + 1], ws[i].T, out=deltas[i])

    def run(steps: int | None = None) -> float:
        t0 = time.perf_counter()
        for acts, deltas in plan[:steps]:
            products(acts, deltas)
        return time.perf_counter() - t0

    def run_fed(epoch: int, steps: int | None = None) -> float:
        t0 = time.perf_counter()
        for k, (xb, _) in enumerate(batches(epoch)):
            if k == steps:
                break
            acts, deltas = operands[len(xb)]
            products([xb, *acts[1:]], deltas)
        return time.perf_counter() - t0

    return run if batches is None else run_fed


def init_weights(sizes: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal float32 weights and zero biases (for the stand-in step and the peers)."""
    rng = np.random.default_rng(SEED)
    return [
        (rng.standard_normal((a, b), dtype=np.float32) * np.float32(math.sqrt(2.0 / a)), np.zeros(b, np.float32))
        for a, b in zip(sizes[:-1], sizes[1:])
    ]


def reference_step_factory(optimizer: str, lr: float):
    """A plain NumPy training step (the stand-in for ``make_train_step`` until the core is importable).

    Same signature: ``step(params, opt_state, x, y, rng) -> (params, opt_state, metrics)``; params is a list of
    ``(w, b)`` pairs; returns new arrays, never writes into its arguments.
    """
    b1, b2, eps = 0.9, 0.999, 1e-8

    def grads_of(params, x, y):
        hs = [x]
        for i, (w, b) in enumerate(params):
            z = hs[-1] @ w + b
            hs.append(np.maximum(z, 0) if i < len(params) - 1 else z)
        logits = hs[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(y))
        loss = -log_probs[rows, y].mean()
        delta = np.exp(log_probs)
        delta[rows, y] -= 1
        delta /= len(y)
        grads = [None] * len(params)
        for i in range(len(params) - 1, -1, -1):
            grads[i] = (hs[i].T @ delta, delta.sum(axis=0))
            if i:
                delta = (delta @ params[i][0].T) * (hs[i] > 0)
        metrics = {"loss": float(loss), "accuracy": float(np.mean(logits.argmax(axis=1) == y))}
        return grads, metrics

    if optimizer == "sgd":

        def init(params):
            return 0

        def step(params, state, x, y, rng=None):
            grads, metrics = grads_of(params, x, y)
            new = [(w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(params, grads)]
            return new, state + 1, metrics

    else:

        def init(params):
            zeros = [(np.zeros_like(w), np.zeros_like(b)) for w, b in params]
            return (0, zeros, [(np.zeros_like(w), np.zeros_like(b)) for w, b in params])

        def step(params, state, x, y, rng=None):
            t, mu, nu = state
            t += 1
            grads, metrics = grads_of(params, x, y)
            flat = lambda tree: [a for pair in tree for a in pair]  # noqa: E731
            pairs = lambda arrays: [tuple(arrays[i : i + 2]) for i in range(0, len(arrays), 2)]  # noqa: E731
            g, m, v, p = flat(grads), flat(mu), flat(nu), flat(params)
            m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
            v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
            size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            p = [pi - size * mi / (np.sqrt(vi) + eps * math.sqrt(1 - b2**t)) for pi, mi, vi in zip(p, m, v)]
            return pairs(p), (t, pairs(m), pairs(v)), metrics

    return init, step


def epoch_batches_factory(x_u8: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[str, Callable]:
    """``batches(epoch)``: the epoch's float32 batches, made as the ``fnn`` command makes them.

    With pipelines: ``from_arrays -> shuffle(default_rng([seed, epoch])) -> batch -> scale`` (one exact permutation
    of the uint8 rows per epoch, contiguous batch slices, each batch scaled to float32 when it is drawn). Without:
    the same permutation, gathering each batch's uint8 rows, then scaling.
    """
    n = len(y)
    try:
        from pipelines import stages
    except ImportError:
        stages = None
    if stages is not None:

        def batches(epoch: int):
            stream = stages.shuffle(stages.from_arrays(x_u8, y), np.random.default_rng([SEED, epoch]),
                                    buffer_rows=max(65536, n))
            for chunk in stages.scale(stages.batch(stream, batch_size=batch_size)):
                yield chunk.x, chunk.y

        return "pipelines shuffle -> batch -> scale", batches

    def gathered(epoch: int):
        order = epoch_order(n, epoch)
        for lo, hi in batch_bounds(n, batch_size):
            idx = order[lo:hi]
            yield gather_scaled(x_u8, idx), y[idx]

    return "per-batch uint8 gather + scale (pipelines not importable)", gathered


def make_ours(config: dict, x_u8: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[str, Callable[..., float]]:
    """One epoch of the project's training step (or the stand-in), with shuffling and batch making timed."""
    sizes, lr = config["sizes"], config["lr"]
    try:
        from functional_nn import optim
        from functional_nn.params import init_mlp
        from functional_nn.train import make_train_step
    except ImportError:
        make_train_step = None
    if make_train_step is not None:
        impl = "functional_nn make_train_step"
        optimizer = getattr(optim, config["optimizer"])(lr)
        step = make_train_step(optimizer)

        def fresh():
            params = init_mlp(np.random.default_rng(SEED), sizes, activation=config["activation"])
            return params, optimizer.init(params)

    else:
        impl = "harness reference step (functional_nn.train not importable)"
        init, step = reference_step_factory(config["optimizer"], lr)

        def fresh():
            params = init_weights(sizes)
            return params, init(params)

    feed_name, epoch_batches = epoch_batches_factory(x_u8, y, batch_size)
    impl = f"{impl}; {feed_name}"

    def run(epoch: int, steps: int | None = None) -> float:
        params, state = fresh()  # every round does the same work from the same start
        t0 = time.perf_counter()
        for k, (xb, yb) in enumerate(epoch_batches(epoch)):
            if k == steps:
                break
            params, state, metrics = step(params, state, xb, yb, None)
        seconds = time.perf_counter() - t0
        if not math.isfinite(metrics["loss"]):
            raise RuntimeError(f"ours: non-finite loss {metrics['loss']}")
        return seconds

    return impl, run


def make_torch(config: dict, x_u8: np.ndarray, y: np.ndarray, batch_size: int, threads: int):
    """PyTorch CPU, same network, weights, batch order and per-batch gather + scale; None when torch is absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    sizes = config["sizes"]
    xt, yt = torch.from_numpy(x_u8), torch.from_numpy(y)
    weights = init_weights(sizes)

    def fresh():
        layers = []
        for i, (w, b) in enumerate(weights):
            lin = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if i < len(weights) - 1:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        opt_cls = torch.optim.SGD if config["optimizer"] == "sgd" else torch.optim.Adam
        return model, opt_cls(model.parameters(), lr=config["lr"])

    bounds = batch_bounds(len(y), batch_size)
    cross_entropy = torch.nn.functional.cross_entropy

    def run(epoch: int, steps: int | None = None) -> float:
        model, opt = fresh()
        t0 = time.perf_counter()
        order = torch.from_numpy(epoch_order(len(y), epoch))
        xs, ys = xt[order], yt[order]  # one permutation per epoch, then plain slices (as ours)
        for lo, hi in bounds[:steps]:
            xb = xs[lo:hi].float().div_(255.0)
            opt.zero_grad(set_to_none=True)
            loss = cross_entropy(model(xb), ys[lo:hi])
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return f"torch {torch.__version__}", run


def make_sklearn(config: dict, x_u8: np.ndarray, y: np.ndarray, batch_size: int):
    """scikit-learn ``MLPClassifier``: one epoch of ``partial_fit``; None when scikit-learn is absent."""
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    sizes = config["sizes"]
    x_f32 = x_u8.astype(np.float32) * np.float32(1.0 / 255.0)  # sklearn takes the whole array: scaled untimed
    classes = np.arange(sizes[-1])
    extra = {"momentum": 0.0, "nesterovs_momentum": False} if config["optimizer"] == "sgd" else {}

    def run(epoch: int, steps: int | None = None) -> float:  # partial_fit always runs a whole epoch
        clf = MLPClassifier(
            hidden_layer_sizes=tuple(sizes[1:-1]),
            activation=config["activation"],
            solver=config["optimizer"],
            alpha=0.0,
            batch_size=batch_size,
            learning_rate_init=config["lr"],
            shuffle=True,
            random_state=epoch,
            **extra,
        )
        t0 = time.perf_counter()
        clf.partial_fit(x_f32, y, classes=classes)
        return time.perf_counter() - t0

    return f"scikit-learn {sklearn.__version__}", run


# ------------------------------------------------------------------------------------------- fnn train memory


def fnn_command() -> list[str] | None:
    """How to start ``fnn``: the console script when installed, else ``python -c`` on ``functional_nn.app.cli``."""
    if importlib.util.find_spec("functional_nn") is None or importlib.util.find_spec("functional_nn.app.cli") is None:
        return None
    exe = shutil.which("fnn")
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from functional_nn.app.cli import main; sys.exit(main())"]


# Runs a command and writes its exit status and peak RSS (rusage of exactly that child, from os.wait4) to a file.
# A small interpreter of its own starts the command: a child forked straight from this process would count this
# process's resident memory (data, torch) in its ru_maxrss for the moment between fork and exec.
RSS_WRAPPER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": proc.returncode, "maxrss_kb": usage.ru_maxrss}, f)
"""


def measure_fnn_train(extra_args: Sequence[str]) -> dict[str, Any]:
    """Wall time, peak RSS and test accuracy of ``fnn train`` (defaults; its run folder in a temporary directory)."""
    cmd = fnn_command()
    if cmd is None:
        return {"skipped": "functional_nn.app.cli not importable yet"}
    try:  # make sure the parse cache exists, so the timing is the "data already cached" case
        from pipelines import datasets

        datasets.load("mnist", data_dir=REPO / "data")
        cached = True
    except Exception:  # noqa: BLE001 - any failure: fnn train reports it below, uncached
        cached = False
    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as tmp:
        log, run_dir, usage = Path(tmp) / "log.txt", Path(tmp) / "run", Path(tmp) / "usage.json"
        argv = [sys.executable, "-c", RSS_WRAPPER, str(usage), *cmd, "train", "--out", str(run_dir), *extra_args]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        t0 = time.perf_counter()  # includes the wrapper's start (~20 ms)
        with open(log, "wb") as out:
            subprocess.run(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        seconds = time.perf_counter() - t0
        try:
            child = json.loads(usage.read_text())
        except (OSError, ValueError):
            child = {"returncode": None, "maxrss_kb": float("nan")}
        result = {
            "command": " ".join(["fnn", "train", "--out", "TMP", *extra_args]),
            "data_cached": cached,
            "returncode": child["returncode"],
            "seconds": seconds,
            "peak_rss_mb": child["maxrss_kb"] / 1024.0,  # Linux: kilobytes
            "log_tail": log.read_text(errors="replace").strip().splitlines()[-3:],
        }
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
            result["test_accuracy"] = metrics.get("test_accuracy")
            rows = (run_dir / "history.csv").read_text().strip().splitlines()[1:]
            result["epochs"] = len(rows)
            result["epoch_seconds"] = [float(r.split(",")[-1]) for r in rows]
        except (OSError, ValueError, IndexError):
            pass
    return result


# --------------------------------------------------------------------------------------------------- summary


def summarize(samples: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def ratio(num: dict | None, den: dict | None) -> dict[str, Any] | None:
    """Ratios of the medians and of the minima, and the per-round (paired) ratios, which drift affects least.

    On a shared machine the minimum is the run least disturbed by others; the median is what was typical.
    """
    if not num or not den:
        return None
    paired = [a / b for a, b in zip(num["samples"], den["samples"])]
    return {"of_medians": num["median"] / den["median"], "of_mins": num["min"] / den["min"],
            "paired_median": statistics.median(paired), "paired_min": min(paired), "paired_max": max(paired)}


def format_report(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    blas = m["blas"]
    env = " ".join(f"{k}={v}" for k, v in m["env"].items() if v is not None) or "no OPENBLAS_*/OMP_* variables"
    lines = [
        "functional-nn benchmark: one process, alternating rounds",
        f"machine : {m['processor']}, {m['cpus']} CPUs, {m['platform']}",
        f"python {m['python']}, numpy {m['numpy']}, BLAS {blas['name']} {blas['version']}"
        f" ({blas.get('architecture') or '?'}, {blas.get('threading_layer') or '?'}), {blas['threads']} threads"
        f" [{blas['source']}]",
        f"env     : {env}",
        f"malloc  : {m['malloc']}",
        f"load avg: {' '.join(f'{v:.2f}' for v in m['load_before'])} (before)"
        f" -> {' '.join(f'{v:.2f}' for v in report['load_after'])} (after)",
        f"data    : {s['data']} ({s['rows']} rows), batch {s['batch_size']}, {s['steps']} steps/epoch,"
        f" {s['rounds']} round(s){' [--quick]' if s['quick'] else ''}",
        "",
    ]
    for key, cfg in report["configs"].items():
        sizes = "-".join(str(v) for v in cfg["sizes"])
        lines.append(f"config ({key}) {sizes} {cfg['activation']}, {cfg['optimizer']} lr {cfg['lr']:g}:"
                     " seconds per epoch")
        lines.append(f"  {'':9s} {'median':>8s} {'min':>8s} {'max':>8s} {'/floor':>7s} {'/torch':>7s}  what")
        t = cfg["timings"]
        for name in CONTENDERS:
            row = t.get(name)
            if row is None:
                lines.append(f"  {name:9s} {'-':>8s} {'-':>8s} {'-':>8s} {'-':>7s} {'-':>7s}  {cfg['impl'][name]}")
                continue
            vs_floor = row["median"] / t["floor"]["median"]
            vs_torch = f"{row['median'] / t['torch']['median']:7.2f}" if t.get("torch") else f"{'-':>7s}"
            lines.append(f"  {name:9s} {row['median']:8.3f} {row['min']:8.3f} {row['max']:8.3f}"
                         f" {vs_floor:7.2f} {vs_torch}  {cfg['impl'][name]}")
        for name in ("ours/floor", "ours/fed", "ours/torch"):
            r = cfg["ratios"].get(name)
            if r:
                lines.append(f"  {name}: {r['of_medians']:.2f} of medians, {r['of_mins']:.2f} of minima,"
                             f" per round {r['paired_min']:.2f}-{r['paired_max']:.2f} (median {r['paired_median']:.2f})")
        lines.append("")
    d = report["data"]
    if d.get("skipped"):
        lines.append(f"data: skipped ({d['skipped']})")
    else:
        lines.append(f"data: {d['path']} ({d['megabytes']:.1f} MB), seconds")
        for name, label in (("first_parse", f"first parse: {d['reader']}"), ("loadtxt", "np.loadtxt(dtype=uint8)"),
                            ("cached_reload", "cached reload")):
            row = d[name]
            lines.append(f"  {label[:52]:52s} {row['median']:8.3f} {row['min']:8.3f} {row['max']:8.3f}")
    lines.append("")
    tr = report["train"]
    if tr.get("skipped"):
        lines.append(f"fnn train: skipped ({tr['skipped']})")
    else:
        acc = tr.get("test_accuracy")
        acc = f"{acc:.4f}" if isinstance(acc, float) else "?"
        cached = "data cached" if tr.get("data_cached") else "data cache not checked"
        lines.append(f"{tr['command']} ({cached}): peak RSS {tr['peak_rss_mb']:.0f} MB, wall {tr['seconds']:.1f} s"
                     f" for {tr.get('epochs', '?')} epochs, test accuracy {acc} (exit {tr['returncode']})")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ main


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as ``fnn`` reports them."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_args(argv: Sequence[str] | None, prog: str = "bench") -> argparse.Namespace:
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="MNIST training CSV (default: data/**/mnist_train.csv)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="fixture or synthetic data, one round (CI smoke run)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--configs", default="a,b", help="comma-separated subset of: " + ",".join(CONFIGS))
    p.add_argument("--no-peers", action="store_true", help="skip torch and scikit-learn")
    p.add_argument("--no-train", action="store_true", help="skip the fnn train memory/time measurement")
    p.add_argument("--train-args", default="", help="extra arguments for the measured `fnn train`")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="tuned (default): fixed glibc thresholds that keep freed memory in the heap, for every"
                        " contender (reproducible: glibc's adaptive ones make the same epoch 1-4x slower depending"
                        " on what was freed before); default: glibc as it is")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {unknown}; choose from {sorted(CONFIGS)}")
    return args


def main(argv: Sequence[str] | None = None, prog: str = "bench") -> int:
    """Run the harness; ``prog`` names it in error messages (``fnn bench`` passes its own name)."""
    args = parse_args(argv, prog)
    blas = blas_info()  # before torch / sklearn load their own thread pools
    machine = machine_info(blas)
    notes: list[str] = []
    malloc = tune_malloc() if args.malloc == "tuned" else None
    machine["malloc"] = malloc or "glibc defaults"
    if args.malloc == "tuned" and malloc is None:
        notes.append("--malloc tuned: not glibc on Linux, allocator left as it is")
    rounds = 1 if args.quick else args.rounds
    settle = 0.0 if args.quick else SETTLE_SECONDS

    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as tmp:
        tmp = Path(tmp)
        if args.quick:
            csv = find_fixture()
            if csv is None:
                csv = tmp / "synthetic.csv"
                write_synthetic_csv(csv, QUICK_ROWS, np.random.default_rng(SEED))
                notes.append(f"--quick: no fixture CSV under data/fixtures; {QUICK_ROWS} synthetic rows")
        else:
            csv = find_csv(args.data)
            if csv is None or not csv.exists():
                missing = f"{csv}: no such file" if csv else "no MNIST training CSV under data/ (run `fnn fetch`)"
                print(f"{prog}: {missing}; pass --data PATH/mnist_train.csv", file=sys.stderr)
                return 2
        reader_name, read = project_reader()
        loaded = load_training_csv(csv, prog)
        if loaded is None:
            return 2
        x_u8, y = loaded
        n, n_features = x_u8.shape
        steps = len(batch_bounds(n, BATCH_SIZE))

        configs = {}
        for key in args.configs.split(","):
            cfg = dict(CONFIGS[key])
            cfg["sizes"] = (n_features, *cfg["sizes"][1:])
            runners: dict[str, Callable[..., float] | None] = {}
            impl: dict[str, str] = {}
            floor = make_floor(cfg["sizes"], n, BATCH_SIZE)
            runners["floor"], impl["floor"] = (lambda r, steps=None, f=floor: f(steps)), "np.matmul(out=) x 8 per step"
            feed_name, feed = epoch_batches_factory(x_u8, y, BATCH_SIZE)
            runners["fed"] = make_floor(cfg["sizes"], n, BATCH_SIZE, batches=feed)
            impl["fed"] = "np.matmul x 8 per step on the real batches, fed and timed as ours"
            impl["ours"], runners["ours"] = make_ours(cfg, x_u8, y, BATCH_SIZE)
            for name, factory in (("torch", lambda: make_torch(cfg, x_u8, y, BATCH_SIZE, blas["threads"])),
                                  ("sklearn", lambda: make_sklearn(cfg, x_u8, y, BATCH_SIZE))):
                made = None if args.no_peers else factory()
                if made is None:
                    reason = "--no-peers" if args.no_peers else "not installed"
                    notes.append(f"config {key}: {name} skipped ({reason})")
                    runners[name] = None
                    impl[name] = f"skipped ({reason})"
                else:
                    impl[name], runners[name] = made
            configs[key] = {**cfg, "impl": impl, "runners": runners, "samples": {c: [] for c in CONTENDERS}}
        if "harness reference" in configs[next(iter(configs))]["impl"]["ours"]:
            notes.append("ours = the harness's plain NumPy reference step: functional_nn.train is not importable")

        # Warm-up, not timed: thread pools started, lazy initialisation done, code paths loaded.
        for cfg in configs.values():
            for name, run in cfg["runners"].items():
                if run is not None and name != "sklearn":
                    run(0, WARMUP_STEPS)  # epoch 0: rounds use epochs 1, 2, ...

        data_samples: dict[str, list[float]] = {"first_parse": [], "loadtxt": [], "cached_reload": []}
        for r in range(rounds):
            for cfg in configs.values():
                for name in CONTENDERS:
                    run = cfg["runners"][name]
                    if run is not None:
                        time.sleep(settle)
                        cfg["samples"][name].append(run(r + 1))
            cache = tmp / f"cache{r}"
            cache.mkdir()
            time.sleep(settle)
            t0 = time.perf_counter()
            read(csv, cache)
            data_samples["first_parse"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loadtxt_parse(csv)
            data_samples["loadtxt"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            read(csv, cache)
            data_samples["cached_reload"].append(time.perf_counter() - t0)

        data = {
            "path": str(csv),
            "megabytes": csv.stat().st_size / 1e6,
            "reader": reader_name,
            **{k: summarize(v) for k, v in data_samples.items()},
        }
        data_label = str(csv) if not str(csv).startswith(str(tmp)) else "synthetic CSV"
        data["path"] = data_label

    if args.quick or args.no_train:
        train = {"skipped": "--quick" if args.quick else "--no-train"}
    else:
        train = measure_fnn_train(args.train_args.split())
    if train.get("skipped"):
        notes.append(f"fnn train peak memory: skipped ({train['skipped']})")

    out_configs = {}
    for key, cfg in configs.items():
        timings = {c: (summarize(cfg["samples"][c]) if cfg["samples"][c] else None) for c in CONTENDERS}
        out_configs[key] = {
            "sizes": list(cfg["sizes"]),
            "activation": cfg["activation"],
            "optimizer": cfg["optimizer"],
            "lr": cfg["lr"],
            "impl": cfg["impl"],
            "timings": timings,
            "ratios": {"ours/floor": ratio(timings["ours"], timings["floor"]),
                       "ours/fed": ratio(timings["ours"], timings["fed"]),
                       "ours/torch": ratio(timings["ours"], timings["torch"])},
        }
    report = {
        "machine": machine,
        "settings": {"rounds": rounds, "quick": args.quick, "batch_size": BATCH_SIZE, "rows": n, "steps": steps,
                     "data": data_label, "seed": SEED},
        "configs": out_configs,
        "data": data,
        "train": train,
        "notes": notes,
        "load_after": list(os.getloadavg()),
    }
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    if str(REPO) not in sys.path:  # benchmark the tree this script lives in, not an installed copy
        sys.path.insert(0, str(REPO))
    sys.exit(main())
