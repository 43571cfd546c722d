"""The ``floor`` and ``fed`` contenders: only the 8 matrix products of each training step, nothing else.

Imports numpy and the bench's ``feed``; reads the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from functional_nn.app.bench.feed import batch_bounds


def make_floor(sizes: Sequence[int], n: int, batch_size: int, batches: Callable | None = None) -> Callable[..., float]:
    """One epoch of only the matrix products of a training step, on preallocated float32 operands.

    Per step: ``h_i @ w_i`` for the 3 layers (forward), then ``h_i.T @ d_i`` (3 weight gradients) and ``d_i @ w_i.T``
    (2 input gradients, none for the data layer): 8 GEMMs, written into preallocated outputs. ``run(steps)``.

    With ``batches`` (``epoch -> iterator of (x, y)``, the feed of ``feed.epoch_batches_factory``), the data
    layer's operand is each real batch instead, made as it is drawn and included in the timing: ``run(epoch, steps)``.
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
