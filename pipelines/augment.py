"""Data augmentation stages over ``Chunk`` streams (numpy only, vectorised over the chunk)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from pipelines import Chunk


def shift_images(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, *, image_shape: tuple[int, int] = (28, 28)
                 ) -> np.ndarray:
    """Translate each flattened image by whole pixels, filling the uncovered border with zeros.

    Args:
        x: (n, h * w) images, any dtype (uint8 as read, or float after scaling).
        dy, dx: (n,) integer shifts; positive moves the image down / right.
        image_shape: (h, w).

    Returns:
        A new (n, h * w) array of x's dtype; ``x`` is not modified.

    >>> img = np.zeros((1, 9), np.uint8); img[0, 4] = 7            # a 3x3 image with its centre lit
    >>> shift_images(img, np.array([1]), np.array([-1]), image_shape=(3, 3)).reshape(3, 3).tolist()
    [[0, 0, 0], [0, 0, 0], [7, 0, 0]]
    """
    h, w = image_shape
    n = len(x)
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(f"expected images of {h}x{w} = {h * w} features, got shape {x.shape}")
    images = x.reshape(n, h, w)
    out = np.zeros_like(images)                          # ours: in-place writes below are allowed
    dy = np.asarray(dy)
    dx = np.asarray(dx)
    for oy in np.unique(dy).tolist():                     # a loop over offsets, never over samples
        for ox in np.unique(dx[dy == oy]).tolist():
            rows = np.flatnonzero((dy == oy) & (dx == ox))
            if abs(oy) >= h or abs(ox) >= w:
                continue                                  # shifted out entirely: stays zero
            src = images[rows, max(-oy, 0):h - max(oy, 0), max(-ox, 0):w - max(ox, 0)]
            out[rows, max(oy, 0):h - max(-oy, 0), max(ox, 0):w - max(-ox, 0)] = src
    return out.reshape(n, h * w)


def random_shift(chunks: Iterable[Chunk], rng: np.random.Generator, *, max_shift: int = 2,
                 image_shape: tuple[int, int] = (28, 28)) -> Iterator[Chunk]:
    """Shift every image by a random whole number of pixels in [-max_shift, max_shift] on each axis.

    Labels are unchanged; uncovered pixels are zero (the background of MNIST-style images). Per chunk
    it draws ``dy`` then ``dx`` (one integer per row), so the same stream and seed give the same
    images. Consumes ``rng``.

    >>> c = Chunk(np.arange(16, dtype=np.uint8).reshape(1, 16), np.array([3]))
    >>> [out] = random_shift([c], np.random.default_rng(0), max_shift=1, image_shape=(4, 4))
    >>> out.x.shape, out.x.dtype.name, out.y.tolist()
    ((1, 16), 'uint8', [3])
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    for chunk in chunks:
        n = len(chunk.x)
        dy = rng.integers(-max_shift, max_shift + 1, size=n)
        dx = rng.integers(-max_shift, max_shift + 1, size=n)
        yield Chunk(shift_images(chunk.x, dy, dx, image_shape=image_shape), chunk.y)
