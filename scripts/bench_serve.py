"""The round trip of one drawing in fnn serve: preprocess a PNG (as fnn predict preprocesses a photo) and run the
network forward, the work of one POST /api/predict without the HTTP; median and spread of 200 repeats.

    python scripts/bench_serve.py RUN_DIR            # a run of the default network, e.g. from `fnn train`
"""

import io
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from functional_nn.app.serve import load_runs, round_trip_seconds  # noqa: E402


def drawing_png() -> bytes:
    """A 280x280 canvas with a "3" drawn in 18-pixel strokes, as the page sends it."""
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line([(90, 50), (130, 40), (170, 60), (170, 90), (120, 125), (170, 150), (170, 185),
                                (130, 210), (85, 200)], fill="black", width=18)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    run = next(iter(load_runs([sys.argv[1]]).values()))
    seconds = round_trip_seconds(run, drawing_png(), repeats=200)
    ms = np.array(seconds[20:]) * 1000                  # the first calls warm caches and the BLAS
    print(f"{'-'.join(map(str, run.model.sizes))}: round trip median {statistics.median(ms):.2f} ms, "
          f"p90 {np.percentile(ms, 90):.2f} ms, min {ms.min():.2f} ms over {len(ms)} drawings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
