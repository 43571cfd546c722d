"""Data for the ``fnn`` command: named datasets or files, normalization, batched streams.

The application edge between ``pipelines`` (reading, stages) and the core: arrays stay uint8 in memory
and are scaled or standardized one batch at a time, so a float copy of the training set never exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import toolz

from functional_nn.app.output import note
from functional_nn.app.runs import run_config
from functional_nn.app.settings import N_CLASSES, UsageError
from pipelines import Chunk
from pipelines import datasets as pl_datasets
from pipelines import io as pl_io
from pipelines import stages
from pipelines.stats import Standardizer, fit_standardizer

CLASS_NAMES = {name: tuple(spec.classes) for name, spec in pl_datasets.DATASETS.items()}
EVAL_BATCH = 1000


def class_names(n_classes: int = N_CLASSES, names: Sequence | None = None, *,
                dataset: str | None = None) -> list[str]:
    """Display names of ``n_classes`` classes: ``names``, else the named dataset's, whichever first has exactly
    ``n_classes`` entries; else the digits "0".."n_classes-1".

    The one home of class names: ``fnn train`` takes a dataset's (``dataset=``); evaluate, predict and report a
    model's (``names=meta["classes"]``); the report package the names it is given, else metrics.json's.

    >>> class_names(dataset="fashion-mnist")[:2], class_names(3), class_names(2, ["cat", "dog"])
    (['T-shirt/top', 'Trouser'], ['0', '1', '2'], ['cat', 'dog'])
    >>> class_names(3, ["a", "b"], dataset="mnist")      # no list of 3 names: the digits
    ['0', '1', '2']
    """
    for candidate in (names, CLASS_NAMES.get(dataset or "")):
        if candidate is not None and len(candidate) == n_classes:
            return [str(c) for c in candidate]
    return [str(i) for i in range(n_classes)]


def missing_file(path: str | Path) -> str:
    """Why ``path`` cannot be read as a data file: "no such file" or "is a folder, not a file".

    >>> missing_file("/"), missing_file("/no/such/file.csv")
    ('is a folder, not a file', 'no such file')
    """
    return "is a folder, not a file" if Path(path).is_dir() else "no such file"


def read_labelled(path: str | Path, *, data_dir: str | Path) -> tuple[Chunk, dict[str, str]]:
    """(chunk, {file name: SHA-256}) of a labelled CSV / IDX file, the parse cached under data_dir/.cache."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: {missing_file(path)}")
    chunk, sha = pl_io.read_arrays_with_sha256(path, n_classes=N_CLASSES, cache_dir=Path(data_dir) / ".cache")
    if chunk.y is None:
        raise UsageError(f"{path}: no label column (training and evaluation need labels)")
    if len(chunk) == 0:
        raise UsageError(f"{path}: no rows")
    return chunk, dict(sha)


def _check_dataset_name(name: str) -> None:
    if name not in pl_datasets.DATASETS:
        raise UsageError(f"--dataset: unknown dataset '{name}' (choose from {', '.join(pl_datasets.DATASETS)})")


def load_named(name: str, *, data_dir: str | Path, progress: Callable[[str], None] | None = None):
    """pipelines' Dataset for a name (fetched if missing), the name checked first."""
    _check_dataset_name(name)
    return pl_datasets.load(name, data_dir=str(data_dir), progress=progress)


def load_named_test(name: str, *, data_dir: str | Path, progress: Callable[[str], None] | None = None) -> Chunk:
    """A named dataset's test split alone (fetched if missing): evaluation never reads the training set."""
    _check_dataset_name(name)
    _, test_path = pl_datasets.fetch(name, data_dir=str(data_dir), progress=progress)
    return read_labelled(test_path, data_dir=data_dir)[0]


def load_train_test(settings: Mapping, *, progress=None) -> tuple[Chunk, Chunk, dict, str]:
    """(train, test, {file name: SHA-256}, name) for the run's settings: a named dataset or two files.

    ``--test PATH`` with a named dataset replaces only its test set.
    """
    data_dir = settings["data_dir"]
    if settings["train"] is not None:
        train, sha = read_labelled(settings["train"], data_dir=data_dir)
        name = Path(settings["train"]).name
    else:
        ds = load_named(settings["dataset"], data_dir=data_dir, progress=progress)
        train, test, sha, name = ds.train, ds.test, dict(ds.sha256), ds.name
    if settings["test"] is not None:
        test, test_sha = read_labelled(settings["test"], data_dir=data_dir)
        if settings["train"] is None:               # a named dataset: its test files are replaced
            sha = {k: v for k, v in sha.items() if "test" not in k and "t10k" not in k}
        sha = {**sha, **test_sha}
    if train.x.shape[1] != test.x.shape[1]:
        where = settings["test"] or "the test set"
        raise UsageError(f"{where}: {test.x.shape[1]} features per row, but the training set has "
                         f"{train.x.shape[1]}")
    return train, test, sha, name


def normalization_meta(kind: str, train_x: np.ndarray) -> dict:
    """JSON-ready normalization record: ``{"kind": "scale"}`` (pixels / 255) or ``{"kind": "standardize", "mean":
    [...], "std": [...]}`` (``Standardizer.to_dict`` of the training split's statistics)."""
    if kind == "scale":
        return {"kind": "scale"}
    stats = fit_standardizer(stages.batch(stages.from_arrays(train_x), batch_size=4096))   # bounded memory
    return {"kind": "standardize", **stats.to_dict()}


def normalizer(meta: Mapping, dtype=np.float32) -> Callable[[Iterable[Chunk]], Iterator[Chunk]]:
    """The stage that turns uint8 chunks into ``dtype`` features as recorded in a model's metadata."""
    dtype = np.dtype(dtype)
    if meta["kind"] == "scale":
        norm = stages.scale
    elif meta["kind"] == "standardize":
        norm = partial(stages.standardize, stats=Standardizer.from_dict(meta))
    else:
        raise UsageError(f"unknown normalization {meta['kind']!r} in the model's metadata")

    def stage(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        for c in norm(chunks):
            yield c if c.x.dtype == dtype else Chunk(c.x.astype(dtype), c.y)
    return stage


def eval_batches(chunk: Chunk, norm_stage, *, batch_size: int = EVAL_BATCH) -> Iterator[Chunk]:
    """Normalized batches of a whole chunk, in order (for evaluation and prediction)."""
    return toolz.pipe(stages.from_arrays(chunk.x, chunk.y), partial(stages.batch, batch_size=batch_size), norm_stage)


def check_width(chunk: Chunk, n_features: int, where: str) -> None:
    """UsageError naming ``where`` when the rows do not have the model's input width."""
    if chunk.x.shape[1] != n_features:
        raise UsageError(f"{where}: {chunk.x.shape[1]} features per row, but the model expects {n_features}")


def run_test_set(run_dir: Path, *, test: str | None = None, dataset: str | None = None,
                 data_dir: str | None = None) -> tuple[Chunk, str]:
    """(chunk, description) of the labelled data to evaluate a run on: ``test`` (a file), ``dataset`` (a name's
    test split), else the test set that the run's config.json names; ``data_dir`` defaults to the run's."""
    config = run_config(run_dir)
    data_dir = data_dir or config.get("data_dir") or pl_datasets.default_data_dir()
    if test:
        return read_labelled(test, data_dir=data_dir)[0], test
    name = dataset or (None if config.get("test") else config.get("dataset"))
    if name:
        return load_named_test(name, data_dir=data_dir, progress=note), f"{name} test set"
    if config.get("test"):
        return read_labelled(config["test"], data_dir=data_dir)[0], config["test"]
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"{run_dir / 'config.json'}: missing, so the run's test set is unknown; "
                         "pass --dataset NAME or --test PATH")
    raise UsageError(f"{run_dir}: no test set recorded in config.json; pass --dataset NAME or --test PATH")


def fetch_command(args) -> int:
    """``fnn fetch [NAME]``: make sure a dataset is present and verified; print its file paths."""
    paths = pl_datasets.fetch(args.dataset, data_dir=args.data_dir, progress=note)      # None: the user cache
    published = pl_datasets.MNIST_CSV_SHA256 if args.dataset == "mnist" else {}
    for path in paths:
        digest = pl_io.file_sha256(path)
        want = published.get(Path(path).name)
        if want is not None and digest != want:
            raise UsageError(f"{path}: SHA-256 {digest} differs from the published {want}; delete it and fetch again")
        state = "verified against the published SHA-256" if want else "no published SHA-256 to check against"
        print(f"{path}  sha256 {digest}  ({state})")
    return 0
