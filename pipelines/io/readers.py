"""The public readers: ``read_chunks`` (a stream) and ``read_arrays`` (the whole file, optionally cached).

They pick the CSV or IDX parser by file name, count bad rows, recut parts into ``Chunk``s and consult the cache.
May import NumPy, the standard library, ``pipelines.chunk`` and every module of ``pipelines.io`` but ``writers``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.chunk import Chunk, DataError, DataWarning, recut
from pipelines.io.bad_rows import _BadRows
from pipelines.io.cache import _cache_load, _cache_store
from pipelines.io.csv_format import _csv_parts
from pipelines.io.idx_format import _idx_parts, _is_idx, find_labels_file
from pipelines.io.sources import Tally, _check_file

FRESH_SECONDS = 2.0   # a source modified this recently is not cached: a write in the same clock tick could
                      # leave its size and modification time unchanged

def _parts(path: Path, *, label_col, header, n_classes, bad, labels_path, chunk_rows, tallies=None):
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
        return _idx_parts(path, labels_path, n_classes=n_classes, bad=bad, chunk_rows=chunk_rows, tallies=tallies)
    return _csv_parts(path, header=header, label_col=label_col, n_classes=n_classes, bad=bad,
                      tally=None if tallies is None else tallies[0])


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
        blocks ahead by ``csv_format.PARSE_WORKERS`` threads, which end with the iterator (exhausted, raising or
        closed).

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "tiny.csv"
    ...     _ = p.write_bytes(b"label,a,b\\r\\n3,0,255\\r\\n1,7,8\\r\\n2,9,10\\r\\n")
    ...     [(c.x.tolist(), c.y.tolist()) for c in read_chunks(p, chunk_rows=2)]
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


def _read_whole(path: Path, *, label_col, header, n_classes, on_bad_row, labels_path,
                tallies=None) -> tuple[Chunk, _BadRows]:
    bad = _BadRows(path, on_bad_row)
    xs, ys = [], []
    for x, y in _parts(path, label_col=label_col, header=header, n_classes=n_classes, bad=bad,
                       labels_path=labels_path, chunk_rows=1 << 30, tallies=tallies):
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
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "tiny.csv"
    ...     _ = p.write_bytes(b"3,0,255\\n1,7,8\\n")
    ...     c = read_arrays(p, cache_dir=p.parent / "cache")
    ...     c.x.tolist(), c.y.tolist(), read_arrays(p, cache_dir=p.parent / "cache").y.tolist()
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
    tallies = [Tally() for _ in sources]          # each source hashed from the very bytes the parser reads
    chunk, bad = _read_whole(path, labels_path=labels_path, tallies=tallies, **options)
    shas = [_verified_digest(source, tally) for source, tally in zip(sources, tallies)]
    bad.report()
    if cache_dir is not None and all(time.time() - tally.opened.st_mtime >= FRESH_SECONDS for tally in tallies):
        _cache_store(Path(cache_dir), sources, shas, options, chunk, bad.record(), [t.opened for t in tallies])
    return chunk, {s.name: sha for s, sha in zip(sources, shas)}


def _verified_digest(path: Path, tally: Tally) -> str:
    """The SHA-256 of the bytes parsed from ``path``, after checking that they were the whole file and that the
    file did not change while it was read (its size, modification time and inode as when it was opened)."""
    try:
        now = os.stat(path)
    except OSError as exc:
        raise DataError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    opened = tally.opened
    same = (opened is not None and tally.n_bytes == opened.st_size
            and (now.st_size, now.st_mtime_ns, now.st_ino) == (opened.st_size, opened.st_mtime_ns, opened.st_ino))
    if not same:
        raise DataError(path, 0, "the file changed while it was being read; read it again when it is complete")
    return tally.digest.hexdigest()


def _report_cached(path: Path, record: dict) -> None:
    if record.get("skipped"):
        count, lines, first = record["skipped"]
        warnings.warn(DataWarning(path, count, tuple(lines), first), stacklevel=3)

