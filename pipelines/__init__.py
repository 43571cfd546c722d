"""pipelines: CSV/IDX reading, dataset fetching and generator stages over ``Chunk(x, y)`` arrays.

Never imports ``functional_nn`` nor any application code (``functional_nn.app``, ``scripts``): it needs only NumPy,
attrs and the standard library (and Pillow, lazily, in ``images``). I/O lives in the ``io`` package (one module per
idea: byte sources, bad rows, CSV, IDX, parse cache, readers, writers) and in ``datasets``; ``stages`` and ``stats``
are pure.
"""

from pipelines.chunk import Chunk, DataError, DataWarning, concat_chunks
from pipelines.datasets import DATASETS, Dataset, FetchError, fetch, load
from pipelines.io import csv_row_lines, file_sha256, find_labels_file, read_arrays, read_chunks, write_csv, write_idx
from pipelines.stages import (batch, epoch_seed_rng, from_arrays, scale, shuffle, skip, standardize, take,
                              train_val_split)
from pipelines.stats import Standardizer, fit_standardizer

__all__ = ["Chunk", "DataError", "DataWarning", "concat_chunks", "DATASETS", "Dataset", "FetchError", "fetch", "load",
           "csv_row_lines", "file_sha256", "find_labels_file", "read_arrays", "read_chunks", "write_csv", "write_idx",
           "batch", "epoch_seed_rng", "from_arrays", "scale", "shuffle", "skip", "standardize", "take",
           "train_val_split", "Standardizer", "fit_standardizer"]
