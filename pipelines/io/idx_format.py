"""IDX parsing: ``*-idx3-ubyte`` images (raw or ``.gz``) with the ``*-idx1-ubyte`` labels found beside them.

May import NumPy, the standard library, ``pipelines.chunk`` and the ``sources`` and ``bad_rows`` modules here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.chunk import DataError
from pipelines.io import sources
from pipelines.io.bad_rows import MAX_REPORTED_LINES, _BadRows
from pipelines.io.sources import _byte_blocks, _ByteReader, _Truncated

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _is_idx(path: Path) -> bool:
    name = path.name.lower()
    return "idx" in name and "ubyte" in name


def find_labels_file(images_path: str | os.PathLike) -> Path | None:
    """The IDX labels file beside an images file (``train-images-idx3-ubyte`` -> ``train-labels-idx1-ubyte``,
    also ``.gz`` and Kaggle's ``train-images.idx3-ubyte``), or ``None``.

    >>> find_labels_file("no/such/dir/t10k-images-idx3-ubyte") is None
    True
    """
    path = Path(images_path)
    stem = path.name.removesuffix(".gz")
    guess = stem.replace("images", "labels").replace("idx3", "idx1")
    same_compression = (guess + ".gz", guess) if path.name.endswith(".gz") else (guess, guess + ".gz")
    for name in same_compression:
        candidate = path.with_name(name)
        if name != path.name and candidate.exists():
            return candidate
    return None


def _idx_header(path: Path, reader: _ByteReader, *, images: bool) -> tuple[np.dtype, tuple[int, ...]]:
    magic = reader.read(4)
    if len(magic) < 4:
        raise DataError(path, "magic", f"truncated: the file has only {len(magic)} bytes")
    code, ndim = magic[2], magic[3]
    want = "0x0000080N with N >= 2 (images)" if images else "0x00000801 (labels)"
    if magic[:2] != b"\0\0" or code not in _IDX_TYPES or (ndim < 2 if images else ndim != 1):
        raise DataError(path, "magic", f"expected {want}, got 0x{magic.hex()}; not an IDX "
                        + ("images" if images else "labels") + " file")
    raw = reader.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(path, "dims", f"truncated: expected {ndim} dimension sizes, the file ends first")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    return np.dtype(_IDX_TYPES[code]), dims


def _idx_parts(path: Path, labels_path: Path | None, *, n_classes: int, bad: _BadRows,
               chunk_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    images = _ByteReader(_byte_blocks(path, sources.BLOCK_BYTES))
    labels = None if labels_path is None else _ByteReader(_byte_blocks(labels_path, sources.BLOCK_BYTES))
    dtype, dims = _guard(path, lambda: _idx_header(path, images, images=True), images)
    n, row_items = dims[0], int(np.prod(dims[1:]))
    if labels is not None:
        ldtype, ldims = _guard(labels_path, lambda: _idx_header(labels_path, labels, images=False), labels)
        if ldims[0] != n:
            raise DataError(path, "count", f"{n} images, but {labels_path} has {ldims[0]} labels")
    row_bytes = row_items * dtype.itemsize
    for start in range(0, n, chunk_rows):
        rows = min(chunk_rows, n - start)
        data = _guard(path, lambda: images.read(rows * row_bytes), images)
        if len(data) < rows * row_bytes:
            got = start + len(data) // row_bytes
            raise DataError(path, "data", f"truncated: the header says {n} images of {dims[1:]}, the file holds {got}")
        x = np.frombuffer(data, dtype).reshape(rows, row_items).astype(dtype.newbyteorder("="))
        if labels is None:
            yield x, None
            continue
        raw = _guard(labels_path, lambda: labels.read(rows * ldtype.itemsize), labels)
        if len(raw) < rows * ldtype.itemsize:
            got = start + len(raw) // ldtype.itemsize
            raise DataError(labels_path, "data", f"truncated: the header says {n} labels, the file holds {got}")
        y = np.frombuffer(raw, ldtype).astype(np.int64)
        out = (y < 0) | (y >= n_classes)
        if out.any():
            for i in np.flatnonzero(out)[: MAX_REPORTED_LINES + 1]:
                bad.add(f"item {start + i}", f"label {y[i]} outside [0, {n_classes})")
            bad.count += int(out.sum()) - min(int(out.sum()), MAX_REPORTED_LINES + 1)
            x, y = x[~out], y[~out]
        yield x, y
    for reader in (images, labels):  # read to the end: a gzip stream cut after the last record is reported too
        while reader is not None and _guard(path, lambda: reader.read(sources.BLOCK_BYTES), reader):
            pass


def _guard(path: Path, read, reader: _ByteReader):
    try:
        return read()
    except _Truncated as exc:
        raise DataError(path, "data", f"{exc}, after {reader.position + len(reader._buf)} bytes") from None

