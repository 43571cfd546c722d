"""CSV parsing: bytes of a CSV (header or not, LF or CRLF, any label column) into parts ``(x, y)``.

Parsing is vectorised per block of bytes (``sources.BLOCK_BYTES``), in ``PARSE_WORKERS`` threads for files of
several blocks (results are taken in file order); a block that fails the fast checks is bisected down to its bad
lines, which a precise per-field parser describes (``path:line:``). ``csv_row_lines`` numbers the data rows.
May import NumPy, the standard library, ``pipelines.chunk`` and the ``sources`` and ``bad_rows`` modules here.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipelines.chunk import DataError
from pipelines.io import sources
from pipelines.io.bad_rows import _BadRows
from pipelines.io.sources import _byte_blocks, _check_file, _Truncated

PARSE_WORKERS = 2  # threads parsing upcoming CSV blocks while the reader reads and the caller consumes
_PAD = b"\n\n\n\n"
_INK = ~np.isin(np.arange(256), list(b" \t\n\r\x0b\x0c"))  # bytes that make a line non-blank (bytes.strip)
_INK.flags.writeable = False


class _CsvSpec:
    """What the header (or first row) told us: column count, label column, names for messages."""

    def __init__(self, path: Path, n_cols: int, label: int | None, names: list[str] | None, n_classes: int) -> None:
        self.path, self.n_cols, self.label, self.names, self.n_classes = path, n_cols, label, names, n_classes
        self.features = [j for j in range(n_cols) if j != label]

    def column(self, j: int) -> str:
        if self.names is not None:
            return f"column {j + 1} ({self.names[j]!r})"
        return f"column {j + 1} (label)" if j == self.label else f"column {j + 1}"


_BOM = b"\xef\xbb\xbf"


def _text_blocks(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """CSV bytes with a leading UTF-8 byte-order mark dropped and every line end (``\\r\\n``, ``\\r``,
    ``\\n``) read as Python's universal newlines read them (``\\r\\r\\n`` is a line end, then a blank line): a
    block with a lone ``\\r`` gets two ``bytes.replace`` passes that make every line end ``\\n`` (linear time
    whatever the line ends); ``\\n`` and ``\\r\\n`` blocks pass as they are (the parsers read both).

    >>> list(_text_blocks(iter([b"\\xef\\xbb", b"\\xbf1,2\\r", b"\\n3,4\\r\\r\\n5,6\\r"])))
    [b'1,2', b'\\n3,4\\n\\n5,6', b'\\n']
    """
    pending, at_start = b"", True     # held back: a possible BOM's first bytes, or a '\r' that a '\n' may follow
    for data in blocks:
        data, pending = pending + data, b""
        if at_start:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                pending = data
                continue
            data, at_start = data.removeprefix(_BOM), False
        if data.endswith(b"\r"):
            data, pending = data[:-1], b"\r"
        if b"\r" in data and _has_lone_cr(data):          # CRLF alone: the parsers take it as is
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if data:
            yield data
    if pending:
        yield b"\n" if pending == b"\r" else pending


def _has_lone_cr(data: bytes) -> bool:
    """Whether a ``\\r`` of ``data`` is not followed by ``\\n`` (one at the very end counts: the caller held back
    its last byte, a ``\\r`` too); vectorised."""
    b = np.frombuffer(data, np.uint8)
    cr = np.flatnonzero(b == 13)
    if not len(cr):
        return False
    return bool(cr[-1] == len(b) - 1 or (b[cr + 1] != 10).any())


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
    """An integer written as ASCII digits, or the reason the field is not one. Signs, points, exponents,
    underscores (``2_5``, which Python's ``int`` would take) and other scripts' digits are refused, as
    ``np.loadtxt(dtype=np.uint8)`` refuses them; surrounding blanks are the caller's to strip."""
    shown = text[:24].decode("utf-8", "backslashreplace") + ("..." if len(text) > 24 else "")
    if not text:
        return "empty field"
    if text.isdigit():                                    # bytes.isdigit: ASCII 0-9 only
        return int(text) if len(text) <= 24 else f"{shown!r} out of range"
    try:
        value = float(text)
    except ValueError:
        return f"non-numeric field {shown!r}"
    if not np.isfinite(value):
        return f"{shown!r} is NaN or inf"
    if value != int(value):
        return f"{shown!r} is not an integer"
    if text[:1] == b"-" and text[1:].isdigit():         # -1: the range check names it
        return int(text) if len(text) <= 24 else f"{shown!r} out of range"
    return f"{shown!r} is not written as plain digits"


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


def _without_blank_lines(data: bytes) -> tuple[bytes, int] | None:
    """(the complete lines of ``data`` less its blank ones, the number of lines), or ``None`` when none is blank
    (only blanks: ``bytes.strip`` empties them). Vectorised: blank lines cost linear time, not a Python step each."""
    b = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(b == 10)
    if not len(ends):
        return None
    starts = np.concatenate(([0], ends[:-1] + 1))
    ink = np.logical_or.reduceat(_INK[b], starts)
    if ink.all():
        return None
    return b[np.repeat(ink, np.diff(np.append(starts, len(b))))].tobytes(), len(ends)


def _fast_lines(data: bytes, spec: _CsvSpec) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    """``(x, y, lines)`` of a block of complete lines by ``_fast_block``, blank lines skipped; ``None`` if any line
    is off. Pure, so worker threads run it."""
    fast = _fast_block(data, spec)
    if fast is not None:
        return fast[0], fast[1], len(fast[0])                # no blank line: a line per row
    dense = _without_blank_lines(data)
    if dense is None:
        return None
    kept, n_lines = dense
    if not kept:
        return (np.zeros((0, len(spec.features)), np.uint8),
                None if spec.label is None else np.zeros(0, np.int64), n_lines)
    fast = _fast_block(kept, spec)
    return None if fast is None else (fast[0], fast[1], n_lines)


def _parse_lines(data: bytes, line0: int, spec: _CsvSpec, bad: _BadRows, parts: list) -> int:
    """Append parts (x, y) of complete lines starting at line ``line0`` to ``parts``; return the line count.

    The vectorised path takes the whole block (blank lines skipped); if it finds anything off,
    ``_bisect_lines`` takes over.
    """
    fast = _fast_lines(data, spec)
    if fast is not None:
        parts.append(fast[:2])
        return fast[2]
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
        fast = _fast_lines(block, spec) if future is None else future.result()
        if fast is None:
            lines += _bisect_lines(block, line0 + lines, spec, bad, parts)
        else:
            parts.append(fast[:2])
            lines += fast[2]
        for x, y in parts:
            rows += len(x)
            yield x, y
    return lines, rows


def _csv_parts(path: Path, *, header, label_col, n_classes: int, bad: _BadRows, block_bytes: int | None = None,
               workers: int | None = None, tally: sources.Tally | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Parts (x, y) of a CSV in file order, from blocks of complete lines.

    The first block (so a file of one block starts no thread) and the line completed at the end of the file are
    parsed here; the blocks between go to ``workers`` threads, at most ``2 * workers`` blocks ahead of the
    consumer, and their results are taken in file order, so rows, line numbers and bad-row reports are those of
    a serial parse. ``block_bytes`` and ``workers`` default to ``sources.BLOCK_BYTES`` and ``PARSE_WORKERS``;
    ``workers=0`` parses every block here. The threads are shut down (queued blocks dropped, running ones
    waited for) when the generator ends, raises or is closed.
    """
    block_bytes = sources.BLOCK_BYTES if block_bytes is None else block_bytes
    workers = PARSE_WORKERS if workers is None else workers
    blocks = _text_blocks(_byte_blocks(path, block_bytes, tally))
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
                ink = len(buf) - len(buf.lstrip())                  # leading blank lines, in one step
                cut = buf.rfind(b"\n", 0, ink) + 1
                buf, line0 = buf[cut:], line0 + buf.count(b"\n", 0, cut)
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
                    pending.append((block, pool.submit(_fast_lines, block, spec)))
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
                  block_bytes: int = sources.BLOCK_BYTES) -> tuple[np.ndarray, int]:
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
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "tiny.csv"
    ...     _ = p.write_bytes(b"\\nlabel,a\\n7,0\\n \\r\\n2,255")
    ...     lines, n_fields = csv_row_lines(p)
    >>> lines.tolist(), n_fields
    ([3, 5], 2)
    """
    path = Path(path)
    _check_file(path)
    blocks = _text_blocks(_byte_blocks(path, block_bytes))
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

