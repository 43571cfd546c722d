"""A trained run as a predictor: ``load_run(RUN_DIR)`` bundles the parameters with the run's own preprocessing.

    >>> from functional_nn.app import load_run                       # doctest: +SKIP
    >>> model = load_run("runs/20261203-101500")                    # doctest: +SKIP
    >>> model.predict(pixels)         # doctest: +SKIP
    >>> model.predict_proba(pixels)   # doctest: +SKIP
    >>> model.class_names(model.predict(pixels))                     # doctest: +SKIP

``pixels``: 0-255 values, rows of ``(n, 784)`` or images ``(n, 28, 28)``; ``predict`` gives class indices,
``predict_proba`` (n, 10) probabilities with the run's normalization applied.

:func:`preprocess`, :func:`predict_proba` and :func:`predict` are pure functions of a frozen
:class:`TrainedModel` and the pixels (also available as its methods); :func:`load_run` is the one that reads, and
it reads through the run-folder reader of :mod:`functional_nn.app.runs`, which checks the model file against its
declared schema (sizes, normalization statistics, classes, image shape). ``fnn predict`` and ``fnn evaluate`` use
them, so a library user gets exactly their numbers.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

import functional_nn as fnn
from functional_nn.app import data as _data
from functional_nn.app.runs import load_run_model
from pipelines import Chunk

__all__ = ["TrainedModel", "load_run", "predict", "predict_proba", "preprocess"]


@attrs.frozen(eq=False)
class TrainedModel:
    """A run's network and preprocessing. ``normalization`` is the model file's record (``{"kind": "scale"}`` or
    ``{"kind": "standardize", "mean": [...], "std": [...]}``); ``classes`` names each output."""

    params: tuple
    sizes: tuple[int, ...]
    activation: str
    normalization: dict = attrs.field(repr=False)
    dtype: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int] | None
    dataset: str | None
    run_dir: Path
    checkpoint: str

    @property
    def n_features(self) -> int:
        return self.sizes[0]

    def preprocess(self, pixels) -> np.ndarray:
        return preprocess(self, pixels)

    def predict_proba(self, pixels, *, batch_size: int = _data.EVAL_BATCH) -> np.ndarray:
        return predict_proba(self, pixels, batch_size=batch_size)

    def predict(self, pixels, *, batch_size: int = _data.EVAL_BATCH) -> np.ndarray:
        return predict(self, pixels, batch_size=batch_size)

    def class_names(self, indices) -> list[str]:
        """The names of class indices (e.g. the output of :meth:`predict`)."""
        return [self.classes[int(i)] for i in np.asarray(indices).ravel()]


def _rows(model: TrainedModel, pixels) -> np.ndarray:
    """Pixels as (n, n_features) uint8: 0-255 values, one row or image per sample (images are flattened)."""
    x = np.asarray(pixels)
    if x.ndim == 1:
        x = x[None, :]
    elif x.ndim == 3:
        x = x.reshape(x.shape[0], x.shape[1] * x.shape[2])
    if x.ndim != 2 or x.shape[1] != model.n_features:
        raise ValueError(f"expected rows of {model.n_features} pixels (or images of {model.image_shape}), "
                         f"got an array of shape {np.shape(pixels)}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number) or np.isnan(x).any() or x.min() < 0 or x.max() > 255 or (
                np.issubdtype(x.dtype, np.floating) and (x != np.round(x)).any()):
            raise ValueError("pixels must be whole numbers from 0 to 255 (as in the training data)")
        x = x.astype(np.uint8)
    return x


def _norm_batches(model: TrainedModel, x: np.ndarray, batch_size: int):
    if not len(x):
        return iter(())
    stage = _data.normalizer(model.normalization, model.dtype)
    return _data.eval_batches(Chunk(x, None), stage, batch_size=batch_size)


def preprocess(model: TrainedModel, pixels) -> np.ndarray:
    """The network's input for ``pixels`` (0-255): the run's normalization, in its dtype, exactly as in training."""
    x = _rows(model, pixels)
    parts = [b.x for b in _norm_batches(model, x, len(x) or 1)]
    return parts[0] if parts else np.zeros((0, model.n_features), model.dtype)


def predict_proba(model: TrainedModel, pixels, *, batch_size: int = _data.EVAL_BATCH) -> np.ndarray:
    """(n, n_classes) probabilities, computed ``batch_size`` rows at a time."""
    x = _rows(model, pixels)
    parts = [fnn.predict_proba(model.params, b.x) for b in _norm_batches(model, x, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, model.sizes[-1]), model.dtype)


def predict(model: TrainedModel, pixels, *, batch_size: int = _data.EVAL_BATCH) -> np.ndarray:
    """Class indices (int64), the most probable class of each row."""
    return np.argmax(predict_proba(model, pixels, batch_size=batch_size), axis=1).astype(np.int64)


def load_run(run_dir: str | Path, checkpoint: str = "model") -> TrainedModel:
    """The trained model of a run folder: ``checkpoint`` is ``"model"`` (the final weights), ``"best"`` (the
    best validation epoch) or ``"last"`` (the latest checkpoint). Raises ``UsageError`` / ``RunFileError``
    (both ``ValueError``) with a one-line message naming the file for a missing or malformed run."""
    if checkpoint not in ("model", "best", "last"):
        raise ValueError(f"checkpoint must be 'model', 'best' or 'last', got {checkpoint!r}")
    params, meta = load_run_model(run_dir, checkpoint)
    n_classes = meta["sizes"][-1]
    shape = meta.get("image_shape")
    return TrainedModel(params=params, sizes=tuple(meta["sizes"]), activation=meta["activation"],
                        normalization=dict(meta["normalization"]), dtype=meta.get("dtype", "float32"),
                        classes=tuple(_data.class_names(n_classes, meta.get("classes"))),
                        image_shape=None if shape is None else tuple(shape), dataset=meta.get("dataset"),
                        run_dir=Path(run_dir), checkpoint=checkpoint)
