"""training.gif: the learning curves growing, one frame per epoch, encoded as a small looping GIF.

Holds ``MAX_GIF_FRAMES``, ``gif_frame_ends`` (which epochs get a frame) and ``draw_gif`` (GIF bytes, written by
the caller). Imports: the standard library, numpy, ``.figures`` and ``.run``; matplotlib and Pillow only lazily,
inside ``draw_gif``.
"""

from __future__ import annotations

import io

import numpy as np

from functional_nn.app.report.figures import DPI, SIZES, curve_axes, figsize
from functional_nn.app.report.run import Run

_GIF_COLORS, _GIF_TRANSPARENT = 128, 255   # palette size of training.gif; index for "unchanged pixel"
MAX_GIF_FRAMES = 500                      # longer runs: frames at evenly spaced epochs (first and last kept)


def gif_frame_ends(n_epochs: int, *, max_frames: int = MAX_GIF_FRAMES) -> list[int]:
    """How many history rows each frame of training.gif shows: 1, 2, ..., n (one frame per epoch), or
    ``max_frames`` evenly spaced counts ending at n when the run is longer.

    >>> gif_frame_ends(3)
    [1, 2, 3]
    >>> gif_frame_ends(10, max_frames=4)
    [1, 4, 7, 10]
    """
    if n_epochs <= max_frames:
        return list(range(1, n_epochs + 1))
    return sorted({int(round(v)) for v in np.linspace(1, n_epochs, max_frames)})


def draw_gif(run: Run) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=figsize(SIZES["training.gif"]), dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    history = run.history
    # The final axes limits from the start, so each frame only adds to the last (small GIF deltas).
    _, lines = curve_axes(fig, history, None, None)
    full = {key: line.get_data() for key, line in lines.items()}
    title = fig.suptitle(f"Training {run.name}: epoch {int(history.epoch[-1])} of {int(history.epoch[-1])}")
    canvas.draw()                    # lay out once with the longest title, then freeze the layout
    fig.set_layout_engine("none")
    for ax in fig.axes:              # pin each legend where "best" put it for the full curves
        legend = ax.get_legend()
        box = legend.get_window_extent().transformed(ax.transAxes.inverted())
        ax.legend(loc="lower left", bbox_to_anchor=(box.x0, box.y0), borderaxespad=0.0)
    # Blit: draw the static parts once, then per frame restore them and draw only the lines and the title
    # (the legends were made above, so their handles stay drawn).
    for artist in (*lines.values(), title):
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    legends = [canvas.copy_from_bbox(ax.get_legend().get_window_extent()) for ax in fig.axes]
    ends = gif_frame_ends(len(history.epoch))
    frames = []
    for i in ends:
        canvas.restore_region(background)
        for key, line in lines.items():
            xs, ys = full[key]
            line.set_data(xs[:i], ys[:i])
            line.axes.draw_artist(line)
        title.set_text(f"Training {run.name}: epoch {int(history.epoch[i - 1])} of {int(history.epoch[-1])}")
        fig.draw_artist(title)
        for region in legends:       # legends stay on top of the lines, as in curves.png (pixels pasted back)
            canvas.restore_region(region)
        rgba = np.asarray(canvas.buffer_rgba())
        frames.append(Image.fromarray(np.array(rgba[..., :3])))
    # One palette for all frames (from the last, which has every colour), no dithering: unchanged pixels keep
    # their index, and each later frame stores only what changed, the rest as the transparent index
    # (the gifsicle trick; a 200-epoch GIF shrinks from ~2 MB to ~0.25 MB).
    palette = frames[-1].quantize(colors=_GIF_COLORS, method=Image.Quantize.FASTOCTREE)
    indexed = [np.asarray(f.quantize(palette=palette, dither=Image.Dither.NONE)) for f in frames]
    colors = palette.getpalette()[: 3 * _GIF_COLORS]
    colors += [255, 255, 255] * (256 - len(colors) // 3)
    images = []
    for k, current in enumerate(indexed):
        delta = current if k == 0 else np.where(current == indexed[k - 1], _GIF_TRANSPARENT, current)
        image = Image.fromarray(delta.astype(np.uint8))    # mode "L"; putpalette makes it "P"
        image.putpalette(colors)
        images.append(image)
    step_ms = int(np.clip(6000 / len(images), 60, 500))
    durations = [step_ms] * (len(images) - 1) + [2500]   # hold the finished curves before looping
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                   loop=0, optimize=False, disposal=1, transparency=_GIF_TRANSPARENT)
    return buf.getvalue()
