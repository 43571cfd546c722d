"""Byte sources: a data file's bytes in blocks, raw or gunzipped (detected by magic bytes), and exact-size reads.

Holds ``BLOCK_BYTES``, the one block size of the CSV and IDX parsers: they look it up here when they start reading
(so setting it here changes both), except ``csv_row_lines``, whose default is taken at import.
May import the standard library and ``pipelines.chunk``; nothing else of ``pipelines``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pipelines.chunk import DataError

BLOCK_BYTES = 1 << 19  # bytes parsed per vectorised step: big enough to amortise NumPy calls, small for cache/RAM


class _Truncated(Exception):
    """The gzip stream ended early (or is corrupt); the caller knows the line number."""


def _check_file(path: Path) -> os.stat_result:
    """``os.stat`` of a data file; DataError unless it is a non-empty regular file (a FIFO, device or socket is
    refused before anything opens it: reading one could block forever or never end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(path, 0, "no such file") from None
    except OSError as exc:
        raise DataError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(path, 0, "is a directory, not a data file")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(path, 0, "not a regular file (a FIFO, device or socket)")
    if st.st_size == 0:
        raise DataError(path, 0, "empty file (0 bytes)")
    return st


def open_regular(path: Path) -> BinaryIO:
    """Open a data file for reading without blocking on a FIFO (O_NONBLOCK) and check, on the open descriptor,
    that it is a regular file: a file swapped for a FIFO after :func:`_check_file` cannot hang the reader."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DataError(path, 0, "no such file") from None
    except OSError as exc:
        raise DataError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(path, 0, "not a regular file (a FIFO, device or socket)")
    return os.fdopen(fd, "rb")


class Tally:
    """The SHA-256 and count of the raw bytes a reader took from a file, and the file's status when it was
    opened: the parse cache stores rows only under the digest of the very bytes they were parsed from."""

    def __init__(self) -> None:
        self.digest, self.n_bytes, self.opened = hashlib.sha256(), 0, None

    def add(self, data: bytes) -> bytes:
        self.digest.update(data)
        self.n_bytes += len(data)
        return data


def _byte_blocks(path: Path, block_bytes: int, tally: Tally | None = None) -> Iterator[bytes]:
    """Decompressed bytes of ``path`` in blocks of at most ``block_bytes``; gzip is detected by its magic bytes.
    With ``tally``, every raw byte read is hashed and counted, and the file's ``fstat`` at opening recorded.

    Raises ``_Truncated`` for a cut or corrupt gzip stream.
    """
    with open_regular(path) as raw:
        if tally is not None:
            tally.opened = os.fstat(raw.fileno())
            read = lambda n: tally.add(raw.read(n))  # noqa: E731
        else:
            read = raw.read
        magic = read(2)
        if magic != b"\x1f\x8b":
            if path.suffix == ".gz":
                raise DataError(path, 0, "not a gzip file (name ends in .gz but the gzip magic bytes are missing)")
            if magic:
                rest = read(block_bytes - len(magic))
                yield magic + rest
            while data := read(block_bytes):
                yield data
            return
        yield from _gunzip_blocks(read, block_bytes, magic)


def _gunzip_blocks(read, block_bytes: int, pending: bytes = b"") -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=31)
    while True:
        if not pending:
            pending = read(block_bytes)
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
                pending = read(block_bytes)
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

