"""Pipeline stages: lazy, single-pass generator functions over ``Chunk`` streams (STYLE.md section 8).

Every stage has the shape ``stage(chunks, ..., *, options) -> Iterator[Chunk]``, so stages compose with
``toolz.pipe`` and ``functools.partial``; swapping one is one line. Nothing here opens files or prints; the only
buffering stage is ``shuffle``. Randomness comes in as an explicit ``np.random.Generator``.
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Iterator

import numpy as np

from pipelines.chunk import Chunk, concat_chunks, recut
from pipelines.stats import Standardizer

__all__ = ["from_arrays", "scale", "standardize", "shuffle", "batch", "take", "skip", "train_val_split",
           "epoch_seed_rng", "concat_chunks"]


def from_arrays(x: np.ndarray, y: np.ndarray | None = None) -> Iterator[Chunk]:
    """An in-memory source: the whole of ``x`` (n, n_features) and ``y`` (n,) as a single chunk.

    >>> [c.y.tolist() for c in from_arrays(np.zeros((3, 2)), [2, 0, 1])]
    [[2, 0, 1]]
    """
    x = np.asarray(x)
    yield Chunk(x.reshape(len(x), math.prod(x.shape[1:])), None if y is None else np.asarray(y).astype(np.int64, copy=False))


def scale(chunks: Iterable[Chunk], *, max_value: float = 255.0) -> Iterator[Chunk]:
    """Pixels to float32 in [0, 1]: ``x / max_value``.

    >>> [c.x.tolist() for c in scale([Chunk(np.array([[0, 51, 255]], np.uint8))])]
    [[[0.0, 0.20000000298023224, 1.0]]]
    """
    divisor = np.float32(max_value)
    for chunk in chunks:  # convert, then divide in place (faster than np.divide(..., dtype=float32), same bits)
        out = chunk.x.astype(np.float32)
        out /= divisor
        yield Chunk(out, chunk.y)


def standardize(chunks: Iterable[Chunk], stats: Standardizer) -> Iterator[Chunk]:
    """``(x - stats.mean) / stats.std`` in float32, with ``stats`` fitted beforehand by ``fit_standardizer``.

    >>> from pipelines.stats import fit_standardizer
    >>> data = Chunk(np.array([[0, 10], [2, 10]], np.uint8))
    >>> [c.x.tolist() for c in standardize([data], fit_standardizer(data))]
    [[[-1.0, 0.0], [1.0, 0.0]]]
    """
    for chunk in chunks:  # convert, then subtract and divide in place (same bits as the formula)
        out = chunk.x.astype(np.float32)
        out -= stats.mean
        out /= stats.std
        yield Chunk(out, chunk.y)


def shuffle(chunks: Iterable[Chunk], rng: np.random.Generator, *, buffer_rows: int = 65536) -> Iterator[Chunk]:
    """Shuffle rows with a buffer of ``buffer_rows`` rows: the rows out are a permutation of the rows in.

    A stream that fits in the buffer (or one chunk, of any size: an in-memory source) comes out as one
    exact, uniformly random permutation, in chunks of about a megabyte (gathered as they are drawn). A longer
    stream flows through the buffer as in tf.data: each new chunk's rows take the places of as many rows drawn at
    random from the buffer, which are emitted.
    Consumes ``rng``; seed epoch ``e`` with ``epoch_seed_rng(seed, e)``.

    >>> out = list(shuffle(from_arrays(np.zeros((6, 1)), np.arange(6)), np.random.default_rng(0)))
    >>> sorted(out[0].y.tolist())
    [0, 1, 2, 3, 4, 5]
    """
    if buffer_rows <= 0:
        raise ValueError(f"buffer_rows must be positive, got {buffer_rows}")
    filling: list[Chunk] = []
    bx = by = None  # the buffer: arrays this function allocated, so it may refill them in place
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if bx is None or len(chunk) >= buffer_rows:
            if bx is not None:
                filling.append(Chunk(bx, by))
                bx = by = None
            filling.append(chunk)
            if sum(len(c) for c in filling) < buffer_rows:
                continue
            pool = concat_chunks(filling)
            filling = []
            order = rng.permutation(len(pool))
            n_out = len(pool) - buffer_rows
            if n_out > 0:
                yield Chunk(pool.x[order[:n_out]], None if pool.y is None else pool.y[order[:n_out]])
            keep = order[max(n_out, 0) :]
            bx, by = pool.x[keep], None if pool.y is None else pool.y[keep]
            continue
        slots = rng.choice(buffer_rows, size=len(chunk), replace=False)
        yield Chunk(bx[slots], None if by is None else by[slots])
        bx[slots] = chunk.x
        if by is not None:
            by[slots] = chunk.y
    if filling:
        pool = concat_chunks(filling)
        yield from _permuted(pool.x, pool.y, rng.permutation(len(pool)))
    elif bx is not None:
        yield from _permuted(bx, by, rng.permutation(len(bx)))


PIECE_BYTES = 1 << 20  # a permuted stream comes out in pieces of about this many bytes of x


def _permuted(x: np.ndarray, y: np.ndarray | None, order: np.ndarray) -> Iterator[Chunk]:
    """Rows ``order`` of ``(x, y)``, gathered a piece at a time (a power of two rows, about ``PIECE_BYTES``).

    The same rows in the same order as one ``x[order]``, without a second copy of a whole data set in memory; each
    piece is gathered just before it is used, so the batches cut from it are still in cache.
    """
    row_bytes = max(1, x[:1].nbytes)
    rows = 1 << max(0, (PIECE_BYTES // row_bytes).bit_length() - 1)
    for start in range(0, len(order), rows):
        idx = order[start : start + rows]
        yield Chunk(x[idx], None if y is None else y[idx])


def batch(chunks: Iterable[Chunk], *, batch_size: int, drop_remainder: bool = False) -> Iterator[Chunk]:
    """Re-cut a stream of chunks into batches of exactly ``batch_size`` rows (the last may be short).

    Batches are slices (views) of the incoming chunks where possible; order is kept.

    >>> [c.y.tolist() for c in batch([Chunk(np.zeros((5, 2), np.float32), np.arange(5))], batch_size=2)]
    [[0, 1], [2, 3], [4]]
    >>> [c.y.tolist() for c in batch(from_arrays(np.zeros((5, 1)), np.arange(5)), batch_size=2, drop_remainder=True)]
    [[0, 1], [2, 3]]
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return recut(chunks, batch_size, drop_remainder=drop_remainder)


def take(chunks: Iterable[Chunk], n: int) -> Iterator[Chunk]:
    """The first ``n`` rows of the stream (stops reading after them).

    >>> [c.y.tolist() for c in take(from_arrays(np.zeros((5, 1)), np.arange(5)), 3)]
    [[0, 1, 2]]
    """
    if n < 0:
        raise ValueError(f"take: n must be >= 0, got {n}")
    left = n
    if left == 0:
        return
    for chunk in chunks:
        if len(chunk) > left:
            chunk = Chunk(chunk.x[:left], None if chunk.y is None else chunk.y[:left])
        left -= len(chunk)
        yield chunk
        if left == 0:
            return


def skip(chunks: Iterable[Chunk], n: int) -> Iterator[Chunk]:
    """The stream without its first ``n`` rows.

    >>> [c.y.tolist() for c in skip(from_arrays(np.zeros((5, 1)), np.arange(5)), 3)]
    [[3, 4]]
    """
    if n < 0:
        raise ValueError(f"skip: n must be >= 0, got {n}")
    left = n
    for chunk in chunks:
        if left >= len(chunk):
            left -= len(chunk)
            continue
        if left:
            chunk = Chunk(chunk.x[left:], None if chunk.y is None else chunk.y[left:])
            left = 0
        yield chunk


def train_val_split(chunk: Chunk, *, seed: int, fraction: float, stratify: bool = False) -> tuple[Chunk, Chunk]:
    """Split rows into (train, val), ``val`` holding ``round(fraction * n)`` rows drawn with ``seed``.

    With ``stratify=True`` each class gives ``round(fraction * n_class)`` rows to ``val``. Both parts keep the
    original row order; together they hold every row exactly once.

    Args:
        chunk: the whole data set (e.g. ``read_arrays(...)`` or ``concat_chunks(stream)``).
        seed: an int; the same seed gives the same split.
        fraction: the validation share, in [0, 1].
        stratify: keep class proportions (needs labels).

    >>> tr, va = train_val_split(Chunk(np.zeros((10, 1)), np.arange(10) % 2), seed=0, fraction=0.2, stratify=True)
    >>> len(tr), len(va), sorted(va.y.tolist())
    (8, 2, [0, 1])
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    n = len(chunk)
    if stratify:
        if chunk.y is None:
            raise ValueError("stratify=True needs labels (chunk.y is None)")
        picks = []
        for label in np.unique(chunk.y):
            rows = np.flatnonzero(chunk.y == label)
            picks.append(rng.choice(rows, size=int(round(fraction * len(rows))), replace=False))
        val_rows = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    else:
        val_rows = rng.choice(n, size=int(round(fraction * n)), replace=False)
    in_val = np.zeros(n, dtype=bool)
    in_val[val_rows] = True
    part = lambda mask: Chunk(chunk.x[mask], None if chunk.y is None else chunk.y[mask])  # noqa: E731
    return part(~in_val), part(in_val)


def epoch_seed_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator for epoch ``epoch`` of run ``seed``: ``np.random.default_rng([seed, epoch])``.

    Any epoch replays without running the ones before it.

    >>> int(epoch_seed_rng(7, 3).integers(1000)) == int(np.random.default_rng([7, 3]).integers(1000))
    True
    """
    return np.random.default_rng([seed, epoch])
