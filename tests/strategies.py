"""The one module of shared hypothesis strategies (core, pipelines and application tests): shapes drawn first,
then arrays of those shapes (thinc's tests/strategies.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from functional_nn.app import settings as fnn_settings
from functional_nn.ops import ACTIVATIONS
from pipelines import Chunk
from pipelines.datasets import DATASETS

finite32 = st.floats(-30, 30, width=32)
seeds = st.integers(0, 2**32 - 1)
activations = st.sampled_from(sorted(ACTIVATIONS))

logits_2d = st.tuples(st.integers(1, 8), st.integers(1, 10)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=finite32)
)

# layer widths [n_in, 0 to 3 hidden widths, n_classes], every width in 1..16 (n_classes at least 2)
architectures = st.tuples(
    st.integers(1, 16), st.lists(st.integers(1, 16), min_size=0, max_size=3), st.integers(2, 16)
).map(lambda t: [t[0], *t[1], t[2]])

# ---------------------------------------------------------------- pipelines: labelled uint8 images, chunk streams

shapes = st.tuples(st.integers(1, 40), st.integers(1, 12))  # (rows, features)


@st.composite
def labelled_images(draw, max_rows: int = 40, max_features: int = 12, n_classes: int = 10):
    """(x uint8 (n, k), y int64 (n,)) with labels in [0, n_classes)."""
    n = draw(st.integers(1, max_rows))
    k = draw(st.integers(1, max_features))
    x = draw(arrays(np.uint8, (n, k), elements=st.integers(0, 255)))
    y = draw(arrays(np.int64, (n,), elements=st.integers(0, n_classes - 1)))
    return x, y


@st.composite
def chunk_streams(draw, max_chunks: int = 6, max_rows: int = 20, n_features: int = 3):
    """A list of Chunks with float32 x and int64 y: y numbers the rows 0..n-1 in stream order."""
    sizes = draw(st.lists(st.integers(0, max_rows), min_size=1, max_size=max_chunks))
    chunks, start = [], 0
    for size in sizes:
        x = draw(arrays(np.float32, (size, n_features), elements=st.floats(-10, 10, width=32)))
        chunks.append(Chunk(x, np.arange(start, start + size, dtype=np.int64)))
        start += size
    return chunks


# ---------------------------------------------------------------- application: fnn training settings


@st.composite
def valid_settings(draw):
    """A full settings dict (every key of ``DEFAULTS``) that ``functional_nn.app.settings.check`` accepts."""
    s = fnn_settings
    unit = st.floats(0, 1, exclude_max=True)                      # [0, 1)
    optimizer = draw(st.sampled_from(s.OPTIMIZERS))
    early_stopping = draw(st.booleans())
    source = draw(st.sampled_from(["dataset", "dataset+test", "files", "dataset+files"]))
    path = st.text("abc/._-", min_size=1, max_size=12)
    return {
        "dataset": draw(st.sampled_from(sorted(DATASETS))) if "dataset" in source else None,
        "train": draw(path) if "files" in source else None,
        "test": draw(path) if "test" in source or "files" in source else None,
        "data_dir": draw(path),
        "hidden": draw(st.lists(st.integers(1, 4096), max_size=4)),
        "activation": draw(st.sampled_from(s.ACTIVATION_NAMES)),
        "init": draw(st.sampled_from(s.INITS)),
        "optimizer": optimizer,
        "lr": draw(st.floats(0, s.MAX_FLOAT, exclude_min=True)),
        "momentum": draw(unit) if optimizer in ("momentum", "nesterov") else s.DEFAULTS["momentum"],
        "beta1": draw(unit) if optimizer in ("adam", "adamw") else s.DEFAULTS["beta1"],
        "beta2": draw(unit) if optimizer in ("adam", "adamw") else s.DEFAULTS["beta2"],
        "weight_decay": draw(st.floats(0, s.MAX_FLOAT)) if optimizer == "adamw" else 0.0,
        "l2": draw(st.floats(0, s.MAX_FLOAT)),
        "dropout": draw(unit),
        "clip_norm": draw(st.none() | st.floats(0, s.MAX_FLOAT, exclude_min=True)),
        "batch_size": draw(st.integers(1, 2**20)),
        "epochs": draw(st.integers(1, 10**4)),
        "lr_schedule": draw(st.sampled_from(s.SCHEDULES)),
        "warmup_epochs": draw(st.floats(0, s.MAX_COUNT)),
        "early_stopping": early_stopping,
        "patience": draw(st.integers(1, 100)) if early_stopping else s.DEFAULTS["patience"],
        "validation_fraction": draw(st.floats(0, 1, exclude_min=early_stopping, exclude_max=True)),
        "seed": draw(st.integers(0, s.MAX_SEED)),
        "dtype": draw(st.sampled_from(s.DTYPES)),
        "normalize": draw(st.sampled_from(s.NORMALIZATIONS)),
        "augment_shift": draw(st.integers(0, 8)),
        "preset": draw(st.sampled_from(sorted(s.PRESETS))),
    }


# ------------------------------------------------------------------ application: history.csv rows (run folders)

finite64 = st.floats(allow_nan=False, allow_infinity=False)
fractions = st.floats(0, 1)


@st.composite
def history_rows(draw, max_epochs: int = 8):
    """Rows as ``fnn train`` gives them to ``runs.history_text``: epochs increasing from 1 or more, loss and
    accuracy always there, the other fields None, NaN (both written as an empty cell) or a number."""
    steps = draw(st.lists(st.integers(1, 3), max_size=max_epochs))
    optional = {"val_loss": finite64, "val_accuracy": fractions, "lr": finite64, "seconds": st.floats(0, 1e6)}
    rows, epoch = [], 0
    for step in steps:
        epoch += step
        row = {"epoch": epoch, "loss": draw(finite64), "accuracy": draw(fractions)}
        for key, values in optional.items():
            row[key] = draw(st.none() | st.just(float("nan")) | values)
        rows.append(row)
    return rows
