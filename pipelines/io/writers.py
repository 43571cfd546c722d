"""Writers: arrays to CSV (mnist-in-csv layout) and IDX files, gzipped for ``.gz`` paths; test fixtures mostly.

May import NumPy, the standard library and the ``idx_format`` module here (for the IDX type codes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipelines.io.idx_format import _IDX_DTYPES

def write_csv(path: str | os.PathLike, x: np.ndarray, y: np.ndarray | None = None, *, header: bool = True,
              line_end: str = "\n") -> Path:
    """Write ``x`` (n, k) integers with labels ``y`` first (mnist-in-csv layout); ``.gz`` paths are gzipped.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_csv(pathlib.Path(d) / "t.csv", np.array([[1, 2]]), np.array([5])).read_text()
    'label,1,2\\n5,1,2\\n'
    """
    import gzip

    path = Path(path)
    x = np.asarray(x)
    cols = [f"{j + 1}" for j in range(x.shape[1])]
    table = x if y is None else np.column_stack([np.asarray(y), x])
    names = cols if y is None else ["label", *cols]
    lines = ([",".join(names)] if header else []) + [",".join(map(str, row)) for row in table.tolist()]
    data = "".join(line + line_end for line in lines).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an IDX file (uint8 etc., big-endian); ``.gz`` paths are gzipped.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_idx(pathlib.Path(d) / "t-labels-idx1-ubyte", np.array([7, 2], np.uint8)).read_bytes().hex()
    '00000801000000020702'
    """
    import gzip

    path = Path(path)
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}[array.dtype.newbyteorder("=")]
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path

