"""The benchmark's data: finding the MNIST CSV or the fixture, synthetic rows, the parse and reload timings.

An I/O edge (reads and writes files, reads the clock). Imports numpy, ``pipelines.io``, ``functional_nn.app.data``
and the bench's ``configs``. From a wheel there is no checkout: no fixture, and ``data/`` means the current
folder's (``fnn``'s own default ``--data-dir``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from functional_nn.app.bench.configs import QUICK_ROWS, SEED
from functional_nn.app.data import missing_file
from pipelines.io import read_arrays

READER = "pipelines.io.read_arrays"
DATA_TIMINGS = ("first_parse", "loadtxt", "cached_reload")


def checkout_root() -> Path | None:
    """The source checkout this package was imported from (it has ``data/fixtures``), or None (an install)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "data" / "fixtures").is_dir() else None


def data_dirs() -> list[Path]:
    """Where MNIST may have been fetched: the user cache (``fnn fetch``'s default), the checkout's ``data/``
    (when there is one), then ``./data``."""
    from pipelines.datasets import default_data_dir
    root = checkout_root()
    dirs = [default_data_dir(), *([root / "data"] if root else []), Path("data")]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def find_csv(arg: str | None) -> Path | None:
    """``--data`` when given, else the first ``mnist_train.csv`` under :func:`data_dirs` (not the fixtures)."""
    if arg:
        return Path(arg)
    for data in data_dirs():
        for path in sorted(data.rglob("mnist_train.csv")):
            if "fixtures" not in path.parts:
                return path
    return None


def dataset_dir(csv: Path) -> Path | None:
    """The ``--data-dir`` that holds ``csv`` in ``fnn``'s layout (``DIR/mnist/mnist_train.csv``), else None."""
    return csv.parent.parent if csv.parent.name == "mnist" and csv.name == "mnist_train.csv" else None


def missing_csv(csv: Path | None, prog: str) -> str:
    """The one-line error for a training CSV that is not there."""
    if csv is None:
        where = " or ".join(f"{d}/" for d in data_dirs())
        return f"{prog}: no MNIST training CSV under {where} (run `fnn fetch`); pass --data PATH/mnist_train.csv"
    return f"{prog}: {csv}: {missing_file(csv)}; pass --data PATH/mnist_train.csv"


def find_fixture() -> Path | None:
    """A labelled fixture CSV of the checkout's ``data/fixtures`` (the MNIST-shaped one), or None (an install)."""
    root = checkout_root()
    fixtures = sorted((root / "data" / "fixtures").glob("*.csv")) if root else []
    for path in fixtures:
        if "mnist" in path.name and "test" not in path.name:
            return path
    return fixtures[0] if fixtures else None


def quick_csv(tmp: Path) -> tuple[Path, str | None]:
    """``--quick``'s data: the fixture, else :data:`QUICK_ROWS` synthetic rows written under ``tmp`` and a note."""
    csv = find_fixture()
    if csv is not None:
        return csv, None
    csv = tmp / "synthetic.csv"
    write_synthetic_csv(csv, QUICK_ROWS, np.random.default_rng(SEED))
    return csv, f"--quick: no fixture CSV (data/fixtures comes with a source checkout); {QUICK_ROWS} synthetic rows"


def write_synthetic_csv(path: Path, n: int, rng: np.random.Generator) -> None:
    """A headerless MNIST-shaped CSV: label, then 784 uint8 pixels per row. Consumes ``rng``."""
    rows = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 784))], axis=1)
    np.savetxt(path, rows, fmt="%d", delimiter=",")


def _has_header(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline().strip()
    return not first[:1].isdigit()


def loadtxt_parse(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The baseline parser: ``np.loadtxt(dtype=np.uint8)``; column 0 is the label."""
    table = np.loadtxt(path, dtype=np.uint8, delimiter=",", skiprows=1 if _has_header(path) else 0, ndmin=2)
    return np.ascontiguousarray(table[:, 1:]), table[:, 0].astype(np.int64)


def load_training_csv(path: Path, prog: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The harness's data (``loadtxt_parse``), or None after one line on stderr naming the file and the problem."""
    try:
        x_u8, y = loadtxt_parse(path)
    except (OSError, ValueError) as exc:
        print(f"{prog}: {path}: cannot read it as an MNIST CSV (label, then pixels 0-255): {exc}", file=sys.stderr)
        return None
    return np.ascontiguousarray(x_u8, dtype=np.uint8), y


def time_reads(csv: Path, cache_dir: Path) -> dict[str, float]:
    """Seconds of one round: ``read_arrays`` into the empty ``cache_dir``, ``np.loadtxt``, the cached reload."""
    seconds = {}
    for name, read in zip(DATA_TIMINGS, (lambda: read_arrays(csv, cache_dir=cache_dir), lambda: loadtxt_parse(csv),
                                         lambda: read_arrays(csv, cache_dir=cache_dir))):
        t0 = time.perf_counter()
        read()
        seconds[name] = time.perf_counter() - t0
    return seconds
