#!/usr/bin/env python
"""Where a training step's time goes beyond its matrix products: the measurements behind bench.py's ratios.

Usage::

    python scripts/bench_step.py              # MNIST (data/**/mnist_train.csv or --data PATH), 7 rounds
    python scripts/bench_step.py --quick      # fixture data, one round: a few seconds (CI smoke run)

One process, alternating rounds (each round: every row once), medians and minima. Rows:

- per configuration of scripts/bench.py, seconds per MNIST epoch, all fed the same way (pipelines shuffle ->
  batch -> scale, timed): ``fed``, bench.py's 8 matrix products on the real batches; ``inline``, a hand-written
  NumPy step doing this project's operations written out inline (the same folded constants, no records, no
  checks, no metrics): what the step's arithmetic costs without the library around it; ``ours``,
  ``make_train_step``;
- ``overhead``: microseconds per step of ``make_train_step`` on a network so small (inputs and hidden widths
  divided by 8) that its matrix products cost next to nothing: the price of its 40-odd NumPy calls and Python;
- ``adam update``: microseconds per step of the fused Adam update alone on the 235,146 parameters of
  784-256-128-10 (its 11 elementwise passes), gradients in a fresh buffer each step, outputs fed back.

This is an I/O edge (a script): it prints and reads the clock.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's packages

from functional_nn import adam, init_mlp, make_train_step, optim, tree_leaves  # noqa: E402
from functional_nn.app.bench import data as bench_data  # noqa: E402
from functional_nn.app.bench.cli import OneLineParser  # noqa: E402
from functional_nn.app.bench.configs import BATCH_SIZE, CONFIGS, SEED, SETTLE_SECONDS  # noqa: E402
from functional_nn.app.bench.feed import epoch_batches_factory  # noqa: E402
from functional_nn.app.bench.floor import make_floor  # noqa: E402
from functional_nn.app.bench.machine import set_malloc  # noqa: E402
from functional_nn.app.bench.ours import make_ours  # noqa: E402
from functional_nn.model import with_leaves  # noqa: E402

B1, B2, EPS = 0.9, 0.999, 1e-8


def make_inline(config: dict, batches: Callable) -> Callable[..., float]:
    """One epoch of a hand-written step: this project's operations inline, leaf by leaf, nothing else."""
    sizes, lr, kind = config["sizes"], config["lr"], config["optimizer"]
    n_layers = len(sizes) - 1
    c = (1 - B2) / (B2 * (1 - B1) ** 2)

    def run(epoch: int, keep: list | None = None) -> float:
        """Seconds for the epoch; with ``keep``, the final parameter arrays are appended to it (for tests)."""
        params = init_mlp(np.random.default_rng(SEED), sizes, activation=config["activation"])
        p = [np.array(leaf) for leaf in tree_leaves(params)]  # [w0, b0, w1, b1, ...]
        ms, vs = [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p]
        t = 0
        t0 = time.perf_counter()
        for x, y in batches(epoch):
            t += 1
            hs = [x]
            for i in range(n_layers):
                z = hs[-1] @ p[2 * i]
                z += p[2 * i + 1]
                if i < n_layers - 1:
                    np.maximum(z, 0, out=z)
                hs.append(z)
            d, rows = hs[-1], np.arange(len(y))
            d -= d[rows, d.argmax(axis=1)][:, None]
            np.exp(d, out=d)
            d /= d.sum(axis=1, keepdims=True)
            d[rows, y] -= 1.0
            d *= (-lr if kind == "sgd" else 1 - B1) / len(y)
            g = [None] * (2 * n_layers)
            for i in range(n_layers - 1, -1, -1):
                g[2 * i], g[2 * i + 1] = hs[i].T @ d, d.sum(axis=0)
                if i:
                    d = d @ p[2 * i].T
                    np.multiply(d, hs[i] > 0, out=d)
            if kind == "sgd":
                p = [np.add(gi, pi, out=gi) for gi, pi in zip(g, p)]
                continue
            sqrt_bc2 = math.sqrt(1 - B2**t)
            step_size, eps_hat = -lr * sqrt_bc2 / (1 - B1**t), EPS * sqrt_bc2
            for k, (gk, pk, mk, vk) in enumerate(zip(g, p, ms, vs)):
                m = mk * B1
                m += gk
                v = np.square(gk)
                v *= c
                v += vk
                v *= B2
                np.sqrt(v, out=gk)
                gk += eps_hat
                np.divide(m, gk, out=gk)
                gk *= step_size
                p[k] = np.add(gk, pk, out=gk)
                ms[k], vs[k] = m, v
        seconds = time.perf_counter() - t0
        if keep is not None:
            keep.extend(p)
        return seconds

    return run


def make_overhead(config: dict, steps: int = 1000) -> Callable[[int], float]:
    """Microseconds per ``make_train_step`` step on the configuration's network with every width divided by 8."""
    sizes = [max(1, s // 8) for s in config["sizes"][:-1]] + [config["sizes"][-1]]
    optimizer = getattr(optim, config["optimizer"])(config["lr"])
    step = make_train_step(optimizer)
    rng = np.random.default_rng(1)
    x = rng.random((BATCH_SIZE, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], BATCH_SIZE)

    def run(epoch: int) -> float:
        params = init_mlp(np.random.default_rng(SEED), sizes)
        state = optimizer.init(params)
        t0 = time.perf_counter()
        for _ in range(steps):
            params, state, _ = step(params, state, x, y, None)
        return (time.perf_counter() - t0) / steps * 1e6

    return run


def make_adam_update(sizes=(784, 256, 128, 10), steps: int = 300) -> Callable[[int], float]:
    """Microseconds per fused Adam update (``adam(1e-3).fused_step``), fresh gradient arrays each step."""
    optimizer = adam(1e-3)
    fused = optimizer.fused_step
    rng = np.random.default_rng(2)
    params0 = init_mlp(np.random.default_rng(SEED), sizes)
    grads0 = [rng.standard_normal(leaf.shape, dtype=np.float32) * 0.01 for leaf in tree_leaves(params0)]

    def run(epoch: int) -> float:
        params, state, spent = params0, optimizer.init(params0), 0.0
        for _ in range(steps):
            grads = [g.copy() for g in grads0]  # what backprop hands over: arrays nobody else has seen
            t0 = time.perf_counter()
            params, state = fused(grads, state, params, partial(with_leaves, params))
            spent += time.perf_counter() - t0
        return spent / steps * 1e6

    return run


def main(argv=None) -> int:
    p = OneLineParser(prog="bench_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="MNIST training CSV (default: data/**/mnist_train.csv)")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    p.add_argument("--quick", action="store_true", help="fixture data, one round, fewer steps (CI smoke run)")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="tuned (default): glibc thresholds fixed as fnn and bench.py fix them; default: as glibc is")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    malloc, _ = set_malloc(args.malloc)
    csv = bench_data.find_fixture() if args.quick else bench_data.find_csv(args.data)
    if csv is None or not csv.is_file():
        print(bench_data.missing_csv(csv, "bench_step"), file=sys.stderr)
        return 2
    loaded = bench_data.load_training_csv(csv, "bench_step")
    if loaded is None:
        return 2
    x_u8, y = loaded
    rounds, small = (1, 20) if args.quick else (args.rounds, None)
    rows: dict[str, Callable[[int], float]] = {}
    for key, config in CONFIGS.items():
        config = {**config, "sizes": (x_u8.shape[1], *config["sizes"][1:])}
        feed_name, feed = epoch_batches_factory(x_u8, y, BATCH_SIZE)
        rows[f"({key}) fed, s/epoch"] = make_floor(config["sizes"], len(y), BATCH_SIZE, batches=feed)
        rows[f"({key}) inline, s/epoch"] = make_inline(config, feed)
        rows[f"({key}) ours, s/epoch"] = make_ours(config, x_u8, y, BATCH_SIZE)[1]
        rows[f"({key}) overhead, us/step"] = make_overhead(config, steps=small or 1000)
    rows["adam update 784-256-128-10, us/step"] = make_adam_update(steps=small or 300)
    for run in rows.values():  # warm-up, not timed
        run(0)
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(rounds):
        for name, run in rows.items():
            time.sleep(0 if args.quick else SETTLE_SECONDS)
            samples[name].append(run(r + 1))
    print(f"bench_step: {csv} ({len(y)} rows), batch {BATCH_SIZE}, {rounds} round(s); malloc: {malloc}")
    print(f"  {'':38s} {'median':>9s} {'min':>9s}")
    for name, values in samples.items():
        print(f"  {name:38s} {statistics.median(values):9.3f} {min(values):9.3f}")
    for key in CONFIGS:
        fed, inline, ours = (statistics.median(samples[f"({key}) {n}, s/epoch"]) for n in ("fed", "inline", "ours"))
        print(f"  ({key}) inline / fed {inline / fed:.2f}, ours / inline {ours / inline:.2f},"
              f" ours / fed {ours / fed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
