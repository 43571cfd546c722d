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

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}   # the IDX format's
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
              0x0E: "float64"}
MAX_ITEMS = 1 << 40      # items an IDX file may declare (a terabyte of bytes): no product of sizes can overflow


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


def _idx_header(path: Path, reader: _ByteReader, *, images: bool) -> tuple[int, tuple[int, ...]]:
    """The header's dimension sizes and the header's length in bytes. Only unsigned bytes (type 0x08) are read:
    MNIST-style pixels are 0-255 and labels small integers, and reading int16, int32 or float data as pixels
    would take 300, -5, 0.5 or NaN silently. Every size must be at least 1 and their product bounded."""
    magic = reader.read(4)
    if len(magic) < 4:
        raise DataError(path, "magic", f"truncated: the file has only {len(magic)} bytes")
    code, ndim = magic[2], magic[3]
    kind = "images" if images else "labels"
    want = "0x0000080N with N >= 2 (images)" if images else "0x00000801 (labels)"
    if magic[:2] != b"\0\0" or code not in _IDX_TYPES or (ndim < 2 if images else ndim != 1):
        raise DataError(path, "magic", f"expected {want}, got 0x{magic.hex()}; not an IDX {kind} file")
    if code != 0x08:
        raise DataError(path, "magic", f"IDX {kind} of type {_IDX_TYPES[code]} (0x{code:02x}): only unsigned "
                        "bytes (0x08) are read, pixels 0-255 and labels 0-255")
    raw = reader.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(path, "dims", f"truncated: expected {ndim} dimension sizes, the file ends first")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    items = 1
    for d in dims:
        items *= d                                        # Python ints: no overflow
    if 0 in dims or items > MAX_ITEMS:
        raise DataError(path, "dims", f"dimension sizes {' x '.join(map(str, dims))}: each must be at least 1 "
                        f"and their product at most {MAX_ITEMS}")
    return dims, 4 + 4 * ndim


def _check_length(path: Path, header_bytes: int, dims: tuple[int, ...], kind: str) -> None:
    """A raw (not gzipped) IDX file must be exactly its header plus the data it declares: checked by its size
    before anything is read (a gzipped one while inflating, in ``_idx_parts``)."""
    with sources.open_regular(path) as f:
        if f.read(2) == b"\x1f\x8b":
            return
        size = os.fstat(f.fileno()).st_size
    row = int(np.prod(dims[1:], dtype=object)) if len(dims) > 1 else 1
    data = size - header_bytes
    if data < dims[0] * row:
        shape = f" of {dims[1:]}" if len(dims) > 1 else ""
        raise DataError(path, "data", f"truncated: the header says {dims[0]} {kind}{shape}, the file holds "
                        f"{data // row}")
    if data > dims[0] * row:
        raise DataError(path, "data", f"{data - dims[0] * row} bytes after the declared data (the header says "
                        f"{dims[0]} {kind})")


def _idx_parts(path: Path, labels_path: Path | None, *, n_classes: int, bad: _BadRows, chunk_rows: int,
               tallies: tuple | None = None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    tallies = tallies or (None, None)
    images = _ByteReader(_byte_blocks(path, sources.BLOCK_BYTES, tallies[0]))
    labels = (None if labels_path is None
              else _ByteReader(_byte_blocks(labels_path, sources.BLOCK_BYTES, tallies[1])))
    dims, header_bytes = _guard(path, lambda: _idx_header(path, images, images=True), images)
    n, row_items = dims[0], int(np.prod(dims[1:], dtype=object))
    _check_length(path, header_bytes, dims, "images")
    if labels is not None:
        ldims, lheader_bytes = _guard(labels_path, lambda: _idx_header(labels_path, labels, images=False), labels)
        if ldims[0] != n:
            raise DataError(path, "count", f"{n} images, but {labels_path} has {ldims[0]} labels")
        _check_length(labels_path, lheader_bytes, ldims, "labels")
    row_bytes = row_items
    chunk_rows = max(1, min(chunk_rows, (64 << 20) // row_bytes))     # bounded reads, whatever the row size
    for start in range(0, n, chunk_rows):
        rows = min(chunk_rows, n - start)
        data = _guard(path, lambda: images.read(rows * row_bytes), images)
        if len(data) < rows * row_bytes:
            got = start + len(data) // row_bytes
            raise DataError(path, "data", f"truncated: the header says {n} images of {dims[1:]}, the file holds {got}")
        x = np.frombuffer(data, np.uint8).reshape(rows, row_items).copy()
        if labels is None:
            yield x, None
            continue
        raw = _guard(labels_path, lambda: labels.read(rows), labels)
        if len(raw) < rows:
            got = start + len(raw)
            raise DataError(labels_path, "data", f"truncated: the header says {n} labels, the file holds {got}")
        y = np.frombuffer(raw, np.uint8).astype(np.int64)
        out = (y < 0) | (y >= n_classes)
        if out.any():
            for i in np.flatnonzero(out)[: MAX_REPORTED_LINES + 1]:
                bad.add(f"item {start + i}", f"label {y[i]} outside [0, {n_classes})")
            bad.count += int(out.sum()) - min(int(out.sum()), MAX_REPORTED_LINES + 1)
            x, y = x[~out], y[~out]
        yield x, y
    for reader, where in ((images, path), (labels, labels_path)):   # nothing may follow the declared data
        if reader is not None and _guard(where, lambda: reader.read(1), reader):   # gzip: inflates one more
            raise DataError(where, "data", "bytes after the declared data (the header's sizes are wrong, or "
                            "another file follows)")


def _guard(path: Path, read, reader: _ByteReader):
    try:
        return read()
    except _Truncated as exc:
        raise DataError(path, "data", f"{exc}, after {reader.position + len(reader._buf)} bytes") from None

