"""The record every stage passes around: ``Chunk(x, y)``, plus the pipeline's error and warning types."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs
import numpy as np

__all__ = ["Chunk", "DataError", "DataWarning", "concat_chunks"]


def readonly(a: np.ndarray | None) -> np.ndarray | None:
    """A read-only view of ``a`` (``None`` passes through): blocks in-place writes into a record's arrays."""
    if a is None:
        return None
    view = np.asarray(a).view()
    view.flags.writeable = False
    return view


def _check_x(instance: Chunk, attribute: attrs.Attribute, x: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"Chunk.x must be 2-D (rows, features), got shape {x.shape}")


def _check_y(instance: Chunk, attribute: attrs.Attribute, y: np.ndarray | None) -> None:
    if y is not None and (y.ndim != 1 or len(y) != len(instance.x)):
        raise ValueError(f"Chunk.y must be 1-D with {len(instance.x)} rows, got shape {y.shape}")


@attrs.frozen(eq=False)
class Chunk:
    """A block of rows: ``x`` (n, n_features) and ``y`` int64 (n,) or ``None`` (a file without labels).

    ``x`` is uint8 as read from a file and float32 after ``scale`` or ``standardize``. Both arrays are
    read-only views. ``len(chunk)`` is the number of rows.

    >>> c = Chunk(np.zeros((3, 2), np.uint8), np.arange(3))
    >>> len(c), c.x.shape, c.y.tolist(), c.x.flags.writeable
    (3, (3, 2), [0, 1, 2], False)
    """

    x: np.ndarray = attrs.field(converter=readonly, validator=_check_x)
    y: np.ndarray | None = attrs.field(default=None, converter=readonly, validator=_check_y)

    def __len__(self) -> int:
        return len(self.x)


def concat_chunks(chunks: Iterable[Chunk]) -> Chunk:
    """Gather a whole stream into one ``Chunk`` (consumes it); an empty stream raises ``ValueError``.

    >>> c = concat_chunks([Chunk(np.zeros((2, 1)), np.arange(2)), Chunk(np.ones((1, 1)), np.arange(1))])
    >>> c.x.ravel().tolist(), c.y.tolist()
    ([0.0, 0.0, 1.0], [0, 1, 0])
    """
    parts = list(chunks)
    if not parts:
        raise ValueError("concat_chunks: the stream is empty")
    if len(parts) == 1:
        return parts[0]
    has_y = {c.y is not None for c in parts}
    if len(has_y) > 1:
        raise ValueError("concat_chunks: some chunks have labels and some do not")
    y = np.concatenate([c.y for c in parts]) if has_y == {True} else None
    return Chunk(np.concatenate([c.x for c in parts]), y)


def recut(chunks: Iterable[Chunk], rows: int, *, drop_remainder: bool = False) -> Iterator[Chunk]:
    """Re-cut a stream into chunks of exactly ``rows`` rows (the last may be short); slices, never row loops."""
    if rows <= 0:
        raise ValueError(f"batch size must be positive, got {rows}")
    pending: list[Chunk] = []
    n_pending = 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if n_pending:
            pending.append(chunk)
            n_pending += len(chunk)
            if n_pending < rows:
                continue
            chunk = concat_chunks(pending)
            pending, n_pending = [], 0
        n_full = len(chunk) - len(chunk) % rows
        for start in range(0, n_full, rows):
            yield _rows(chunk, start, start + rows)
        if n_full < len(chunk):
            pending, n_pending = [_rows(chunk, n_full, len(chunk))], len(chunk) - n_full
    if n_pending and not drop_remainder:
        yield concat_chunks(pending)


def _rows(chunk: Chunk, start: int, stop: int) -> Chunk:
    return Chunk(chunk.x[start:stop], None if chunk.y is None else chunk.y[start:stop])


class DataError(ValueError):
    """A bad data file. ``str(err)`` starts with ``path:line:`` (CSV; line 0 = the file as a whole) or
    ``path: field:`` (IDX header fields, ``item N`` for a 0-based record), then says what is wrong.

    >>> str(DataError("a.csv", 3, "expected 785 columns, got 784"))
    'a.csv:3: expected 785 columns, got 784'
    >>> str(DataError("x-idx3-ubyte", "magic", "expected 0x00000803, got 0x00000801"))
    'x-idx3-ubyte: magic: expected 0x00000803, got 0x00000801'
    """

    def __init__(self, path: object, where: int | str, reason: str) -> None:
        self.path, self.where, self.reason = str(path), where, reason
        location = f"{path}:{where}:" if isinstance(where, int) else f"{path}: {where}:"
        super().__init__(f"{location} {reason}")

    @property
    def line(self) -> int | None:
        """The 1-based line number (CSV), or ``None`` for an IDX field."""
        return self.where if isinstance(self.where, int) else None

    def __reduce__(self):  # keep it picklable (multiprocessing) despite the custom __init__
        return type(self), (self.path, self.where, self.reason)


class DataWarning(UserWarning):
    """Rows skipped with ``on_bad_row="skip"``: ``n_skipped``, the first ``lines`` and ``path`` are attributes."""

    def __init__(self, path: object, n_skipped: int, lines: tuple, first_reason: str) -> None:
        self.path, self.n_skipped, self.lines = str(path), n_skipped, tuple(lines)
        shown = ", ".join(str(n) for n in self.lines)
        more = ", ..." if n_skipped > len(self.lines) else ""
        super().__init__(f"{path}: skipped {n_skipped} bad row(s) (lines {shown}{more}); first: {first_reason}")
