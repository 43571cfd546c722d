"""Turn a photo or drawing of one digit into a 28x28 MNIST-style image, as MNIST itself was made.

LeCun et al.: "the images were size normalized to fit in a 20x20 pixel box while preserving their aspect
ratio [...] and centered in a 28x28 image by computing the center of mass of the pixels". So:
grayscale, white ink on black (inverted when the background is light), background removed and contrast
stretched, cropped to the ink, resized (anti-aliased) to fit 20x20 keeping the aspect ratio, and placed
so that its centre of mass sits at the centre of the 28x28 field.

``mnist_style`` is pure (array in, new array out); ``load_gray`` is the file edge and needs Pillow
(the ``plot`` extra).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
PILLOW_HINT = "reading images needs Pillow: python -m pip install 'functional-nn[plot]'"


class ImageError(ValueError):
    """An image that cannot be turned into a digit; the message starts with the path."""


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImageError(PILLOW_HINT) from None
    return Image


def load_gray(path: str | Path) -> np.ndarray:
    """Read an image file as (h, w) uint8 grayscale; transparent pixels become the background (white behind
    dark ink, black behind light ink).

    Raises ``ImageError`` naming the path when the file is missing, not a regular file or not an image.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise ImageError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):                   # a FIFO would block the open, a device never end
        raise ImageError(f"{path}: not a regular file (a FIFO, device or socket)")
    return _gray(path, str(path))


def gray_from_bytes(data: bytes, *, name: str = "image", max_pixels: int = 1 << 24) -> np.ndarray:
    """:func:`load_gray` of an image file's bytes (a PNG, JPEG...); ``ImageError`` naming ``name`` for anything
    that is not an image or has more than ``max_pixels`` pixels (checked from the header, before decoding)."""
    import io
    return _gray(io.BytesIO(data), name, max_pixels=max_pixels)


def _gray(source, name: str, *, max_pixels: int | None = None) -> np.ndarray:
    image_mod = _pil()
    path = name
    try:
        with image_mod.open(source) as im:
            too_big = max_pixels is not None and im.size[0] * im.size[1] > max_pixels
            if not too_big:
                im.load()
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    rgba = im.convert("RGBA")
                    paper = _paper_for(np.asarray(rgba))
                    im = image_mod.alpha_composite(image_mod.new("RGBA", rgba.size, (paper,) * 3 + (255,)), rgba)
                return np.asarray(im.convert("L"), dtype=np.uint8).copy()
            size = im.size
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except image_mod.DecompressionBombError:
        raise ImageError(f"{path}: too many pixels, more than the {image_mod.MAX_IMAGE_PIXELS} allowed "
                         "(a decompression bomb?)") from None
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from None
    raise ImageError(f"{name}: {size[0]}x{size[1]} pixels, more than the {max_pixels} allowed")


def _paper_for(rgba: np.ndarray) -> int:
    """The grey level to put behind a transparent picture: white behind dark ink, black behind light ink.

    >>> white = np.zeros((4, 4, 4), np.uint8); white[1:3, 1:3] = 255            # opaque white ink only
    >>> black = np.zeros((4, 4, 4), np.uint8); black[1:3, 1:3, 3] = 255         # opaque black ink only
    >>> _paper_for(white), _paper_for(black)
    (0, 255)
    """
    alpha = rgba[..., 3].astype(np.float64) / 255.0
    if alpha.sum() == 0:
        return 255
    luma = rgba[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return 0 if float((luma * alpha).sum() / alpha.sum()) > 127 else 255


def _fit_box(ink: np.ndarray, box: int) -> np.ndarray:
    """Resize a (h, w) float image in [0, 255] so that its longer side is ``box`` (anti-aliased)."""
    image_mod = _pil()
    h, w = ink.shape
    factor = box / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    im = image_mod.fromarray(ink.astype(np.float32), mode="F")
    return np.asarray(im.resize(size, image_mod.Resampling.LANCZOS), dtype=np.float32).clip(0, 255)


def mnist_style(gray: np.ndarray, *, size: int = 28, box: int = 20, threshold: float = 0.2) -> np.ndarray:
    """A (size, size) uint8 image of the digit in ``gray``: white ink on black, fitted and centred.

    Args:
        gray: (h, w) grayscale image, any real dtype in [0, 255]; dark ink on light paper or the reverse.
        size: side of the output field (28 for MNIST).
        box: side of the box the digit is fitted into, keeping its aspect ratio (20 for MNIST).
        threshold: fraction of the ink's contrast above which a pixel counts as ink when cropping.

    Returns:
        (size, size) uint8 array whose centre of mass is within about half a pixel of the centre
        (unless the digit would have to leave the field).

    Raises:
        ImageError: the image holds no ink (a blank or uniform picture).

    >>> paper = np.full((60, 40), 250, np.uint8); paper[10:50, 18:22] = 0     # a dark "1" on white
    >>> out = mnist_style(paper)
    >>> out.shape, out.dtype.name, int(out[0, 0]), int((out > 128).any(axis=1).sum())
    ((28, 28), 'uint8', 0, 20)
    """
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ImageError(f"expected a 2-d grayscale image, got shape {a.shape}")
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if np.median(border) > 127:                       # light background: dark ink on paper
        a = 255.0 - a
    ink = np.clip(a - _background(a), 0, None)
    peak = float(ink.max())
    if peak <= 8.0:                                   # less than ~3% contrast: nothing drawn
        raise ImageError("no digit found (the image is blank or uniform)")
    ink = ink * (255.0 / peak)
    rows = np.flatnonzero((ink > threshold * 255).any(axis=1))
    cols = np.flatnonzero((ink > threshold * 255).any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    digit = _fit_box(ink, box)
    h, w = digit.shape
    cy, cx = centre_of_mass(digit)
    centre = (size - 1) / 2
    top = int(np.clip(round(centre - cy), 0, size - h))
    left = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), np.float32)
    out[top:top + h, left:left + w] = digit
    return np.rint(out).astype(np.uint8)


def _background(a: np.ndarray) -> np.ndarray | float:
    """The paper's level under light ink on dark paper: the border's median, or, when the light falls
    unevenly across the picture (a photo), the plane fitted to the border pixels that are not ink.

    >>> paper = np.tile(np.linspace(20.0, 80.0, 40), (30, 1)); paper[5:25, 15:20] = 250   # a lit-from-the-right "1"
    >>> float(np.abs(_background(paper) - np.linspace(20.0, 80.0, 40)).max()) < 1e-6
    True
    """
    h, w = a.shape
    ys = np.concatenate([np.zeros(w), np.full(w, h - 1), np.arange(h), np.arange(h)])
    xs = np.concatenate([np.arange(w), np.arange(w), np.zeros(h), np.full(h, w - 1)])
    values = a[ys.astype(int), xs.astype(int)]
    median = float(np.median(values))
    paper = values <= median + 0.5 * (float(a.max()) - median)      # leave out ink that touches the border
    design = np.column_stack([np.ones(int(paper.sum())), ys[paper], xs[paper]])
    (c, dy, dx), *_ = np.linalg.lstsq(design, values[paper], rcond=None)
    if abs(dy) * h + abs(dx) * w < 8.0:               # even: under ~3% of the range across the picture
        return median
    return c + dy * np.arange(h)[:, None] + dx * np.arange(w)[None, :]


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) centre of mass of a 2-d image's intensities.

    >>> centre_of_mass(np.eye(3))
    (1.0, 1.0)
    """
    a = np.asarray(image, dtype=np.float64)
    total = a.sum()
    return (float((a.sum(axis=1) * np.arange(a.shape[0])).sum() / total),
            float((a.sum(axis=0) * np.arange(a.shape[1])).sum() / total))


def is_image_path(path: str | Path) -> bool:
    """True for the file suffixes read as pictures (PNG, JPEG, BMP, GIF, TIFF, WebP).

    >>> is_image_path("seven.PNG"), is_image_path("rows.csv")
    (True, False)
    """
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
