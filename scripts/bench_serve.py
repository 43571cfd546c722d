"""The round trip of one drawing in fnn serve: preprocess a PNG (as fnn predict preprocesses a photo) and run the
network forward, the work of one POST /api/predict without the HTTP; median and spread of 200 repeats.

    python scripts/bench_serve.py RUN_DIR            # a run of the default network, e.g. from `fnn train`
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from functional_nn.app.serve import load_runs, round_trip_seconds, sample_drawing_png  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    run = next(iter(load_runs([sys.argv[1]]).values()))
    seconds = round_trip_seconds(run, sample_drawing_png(), repeats=200)
    ms = np.array(seconds[20:]) * 1000                  # the first calls warm caches and the BLAS
    print(f"{'-'.join(map(str, run.model.sizes))}: round trip median {statistics.median(ms):.2f} ms, "
          f"p90 {np.percentile(ms, 90):.2f} ms, min {ms.min():.2f} ms over {len(ms)} drawings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
