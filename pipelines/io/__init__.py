"""Read CSV and IDX files (raw or gzip) into ``Chunk`` streams: parse, validate, cache. The I/O edge.

CSV: header or not (``header="auto"`` sniffs the first line), LF or CRLF, ``.csv.gz``, any label column (index,
header name, or ``None`` for unlabelled files). Parsing is vectorised per ~0.5 MB block of bytes, in two worker
threads for files of several blocks (results are taken in file order); a block that fails the fast checks is
bisected down to its bad lines, which a precise per-field parser describes (``path:line:``).
IDX: ``*-idx3-ubyte`` images with their ``*-idx1-ubyte`` labels found beside them, raw or ``.gz``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipelines.chunk import Chunk, DataError, DataWarning, recut
from pipelines.io.bad_rows import MAX_REPORTED_LINES, _BadRows
from pipelines.io.sources import BLOCK_BYTES, _byte_blocks, _ByteReader, _check_file, _Truncated

__all__ = ["read_chunks", "read_arrays", "csv_row_lines", "write_csv", "write_idx", "file_sha256",
           "find_labels_file"]

PARSE_WORKERS = 2  # threads parsing upcoming CSV blocks while the reader reads and the caller consumes
CACHE_VERSION = 1
_PAD = b"\n\n\n\n"
_INK = ~np.isin(np.arange(256), list(b" \t\n\r\x0b\x0c"))  # bytes that make a line non-blank (bytes.strip)
_INK.flags.writeable = False
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# ----------------------------------------------------------------------------------------------- byte sources
def _is_idx(path: Path) -> bool:
    name = path.name.lower()
    return "idx" in name and "ubyte" in name


# ------------------------------------------------------------------------------------------------ CSV parsing
class _CsvSpec:
    """What the header (or first row) told us: column count, label column, names for messages."""

    def __init__(self, path: Path, n_cols: int, label: int | None, names: list[str] | None, n_classes: int) -> None:
        self.path, self.n_cols, self.label, self.names, self.n_classes = path, n_cols, label, names, n_classes
        self.features = [j for j in range(n_cols) if j != label]

    def column(self, j: int) -> str:
        if self.names is not None:
            return f"column {j + 1} ({self.names[j]!r})"
        return f"column {j + 1} (label)" if j == self.label else f"column {j + 1}"


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _make_spec(path: Path, first_line: bytes, *, header, label_col, n_classes: int) -> tuple[_CsvSpec, bool]:
    fields = [f.strip() for f in first_line.rstrip(b"\r\n").split(b",")]
    if header == "auto":
        has_header = not all(_is_number(f) for f in fields)
    elif header in (True, False):
        has_header = header
    else:
        raise ValueError(f'header must be "auto", True or False, got {header!r}')
    names = [f.decode("utf-8", "replace").strip('"') for f in fields] if has_header else None
    n_cols = len(fields)
    if label_col is None:
        label = None
    elif isinstance(label_col, str):
        if names is None:
            raise DataError(path, 1, f"label_col={label_col!r} names a column, but the file has no header")
        if label_col not in names:
            raise DataError(path, 1, f"no column named {label_col!r} in the header (first columns: {names[:3]})")
        label = names.index(label_col)
    else:
        label = int(label_col) + (n_cols if int(label_col) < 0 else 0)
        if not 0 <= label < n_cols:
            raise DataError(path, 1, f"label_col={label_col} is out of range for {n_cols} columns")
    return _CsvSpec(path, n_cols, label, names, n_classes), has_header


def _fast_block(data: bytes, spec: _CsvSpec) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Vectorised parse of complete lines of plain 1-3 digit fields; ``None`` if anything looks off.

    One pass finds the field terminators (bytes below '0'); byte counts check that they are commas and line
    ends only (LF, or CR LF). Three gathers at offsets from the terminators give each field's last three bytes
    (a fourth, for 3-digit fields only, rules out longer ones). No temporary is much larger than the index of
    terminators, and none outlives the call: big short-lived arrays (a uint16 index that ``take`` widens to
    int64, say) cost more in page faults than the arithmetic. Pure, so worker threads run it; NumPy releases
    the GIL in its loops.
    """
    n_cols, n = spec.n_cols, len(data)
    padded = np.frombuffer(_PAD + data + _PAD, np.uint8)
    b = padded[4 : 4 + n]
    if n and b.max() > 57:
        return None
    terminator = b < 48
    newline = b == 10
    n_lines = np.count_nonzero(newline)
    crlf = data.find(b"\r") >= 0
    if crlf:  # a '\n' right after '\r' is part of the line end, not a terminator of its own
        newline &= padded[3 : 3 + n] == 13
        terminator ^= newline
    del newline
    sep = np.flatnonzero(terminator)
    del terminator
    # n_lines * n_cols terminators, n_lines * (n_cols - 1) of them commas, every n_cols-th a line end:
    # then there is no other terminator and every line holds n_cols fields
    if len(sep) != n_lines * n_cols or np.count_nonzero(b == 44) != n_lines * (n_cols - 1):
        return None
    line_ends = sep[n_cols - 1 :: n_cols]
    ends = b.take(line_ends)
    if crlf:
        if not ((ends == 10) | ((ends == 13) & (padded[5 : 5 + n].take(line_ends) == 10))).all():
            return None
    elif not (ends == 10).all():
        return None
    # the 1st, 2nd, 3rd byte before each terminator: a digit becomes 0-9, a separator wraps to 208 or more
    ones = padded[3 : 3 + n].take(sep)
    ones -= 48
    if len(ones) and ones.max() > 9:  # an empty field
        return None
    tens = padded[2 : 2 + n].take(sep)
    tens -= 48
    digits = tens <= 9  # two or more digits
    tens *= digits
    hundreds = padded[1 : 1 + n].take(sep)
    hundreds -= 48
    digits &= hundreds <= 9  # three or more
    if digits.any() and (padded[:n].take(sep[digits]) >= 48).any():  # 4+ digits: let the precise parser judge
        return None
    hundreds *= digits
    tens *= 10
    tens += ones
    v = hundreds.astype(np.uint16)
    v *= 100
    v += tens
    if len(v) and v.max() > 255:
        return None
    v = v.reshape(-1, n_cols)
    if spec.label is None:
        return v.astype(np.uint8), None
    y = v[:, spec.label].astype(np.int64)
    if len(y) and y.max() >= spec.n_classes:
        return None
    x = v[:, 1:] if spec.label == 0 else v[:, spec.features]
    return x.astype(np.uint8), y


def _parse_value(text: bytes) -> int | str:
    """An integer, or the reason it is not one."""
    shown = text.decode("utf-8", "backslashreplace")
    if not text:
        return "empty field"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return f"non-numeric field {shown!r}"
    if not np.isfinite(value):
        return f"{shown!r} is NaN or inf"
    if value != int(value):
        return f"{shown!r} is not an integer"
    return int(value)


def _slow_line(line: bytes, spec: _CsvSpec) -> tuple[np.ndarray, int | None] | str | None:
    """Precise parse of one line: (pixels, label), or the reason it is bad, or ``None`` for a blank line."""
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return None
    fields = line.split(b",")
    if len(fields) != spec.n_cols:
        return f"expected {spec.n_cols} columns, got {len(fields)}"
    values = []
    for j, field in enumerate(fields):
        value = _parse_value(field.strip())
        kind = "label" if j == spec.label else "pixel"
        if isinstance(value, str):
            reason = value if value == "empty field" or "NaN" in value or "non-numeric" in value else f"{kind} {value}"
            return f"{spec.column(j)}: {reason}"
        if j == spec.label and not 0 <= value < spec.n_classes:
            return f"{spec.column(j)}: label {value} outside [0, {spec.n_classes})"
        if j != spec.label and not 0 <= value <= 255:
            return f"{spec.column(j)}: pixel value {value} outside [0, 255]"
        values.append(value)
    row = np.array([values[j] for j in spec.features], dtype=np.uint8)
    return row, None if spec.label is None else values[spec.label]


def _parse_lines(data: bytes, line0: int, spec: _CsvSpec, bad: _BadRows, parts: list) -> int:
    """Append parts (x, y) of complete lines starting at line ``line0`` to ``parts``; return the line count.

    The vectorised path takes the whole block; if it finds anything off, ``_bisect_lines`` takes over.
    """
    fast = _fast_block(data, spec)
    if fast is not None:
        parts.append(fast)
        return len(fast[0])
    return _bisect_lines(data, line0, spec, bad, parts)


def _bisect_lines(data: bytes, line0: int, spec: _CsvSpec, bad: _BadRows, parts: list) -> int:
    """``_parse_lines`` for a block the vectorised path refused: halve it at a line end and parse each half,
    down to single lines, which the precise parser accepts (e.g. ``" 12"``, ``"12.0"``), skips (blank) or
    reports (``bad``, in line order)."""
    n_lines = data.count(b"\n")
    if n_lines > 1:
        mid = data.find(b"\n", len(data) // 2, len(data) - 1)
        if mid < 0:
            mid = data.rfind(b"\n", 0, len(data) - 1)
        n_head = _parse_lines(data[: mid + 1], line0, spec, bad, parts)
        return n_head + _parse_lines(data[mid + 1 :], line0 + n_head, spec, bad, parts)
    result = _slow_line(data, spec)
    if isinstance(result, str):
        bad.add(line0, result)
    elif result is not None:
        row, label = result
        parts.append((row[None, :], None if label is None else np.array([label], dtype=np.int64)))
    return 1


def _take_parsed(pending: deque, keep: int, line0: int, spec: _CsvSpec,
                 bad: _BadRows) -> Generator[tuple[np.ndarray, np.ndarray | None], None, tuple[int, int]]:
    """Finish the oldest ``pending`` blocks, in file order, until ``keep`` are left; yield their parts (x, y).

    Each entry is ``(block, future)``: ``future`` holds ``_fast_block(block, spec)`` computed by a worker
    thread, or is ``None`` (parse here). A refused block is bisected here, so bad rows are reported in line
    order, from this thread. Returns ``(lines, rows)``: the lines and rows finished.
    """
    lines = rows = 0
    while len(pending) > keep:
        block, future = pending.popleft()
        parts: list = []
        fast = _fast_block(block, spec) if future is None else future.result()
        if fast is None:
            lines += _bisect_lines(block, line0 + lines, spec, bad, parts)
        else:
            parts.append(fast)
            lines += len(fast[0])
        for x, y in parts:
            rows += len(x)
            yield x, y
    return lines, rows


def _csv_parts(path: Path, *, header, label_col, n_classes: int, bad: _BadRows, block_bytes: int | None = None,
               workers: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Parts (x, y) of a CSV in file order, from blocks of complete lines.

    The first block (so a file of one block starts no thread) and the line completed at the end of the file are
    parsed here; the blocks between go to ``workers`` threads, at most ``2 * workers`` blocks ahead of the
    consumer, and their results are taken in file order, so rows, line numbers and bad-row reports are those of
    a serial parse. ``block_bytes`` and ``workers`` default to ``BLOCK_BYTES`` and ``PARSE_WORKERS``;
    ``workers=0`` parses every block here. The threads are shut down (queued blocks dropped, running ones
    waited for) when the generator ends, raises or is closed.
    """
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    workers = PARSE_WORKERS if workers is None else workers
    blocks = _byte_blocks(path, block_bytes)
    buf, line0, spec, n_rows, has_header, n_blocks = b"", 1, None, 0, False, 0
    pending: deque = deque()
    pool = None
    try:
        while True:
            try:
                data = next(blocks, None)
            except _Truncated as exc:
                lines, rows = yield from _take_parsed(pending, 0, line0, spec, bad)  # rows before the cut first
                raise DataError(path, line0 + lines + buf.count(b"\n"), str(exc)) from None
            if data is None:
                if buf and not buf.endswith(b"\n"):
                    buf += b"\n"
            else:
                buf += data
            if spec is None:
                while (end := buf.find(b"\n")) >= 0 and not buf[:end].strip():  # leading blank lines
                    buf, line0 = buf[end + 1 :], line0 + 1
                if buf.find(b"\n") < 0:
                    if data is None:
                        raise DataError(path, 0, "empty file (no data rows)")
                    continue
                spec, has_header = _make_spec(path, buf[: buf.index(b"\n")], header=header, label_col=label_col,
                                              n_classes=n_classes)
                if has_header:
                    buf, line0 = buf[buf.index(b"\n") + 1 :], line0 + 1
            cut = buf.rfind(b"\n") + 1
            if cut:
                block, buf, n_blocks = buf[:cut], buf[cut:], n_blocks + 1
                if pool is None and workers and n_blocks > 1 and data is not None:  # more to come: worth threads
                    pool = ThreadPoolExecutor(workers, thread_name_prefix="fnn-parse")
                if pool is not None and data is not None:
                    pending.append((block, pool.submit(_fast_block, block, spec)))
                else:
                    pending.append((block, None))
                lines, rows = yield from _take_parsed(pending, 0 if pool is None else 2 * workers, line0, spec, bad)
                line0, n_rows = line0 + lines, n_rows + rows
            if data is None:
                break
        lines, rows = yield from _take_parsed(pending, 0, line0, spec, bad)
        n_rows += rows
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if n_rows == 0 and bad.count == 0:
        raise DataError(path, 1, "header only, no data rows" if has_header else "empty file (no data rows)")


def csv_row_lines(path: str | os.PathLike, *, header: bool | str = "auto",
                  block_bytes: int = BLOCK_BYTES) -> tuple[np.ndarray, int]:
    """The file line numbers of a CSV's data rows, and its fields per row, as ``read_chunks`` counts them.

    Lines count from 1 (a header is line 1) and include blank lines, which hold no row: they are the
    ``path:line`` of a ``DataError``. Each block of bytes is scanned with NumPy (no Python step per line).

    Args:
        path: a ``.csv`` or ``.csv.gz`` file.
        header: as ``read_chunks``: ``"auto"``, ``True`` or ``False``.
        block_bytes: bytes scanned per step.

    Returns:
        ``(lines, n_fields)``: ``lines`` int64 (n_rows,), the line of each row ``read_arrays`` gives for a file
        it reads without skipping any; ``n_fields`` the field count of the first non-blank line, label included.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.csv"
    >>> _ = p.write_bytes(b"\\nlabel,a\\n7,0\\n \\r\\n2,255")
    >>> lines, n_fields = csv_row_lines(p)
    >>> lines.tolist(), n_fields
    ([3, 5], 2)
    """
    path = Path(path)
    _check_file(path)
    blocks = _byte_blocks(path, block_bytes)
    found, tail, line0, first = [], b"", 1, None
    while tail is not None:
        try:
            data = next(blocks, None)
        except _Truncated as exc:
            raise DataError(path, line0, str(exc)) from None
        if data is None:  # the last line may lack its newline
            block, tail = tail + b"\n" if tail else b"", None
        else:
            buf = tail + data
            cut = buf.rfind(b"\n") + 1
            block, tail = buf[:cut], buf[cut:]
        b = np.frombuffer(block, np.uint8)
        ends = np.flatnonzero(b == 10)
        if not len(ends):
            continue
        starts = np.concatenate(([0], ends[:-1] + 1))  # every line holds at least its newline: no empty segment
        rows = np.flatnonzero(np.logical_or.reduceat(_INK[b], starts))
        if first is None and len(rows):
            first = block[starts[rows[0]] : ends[rows[0]]]
        found.append(line0 + rows)
        line0 += len(ends)
    if first is None:
        raise DataError(path, 0, "empty file (no data rows)")
    spec, has_header = _make_spec(path, first, header=header, label_col=None, n_classes=0)
    lines = np.concatenate(found)
    return lines[1:] if has_header else lines, spec.n_cols


# ------------------------------------------------------------------------------------------------ IDX parsing
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
    images = _ByteReader(_byte_blocks(path, BLOCK_BYTES))
    labels = None if labels_path is None else _ByteReader(_byte_blocks(labels_path, BLOCK_BYTES))
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
        while reader is not None and _guard(path, lambda: reader.read(BLOCK_BYTES), reader):
            pass


def _guard(path: Path, read, reader: _ByteReader):
    try:
        return read()
    except _Truncated as exc:
        raise DataError(path, "data", f"{exc}, after {reader.position + len(reader._buf)} bytes") from None


# ------------------------------------------------------------------------------------------------ public API
def _parts(path: Path, *, label_col, header, n_classes, bad, labels_path, chunk_rows):
    if _is_idx(path):
        if label_col is None:
            labels_path = None
        elif labels_path is None:
            labels_path = find_labels_file(path)
            if labels_path is None:
                raise DataError(path, "labels", "no labels file beside it (looked for "
                                f"{path.name.replace('images', 'labels').replace('idx3', 'idx1')}); "
                                "pass labels_path=... or label_col=None for unlabelled images")
        if labels_path is not None:
            labels_path = Path(labels_path)
            _check_file(labels_path)
        return _idx_parts(path, labels_path, n_classes=n_classes, bad=bad, chunk_rows=chunk_rows)
    return _csv_parts(path, header=header, label_col=label_col, n_classes=n_classes, bad=bad)


def read_chunks(path: str | os.PathLike, *, chunk_rows: int = 8192, label_col: int | str | None = 0,
                header: bool | str = "auto", n_classes: int = 10, on_bad_row: str = "raise",
                labels_path: str | os.PathLike | None = None) -> Iterator[Chunk]:
    """Stream a CSV or IDX file as ``Chunk``s of ``chunk_rows`` rows (the last may be short), in bounded memory.

    Args:
        path: a ``.csv`` / ``.csv.gz`` file, or an IDX images file (``*-idx3-ubyte``, raw or ``.gz``).
        chunk_rows: rows per chunk.
        label_col: CSV label column (index, header name) or ``None`` (no labels: ``y`` is ``None``). For IDX,
            ``None`` skips the labels file.
        header: ``"auto"`` (a first line with any non-numeric field is a header), ``True`` or ``False``.
        n_classes: labels must be integers in ``[0, n_classes)``.
        on_bad_row: ``"raise"`` a ``DataError`` at the first bad row, or ``"skip"`` bad rows and report them in
            one ``DataWarning`` (count and first line numbers) when the stream ends.
        labels_path: IDX labels file; by default the one beside ``path``.

    Returns:
        An iterator of ``Chunk(x uint8 (n, n_features), y int64 (n,) or None)``. The file is checked for
        existence now; everything else is read and validated lazily. A CSV of several blocks is parsed a few
        blocks ahead by ``PARSE_WORKERS`` threads, which end with the iterator (exhausted, raising or closed).

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.csv"
    >>> _ = p.write_bytes(b"label,a,b\\r\\n3,0,255\\r\\n1,7,8\\r\\n2,9,10\\r\\n")
    >>> [(c.x.tolist(), c.y.tolist()) for c in read_chunks(p, chunk_rows=2)]
    [([[0, 255], [7, 8]], [3, 1]), ([[9, 10]], [2])]
    """
    path = Path(path)
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    _check_file(path)
    bad = _BadRows(path, on_bad_row)
    return _stream(path, bad, chunk_rows=chunk_rows, label_col=label_col, header=header, n_classes=n_classes,
                   labels_path=labels_path)


def _stream(path, bad, **options) -> Iterator[Chunk]:
    try:
        parts = _parts(path, bad=bad, **options)
        yield from recut((Chunk(x, y) for x, y in parts), options["chunk_rows"])
    finally:
        bad.report()


def _read_whole(path: Path, *, label_col, header, n_classes, on_bad_row, labels_path) -> tuple[Chunk, _BadRows]:
    bad = _BadRows(path, on_bad_row)
    xs, ys = [], []
    for x, y in _parts(path, label_col=label_col, header=header, n_classes=n_classes, bad=bad,
                       labels_path=labels_path, chunk_rows=1 << 30):
        xs.append(x)
        ys.append(y)
    if not xs:  # every row was skipped
        return Chunk(np.zeros((0, 0), np.uint8), None if label_col is None else np.zeros(0, np.int64)), bad
    x = xs[0] if len(xs) == 1 else np.concatenate(xs)
    y = None if ys[0] is None else (ys[0] if len(ys) == 1 else np.concatenate(ys))
    return Chunk(x, y), bad


def read_arrays(path: str | os.PathLike, *, label_col: int | str | None = 0, header: bool | str = "auto",
                n_classes: int = 10, on_bad_row: str = "raise", labels_path: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None) -> Chunk:
    """Read a whole CSV or IDX file into one ``Chunk`` (options as ``read_chunks``), optionally cached.

    Args:
        cache_dir: ``None`` (no cache) or a folder for ``.npy`` copies of the parsed arrays plus a JSON record
            of the source's size, mtime and SHA-256. A matching size and mtime reloads the arrays (memory-mapped,
            read-only) without parsing; otherwise the SHA-256 decides, and a changed source is parsed again.
            Cache files are written atomically (temp file, then rename).

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.csv"
    >>> _ = p.write_bytes(b"3,0,255\\n1,7,8\\n")
    >>> c = read_arrays(p, cache_dir=p.parent / "cache")
    >>> c.x.tolist(), c.y.tolist(), read_arrays(p, cache_dir=p.parent / "cache").y.tolist()
    ([[0, 255], [7, 8]], [3, 1], [3, 1])
    """
    return read_arrays_with_sha256(path, label_col=label_col, header=header, n_classes=n_classes,
                                   on_bad_row=on_bad_row, labels_path=labels_path, cache_dir=cache_dir,
                                   want_sha256=False)[0]


def read_arrays_with_sha256(path, *, label_col=0, header="auto", n_classes=10, on_bad_row="raise",
                            labels_path=None, cache_dir=None, want_sha256=True) -> tuple[Chunk, dict[str, str]]:
    """``read_arrays`` plus the SHA-256 of every source file read ({file name: hex digest}).

    The digests come from the cache record when the cache is fresh; otherwise they are computed in a thread
    while parsing. With ``want_sha256=False`` and no cache, nothing is hashed and the dict is empty.
    """
    path = Path(path)
    _check_file(path)
    if _is_idx(path) and labels_path is None and label_col is not None:
        labels_path = find_labels_file(path)
    with_labels = _is_idx(path) and labels_path is not None and label_col is not None
    sources = [path] + ([Path(labels_path)] if with_labels else [])
    for source in sources[1:]:
        _check_file(source)
    options = dict(label_col=label_col, header=header, n_classes=n_classes, on_bad_row=on_bad_row)
    if cache_dir is not None:
        hit = _cache_load(Path(cache_dir), sources, options)
        if hit is not None:
            chunk, record = hit
            _report_cached(path, record)
            return chunk, {s["name"]: s["sha256"] for s in record["sources"]}
    if cache_dir is None and not want_sha256:
        chunk, bad = _read_whole(path, labels_path=labels_path, **options)
        bad.report()
        return chunk, {}
    with ThreadPoolExecutor(max_workers=1) as pool:  # hashlib releases the GIL: hash while parsing
        hashing = pool.submit(lambda: [file_sha256(s) for s in sources])
        chunk, bad = _read_whole(path, labels_path=labels_path, **options)
        shas = hashing.result()
    bad.report()
    if cache_dir is not None:
        _cache_store(Path(cache_dir), sources, shas, options, chunk, bad.record())
    return chunk, {s.name: sha for s, sha in zip(sources, shas)}


def _report_cached(path: Path, record: dict) -> None:
    if record.get("skipped"):
        count, lines, first = record["skipped"]
        warnings.warn(DataWarning(path, count, tuple(lines), first), stacklevel=3)


# --------------------------------------------------------------------------------------------------- caching
def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB blocks.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"
    >>> _ = p.write_bytes(b"")
    >>> file_sha256(p)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _cache_key(sources: list[Path], options: dict) -> str:
    text = json.dumps({"v": CACHE_VERSION, "sources": [str(s.resolve()) for s in sources], **options},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stat(path: Path) -> dict:
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_load(cache_dir: Path, sources: list[Path], options: dict) -> tuple[Chunk, dict] | None:
    record_path = cache_dir / f"{sources[0].name}-{_cache_key(sources, options)}.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    cached = record.get("sources", [])
    if record.get("version") != CACHE_VERSION or len(cached) != len(sources):
        return None
    stale = False
    for source, entry in zip(sources, cached):
        now = _stat(source)
        if (now["size"], now["mtime_ns"]) != (entry["size"], entry["mtime_ns"]):
            if now["size"] != entry["size"] or file_sha256(source) != entry["sha256"]:
                return None  # changed: parse again
            entry.update(now)  # touched or copied, same bytes: keep the arrays, refresh the record
            stale = True
    try:
        x = np.load(cache_dir / record["x"], mmap_mode="r")
        y = None if record["y"] is None else np.load(cache_dir / record["y"], mmap_mode="r")
    except (OSError, ValueError):
        return None
    if stale:
        _atomic_write(record_path, json.dumps(record, indent=1).encode())
    return Chunk(np.asarray(x), None if y is None else np.asarray(y)), record


def _atomic_write(path: Path, data: bytes | None = None, array: np.ndarray | None = None) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if array is not None:
                np.save(f, array, allow_pickle=False)
            else:
                f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp files are private (0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cache_store(cache_dir: Path, sources, shas, options, chunk: Chunk, skipped) -> None:
    key = _cache_key(sources, options)
    stem = f"{sources[0].name}-{key}-{shas[0][:12]}"
    record = {"version": CACHE_VERSION, "x": f"{stem}.x.npy", "y": None if chunk.y is None else f"{stem}.y.npy",
              "sources": [{**_stat(s), "sha256": sha} for s, sha in zip(sources, shas)],
              "shape": list(chunk.x.shape), "options": options, "skipped": skipped}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(cache_dir / record["x"], array=chunk.x)
        if chunk.y is not None:
            _atomic_write(cache_dir / record["y"], array=chunk.y)
        _atomic_write(cache_dir / f"{sources[0].name}-{key}.json", json.dumps(record, indent=1).encode())
    except OSError as exc:
        warnings.warn(f"{cache_dir}: could not write the parse cache ({exc}); continuing without it", stacklevel=3)
        return
    for old in cache_dir.glob(f"{sources[0].name}-{key}-*.npy"):  # arrays of an older version of the source
        if old.name not in (record["x"], record["y"]):
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------- writers
def write_csv(path: str | os.PathLike, x: np.ndarray, y: np.ndarray | None = None, *, header: bool = True,
              line_end: str = "\n") -> Path:
    """Write ``x`` (n, k) integers with labels ``y`` first (mnist-in-csv layout); ``.gz`` paths are gzipped.

    >>> import pathlib, tempfile
    >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", np.array([[1, 2]]), np.array([5]))
    >>> p.read_text()
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
    >>> p = write_idx(pathlib.Path(tempfile.mkdtemp()) / "t-labels-idx1-ubyte", np.array([7, 2], np.uint8))
    >>> p.read_bytes().hex()
    '00000801000000020702'
    """
    import gzip

    path = Path(path)
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}[array.dtype.newbyteorder("=")]
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
