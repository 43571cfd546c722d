"""Hypothesis strategies for the pipelines tests: labelled uint8 images and chunk streams."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipelines import Chunk

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
