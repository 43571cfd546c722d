"""Image preprocessing for `fnn predict` (MNIST-style digits) and the random-shift augmentation stage."""

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.images import ImageError, centre_of_mass, load_gray, mnist_style
from pipelines import Chunk
from pipelines.augment import random_shift, shift_images

needs_pil = pytest.mark.skipif(importlib.util.find_spec("PIL") is None,
                               reason="image preprocessing needs Pillow (the plot extra)")


def stroke_canvas(h, w, top, left, dh, dw, *, ink=0, paper=255):
    canvas = np.full((h, w), paper, np.uint8)
    canvas[top:top + dh, left:left + dw] = ink
    canvas[top:top + max(1, dh // 4), left:left + dw * 2] = ink       # an "L"-ish, asymmetric digit
    return canvas


def ink_box(img, level=0):
    rows = np.flatnonzero((img > level).any(axis=1))
    cols = np.flatnonzero((img > level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@needs_pil
@settings(max_examples=30, deadline=None)
@given(h=st.integers(30, 120), w=st.integers(30, 120), data=st.data())
def test_output_is_mnist_shaped_fitted_and_centred(h, w, data):
    dh = data.draw(st.integers(8, h - 4))
    dw = data.draw(st.integers(3, (w - 4) // 2))
    top = data.draw(st.integers(0, h - dh))
    left = data.draw(st.integers(0, w - 2 * dw))
    out = mnist_style(stroke_canvas(h, w, top, left, dh, dw))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    bh, bw = ink_box(out)
    assert max(bh, bw) <= 21                          # fits the 20x20 box (plus anti-aliasing)
    assert max(bh, bw) >= 18                          # and fills it along its longer side
    cy, cx = centre_of_mass(out)
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0
    # Ink may reach an edge of the field where centring by mass puts the digit there (a 20-pixel digit whose
    # mass sits left of its middle is placed right, up to the edge: e.g. h=30, w=68, stroke 11x32 at 0, 0),
    # but never further than centring needs: its centre of mass is not past the centre by more than half a pixel.
    assert out[0].max() == 0 or cy >= 13.5 - 0.5
    assert out[-1].max() == 0 or cy <= 13.5 + 0.5
    assert out[:, 0].max() == 0 or cx >= 13.5 - 0.5
    assert out[:, -1].max() == 0 or cx <= 13.5 + 0.5


@needs_pil
def test_a_wide_digit_heavy_on_the_left_may_touch_the_right_edge_but_stays_centred():
    out = mnist_style(stroke_canvas(30, 68, 0, 0, 11, 32))      # hypothesis found it: columns 8..27
    cy, cx = centre_of_mass(out)
    assert abs(cx - 13.5) <= 0.5 and out[:, 0].max() == 0 and ink_box(out)[1] == 20


@needs_pil
@settings(max_examples=15, deadline=None)
@given(dy=st.integers(0, 30), dx=st.integers(0, 30))
def test_position_in_the_picture_does_not_matter(dy, dx):
    a = mnist_style(stroke_canvas(80, 80, 5, 5, 30, 8))
    b = mnist_style(stroke_canvas(80, 80, 5 + dy, 5 + dx, 30, 8))
    np.testing.assert_array_equal(a, b)


@needs_pil
def test_dark_on_light_equals_light_on_dark():
    dark_ink = stroke_canvas(64, 48, 10, 12, 40, 9, ink=10, paper=240)
    light_ink = 250 - dark_ink
    np.testing.assert_array_equal(mnist_style(dark_ink), mnist_style(light_ink))


@needs_pil
def test_unevenly_lit_paper_is_removed_like_even_paper():
    even = stroke_canvas(90, 70, 15, 20, 60, 10, ink=40, paper=200)
    light = np.linspace(-45, 25, 70)[None, :]                       # a photo lit from the right
    uneven = np.clip(even.astype(np.float64) + light * (even > 100), 0, 255).astype(np.uint8)
    a, b = mnist_style(even), mnist_style(uneven)
    assert ink_box(b, level=40) == ink_box(a, level=40)             # cropped to the digit, not to the shadow
    assert (b > 40).sum() <= 1.2 * (a > 40).sum()                    # and the shadow is not drawn as ink
    cy, cx = centre_of_mass(b)
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0


@needs_pil
def test_aspect_ratio_is_kept():
    tall = mnist_style(stroke_canvas(100, 100, 10, 40, 80, 10))    # 80 tall, 20 wide
    bh, bw = ink_box(tall, level=64)
    assert bh >= 19 and 4 <= bw <= 7


@needs_pil
def test_input_is_not_modified():
    canvas = stroke_canvas(50, 50, 10, 10, 30, 8)
    before = canvas.copy()
    mnist_style(canvas)
    np.testing.assert_array_equal(canvas, before)


@needs_pil
@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_image_raises(value):
    with pytest.raises(ImageError, match="no digit"):
        mnist_style(np.full((40, 40), value, np.uint8))


@needs_pil
def test_load_gray_composites_transparency_on_white(tmp_path):
    from PIL import Image
    rgba = np.zeros((40, 30, 4), np.uint8)                 # transparent black background
    rgba[5:35, 12:18] = (0, 0, 0, 255)                     # opaque black stroke
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    gray = load_gray(tmp_path / "t.png")
    assert gray.shape == (40, 30) and gray[0, 0] == 255 and gray[20, 15] == 0
    out = mnist_style(gray)
    assert out.max() > 200 and out[0, 0] == 0


@needs_pil
def test_light_ink_on_a_transparent_background_is_not_lost(tmp_path):
    from PIL import Image
    rgba = np.zeros((40, 30, 4), np.uint8)                 # transparent background
    rgba[5:35, 12:18] = (255, 255, 255, 255)               # opaque white stroke (a dark-theme canvas export)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "w.png")
    out = mnist_style(load_gray(tmp_path / "w.png"))
    assert out.max() > 200 and out[0, 0] == 0


@needs_pil
def test_load_gray_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="missing.png"):
        load_gray(tmp_path / "missing.png")
    (tmp_path / "junk.jpg").write_bytes(b"\x00" * 10)
    with pytest.raises(ImageError, match="junk.jpg"):
        load_gray(tmp_path / "junk.jpg")


# ---------------------------------------------------------------------------------- random shifts

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dy=st.integers(-3, 3), dx=st.integers(-3, 3))
def test_shift_then_shift_back_restores_the_interior(seed, dy, dx):
    rng = np.random.default_rng(seed)
    x = np.zeros((3, 28, 28), np.uint8)
    x[:, 4:24, 4:24] = rng.integers(0, 256, (3, 20, 20))      # ink away from the border, like MNIST
    flat = x.reshape(3, 784)
    before = flat.copy()
    n = np.full(3, dy), np.full(3, dx)
    there = shift_images(flat, *n)
    back = shift_images(there, -n[0], -n[1])
    np.testing.assert_array_equal(back, flat)
    np.testing.assert_array_equal(flat, before)                # pure: the argument is untouched
    assert there.dtype == np.uint8 and there.sum(dtype=np.int64) == flat.sum(dtype=np.int64)


def test_random_shift_is_seeded_and_keeps_labels():
    x = np.random.default_rng(0).integers(0, 256, (50, 784)).astype(np.uint8)
    y = np.arange(50)
    run = lambda seed: list(random_shift([Chunk(x, y)], np.random.default_rng(seed), max_shift=2))  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a[0].x, b[0].x)
    assert not np.array_equal(a[0].x, c[0].x)
    np.testing.assert_array_equal(a[0].y, y)
    zero = list(random_shift([Chunk(x, y)], np.random.default_rng(1), max_shift=0))
    np.testing.assert_array_equal(zero[0].x, x)


def test_random_shift_moves_each_image_by_at_most_max_shift():
    x = np.zeros((200, 784), np.uint8)
    x[:, 14 * 28 + 14] = 255                                  # one lit pixel at (14, 14)
    [out] = random_shift([Chunk(x, np.zeros(200, np.int64))], np.random.default_rng(3), max_shift=2)
    pos = out.x.argmax(axis=1)
    rows, cols = pos // 28, pos % 28
    assert (np.abs(rows - 14) <= 2).all() and (np.abs(cols - 14) <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 25  # every offset occurs
