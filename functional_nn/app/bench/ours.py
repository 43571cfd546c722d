"""The ``ours`` contender: one epoch of ``functional_nn``'s ``make_train_step``, fed as ``fnn train`` feeds it.

Imports numpy, the core (``functional_nn.optim``, ``params``, ``train``) and the bench's ``configs`` and ``feed``;
reads the clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import numpy as np

from functional_nn import optim
from functional_nn.app.bench.configs import SEED
from functional_nn.app.bench.feed import epoch_batches_factory
from functional_nn.params import init_mlp
from functional_nn.train import make_train_step


def make_ours(config: Mapping, x_u8: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[str, Callable[..., float]]:
    """(what it is, ``run(epoch, steps=None) -> seconds``): the project's step, with shuffling and batching timed."""
    sizes, lr = config["sizes"], config["lr"]
    optimizer = getattr(optim, config["optimizer"])(lr)
    step = make_train_step(optimizer)
    feed_name, epoch_batches = epoch_batches_factory(x_u8, y, batch_size)

    def run(epoch: int, steps: int | None = None) -> float:
        params = init_mlp(np.random.default_rng(SEED), sizes, activation=config["activation"])
        state = optimizer.init(params)  # every round does the same work from the same start
        t0 = time.perf_counter()
        for k, (xb, yb) in enumerate(epoch_batches(epoch)):
            if k == steps:
                break
            params, state, metrics = step(params, state, xb, yb, None)
        seconds = time.perf_counter() - t0
        if not math.isfinite(metrics.loss):
            raise RuntimeError(f"ours: non-finite loss {metrics.loss}")
        return seconds

    return f"functional_nn make_train_step; {feed_name}", run
