"""How every contender's epoch is cut and fed: batch bounds and the ``fnn`` feed (shuffle -> batch -> scale).

Imports numpy, ``pipelines.stages`` and the bench's ``configs``; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from functional_nn.app.bench.configs import SEED
from pipelines import stages

FEED = "pipelines shuffle -> batch -> scale"


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of an epoch of ``n`` rows, the last one short.

    >>> batch_bounds(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def epoch_order(n: int, epoch: int) -> np.ndarray:
    """The epoch's row order, as the CLI draws it: ``default_rng([seed, epoch]).permutation(n)``."""
    return np.random.default_rng([SEED, epoch]).permutation(n)


def epoch_batches_factory(x_u8: np.ndarray, y: np.ndarray,
                          batch_size: int) -> tuple[str, Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]]:
    """(its name, ``batches(epoch)``): the epoch's float32 batches, made as the ``fnn`` command makes them.

    ``from_arrays -> shuffle(default_rng([seed, epoch])) -> batch -> scale``: one exact permutation of the uint8
    rows per epoch, contiguous batch slices, each batch scaled to float32 when it is drawn.
    """
    n = len(y)

    def batches(epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stream = stages.shuffle(stages.from_arrays(x_u8, y), np.random.default_rng([SEED, epoch]),
                                buffer_rows=max(65536, n))
        for chunk in stages.scale(stages.batch(stream, batch_size=batch_size)):
            yield chunk.x, chunk.y

    return FEED, batches
