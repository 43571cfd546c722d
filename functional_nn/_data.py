"""Data for the ``fnn`` command: named datasets or files, normalization, batched streams.

The application edge between ``pipelines`` (reading, stages) and the core: arrays stay uint8 in memory
and are scaled or standardized one batch at a time, so a float copy of the training set never exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from pipelines import Chunk, DataError
from pipelines import datasets as pl_datasets
from pipelines import io as pl_io
from pipelines import stages
from pipelines.stats import Standardizer, fit_standardizer

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
N_CLASSES = 10
EVAL_BATCH = 1000


def class_names(dataset: str | None, n_classes: int = N_CLASSES) -> list[str]:
    """Display names of the classes: fashion-mnist's names, else the digits.

    >>> class_names("fashion-mnist")[:2], class_names(None, 3)
    (['T-shirt/top', 'Trouser'], ['0', '1', '2'])
    """
    names = CLASS_NAMES.get(dataset or "")
    return list(names) if names and len(names) == n_classes else [str(i) for i in range(n_classes)]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_labelled(path: str | Path, *, data_dir: str | Path) -> Chunk:
    """Read a labelled CSV / IDX file (whole) through pipelines, caching the parse under data_dir/cache."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    chunk = pl_io.read_arrays(path, n_classes=N_CLASSES, cache_dir=Path(data_dir) / "cache")
    if chunk.y is None:
        raise DataError(f"{path}: no label column (training and evaluation need labels)")
    return chunk


def load_named(name: str, *, data_dir: str | Path, progress: Callable[[str], None] | None = None):
    """pipelines' Dataset for a name, with the name checked first (UsageError-like DataError)."""
    if name not in pl_datasets.DATASETS:
        raise DataError(f"--dataset: unknown dataset '{name}' (choose from {', '.join(pl_datasets.DATASETS)})")
    return pl_datasets.load(name, data_dir=str(data_dir), progress=progress)


def load_train_test(settings: Mapping, *, progress=None) -> tuple[Chunk, Chunk, dict, str]:
    """(train, test, sha256 by role, name) for the run's settings: a named dataset or two files.

    ``--test PATH`` with a named dataset replaces only its test set.
    """
    data_dir = settings["data_dir"]
    if settings["train"] is not None:
        train = read_labelled(settings["train"], data_dir=data_dir)
        sha = {"train": file_sha256(settings["train"])}
        name = Path(settings["train"]).name
    else:
        ds = load_named(settings["dataset"], data_dir=data_dir, progress=progress)
        train, sha, name = ds.train, dict(ds.sha256), ds.name
    if settings["test"] is not None:
        test = read_labelled(settings["test"], data_dir=data_dir)
        sha = {**{k: v for k, v in sha.items() if "test" not in k}, "test": file_sha256(settings["test"])}
    else:
        test = ds.test
    if train.x.shape[1] != test.x.shape[1]:
        where = settings["test"] or "the test set"
        raise DataError(f"{where}: {test.x.shape[1]} features per row, but the training set has {train.x.shape[1]}")
    return train, test, sha, name


def normalization_meta(kind: str, train_x: np.ndarray) -> dict:
    """JSON-ready normalization record: {"kind": "scale"} or {"kind": "standardize", "mean", "std"}."""
    if kind == "scale":
        return {"kind": "scale", "divisor": 255.0}
    stats = fit_standardizer(train_x)
    return {"kind": "standardize",
            "mean": np.asarray(stats.mean, np.float32).tolist(),
            "std": np.asarray(stats.std, np.float32).tolist()}


def normalizer(meta: Mapping, dtype=np.float32) -> Callable[[Iterable[Chunk]], Iterator[Chunk]]:
    """The stage that turns uint8 chunks into ``dtype`` features as recorded in a model's metadata."""
    dtype = np.dtype(dtype)
    if meta["kind"] == "scale":
        norm = stages.scale
    elif meta["kind"] == "standardize":
        stats = Standardizer(mean=np.asarray(meta["mean"], np.float32), std=np.asarray(meta["std"], np.float32))
        norm = partial(stages.standardize, stats=stats)
    else:
        raise DataError(f"unknown normalization {meta['kind']!r} in the model's metadata")

    def stage(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        for c in norm(chunks):
            yield c if c.x.dtype == dtype else Chunk(c.x.astype(dtype), c.y)
    return stage


def eval_batches(chunk: Chunk, norm_stage, *, batch_size: int = EVAL_BATCH) -> Iterator[Chunk]:
    """Normalized batches of a whole chunk, in order (for evaluation and prediction)."""
    return norm_stage(stages.batch(stages.from_arrays(chunk.x, chunk.y), batch_size=batch_size))


def check_width(chunk: Chunk, n_features: int, where: str) -> None:
    """DataError naming ``where`` when the rows do not have the model's input width."""
    if chunk.x.shape[1] != n_features:
        raise DataError(f"{where}: {chunk.x.shape[1]} features per row, but the model expects {n_features}")
