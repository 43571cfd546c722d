"""Data benchmark: first parse of mnist_train.csv vs np.loadtxt, cached reload, streaming memory.

    python scripts/bench_data.py                   # fetches MNIST into data/ if needed
    python scripts/bench_data.py --csv PATH        # any mnist-in-csv file

``measure(path)`` returns the numbers as a dict. scripts/bench.py times the parse and the cached reload on its
own, interleaved with its training rounds; this script adds the read_chunks streaming memory.
"""

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from pipelines import fetch, read_arrays, read_chunks  # noqa: E402


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(path, *, repeats: int = 3) -> dict:
    """Seconds (best of ``repeats``) and MB for: np.loadtxt, read_arrays (no cache), read_arrays writing its
    cache, the cached reload, and read_chunks over the whole file with its peak traced allocation."""
    path = Path(path)
    out = {"file": str(path), "mb": path.stat().st_size / 1e6}
    loadtxt_times, parse_times = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        seconds, ref = _best(lambda: np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.uint8), 1)
        loadtxt_times.append(seconds)
        seconds, chunk = _best(lambda: read_arrays(path), 1)
        parse_times.append(seconds)
    np.testing.assert_array_equal(chunk.x, ref[:, 1:])
    np.testing.assert_array_equal(chunk.y, ref[:, 0])
    del ref, chunk
    out["loadtxt_s"], out["parse_s"] = min(loadtxt_times), min(parse_times)
    out["loadtxt_median_s"], out["parse_median_s"] = float(np.median(loadtxt_times)), float(np.median(parse_times))
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        read_arrays(path, cache_dir=cache)
        out["parse_and_cache_write_s"] = time.perf_counter() - start
        out["cached_reload_s"], _ = _best(lambda: read_arrays(path, cache_dir=cache), repeats)
    out["parse_vs_loadtxt"] = out["parse_s"] / out["loadtxt_s"]
    out["parse_vs_loadtxt_median"] = out["parse_median_s"] / out["loadtxt_median_s"]
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    rows = sum(len(c) for c in read_chunks(path))
    out["read_chunks_s"] = time.perf_counter() - start
    out["read_chunks_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    out["rows"] = rows
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=None, help="default: data/mnist/mnist_train.csv (fetched)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    path = args.csv or fetch("mnist", progress=print)[0]
    print(json.dumps(measure(path, repeats=args.repeats), indent=1))


if __name__ == "__main__":
    main()
