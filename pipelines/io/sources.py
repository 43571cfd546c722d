"""Byte sources: a data file's bytes in blocks, raw or gunzipped (detected by magic bytes), and exact-size reads.

Holds ``BLOCK_BYTES``, the one block size of the CSV and IDX parsers: they look it up here when they start reading
(so setting it here changes both), except ``csv_row_lines``, whose default is taken at import.
May import the standard library and ``pipelines.chunk``; nothing else of ``pipelines``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pipelines.chunk import DataError

BLOCK_BYTES = 1 << 19  # bytes parsed per vectorised step: big enough to amortise NumPy calls, small for cache/RAM


class _Truncated(Exception):
    """The gzip stream ended early (or is corrupt); the caller knows the line number."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(path, 0, "no such file")
    if path.is_dir():
        raise DataError(path, 0, "is a directory, not a data file")
    if path.stat().st_size == 0:
        raise DataError(path, 0, "empty file (0 bytes)")


def _byte_blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Decompressed bytes of ``path`` in blocks of at most ``block_bytes``; gzip is detected by its magic bytes.

    Raises ``_Truncated`` for a cut or corrupt gzip stream.
    """
    with open(path, "rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic != b"\x1f\x8b":
            if path.suffix == ".gz":
                raise DataError(path, 0, "not a gzip file (name ends in .gz but the gzip magic bytes are missing)")
            while data := raw.read(block_bytes):
                yield data
            return
        yield from _gunzip_blocks(raw, block_bytes)


def _gunzip_blocks(raw: BinaryIO, block_bytes: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=31)
    pending = b""
    while True:
        if not pending:
            pending = raw.read(block_bytes)
            if not pending:
                if not inflater.eof:
                    raise _Truncated("truncated gzip stream (the file ends before the end-of-stream marker)")
                return
        try:
            out = inflater.decompress(pending, block_bytes)
        except zlib.error as exc:
            raise _Truncated(f"corrupt gzip stream ({exc})") from None
        if out:
            yield out
        pending = inflater.unconsumed_tail
        if inflater.eof:  # another gzip member may follow (gzip allows concatenation)
            pending = inflater.unused_data
            if not pending:
                pending = raw.read(block_bytes)
                if not pending:
                    return
            inflater = zlib.decompressobj(wbits=31)


class _ByteReader:
    """``read(n)``: exactly n bytes from a block stream, fewer only at the end."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks, self._buf, self.position = blocks, bytearray(), 0

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            block = next(self._blocks, None)
            if block is None:
                break
            self._buf += block
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.position += len(out)
        return out

