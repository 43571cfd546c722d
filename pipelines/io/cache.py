"""The parse cache: ``.npy`` copies of parsed arrays plus a JSON record of each source's size, mtime and SHA-256.

Holds ``file_sha256`` and ``_atomic_write`` (cache files through :func:`pipelines.io.atomic.atomic_file`).
May import NumPy, the standard library and ``pipelines.chunk``; nothing else of ``pipelines``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from pipelines.chunk import Chunk
from pipelines.io.atomic import atomic_file

CACHE_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB blocks.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "empty"
    ...     _ = p.write_bytes(b"")
    ...     file_sha256(p)[:16]
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


def _stat(path: Path, st: os.stat_result | None = None) -> dict:
    st = path.stat() if st is None else st
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


MAX_RECORD_BYTES = 1 << 20


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _cached_array(path: Path, *, dtype: str, ndim: int) -> np.ndarray | None:
    """A cache ``.npy`` (memory-mapped, read-only) if it is a regular file holding a ``dtype`` array of ``ndim``
    dimensions; None otherwise. Cache files are untrusted: a bad one is parsed again, never believed."""
    if not _regular(path):
        return None
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return a if isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype) and a.ndim == ndim else None


def _cache_load(cache_dir: Path, sources: list[Path], options: dict) -> tuple[Chunk, dict] | None:
    """The cached arrays for ``sources`` parsed with ``options``, or None (no entry, a stale or malformed one)."""
    record_path = cache_dir / f"{sources[0].name}-{_cache_key(sources, options)}.json"
    if not _regular(record_path) or record_path.stat().st_size > MAX_RECORD_BYTES:
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        cached = record["sources"]
        names = [record["x"], record["y"]]
        ok = (record.get("version") == CACHE_VERSION and isinstance(cached, list) and len(cached) == len(sources)
              and all(isinstance(e, dict) and isinstance(e.get("size"), int) and isinstance(e.get("mtime_ns"), int)
                      and isinstance(e.get("sha256"), str) for e in cached)
              and isinstance(names[0], str) and (names[1] is None or isinstance(names[1], str))
              and all(n is None or ("/" not in n and n.endswith(".npy")) for n in names))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if not ok:
        return None
    stale = False
    for source, entry in zip(sources, cached):
        now = _stat(source)
        if (now["size"], now["mtime_ns"]) != (entry["size"], entry["mtime_ns"]):
            if now["size"] != entry["size"] or file_sha256(source) != entry["sha256"]:
                return None  # changed: parse again
            entry.update(now)  # touched or copied, same bytes: keep the arrays, refresh the record
            stale = True
    x = _cached_array(cache_dir / names[0], dtype="uint8", ndim=2)
    y = None if names[1] is None else _cached_array(cache_dir / names[1], dtype="int64", ndim=1)
    if x is None or (names[1] is not None and (y is None or len(y) != len(x))):
        return None
    n_classes = options.get("n_classes")
    if y is not None and len(y) and (int(y.min()) < 0 or (isinstance(n_classes, int) and int(y.max()) >= n_classes)):
        return None
    if stale:
        _atomic_write(record_path, json.dumps(record, indent=1).encode())
    return Chunk(np.asarray(x), None if y is None else np.asarray(y)), record


def _atomic_write(path: Path, data: bytes | None = None, array: np.ndarray | None = None) -> None:
    """Write a cache file atomically, not synced (a cache lost in a crash is parsed again)."""
    with atomic_file(path, fsync=False) as f:
        if array is not None:
            np.save(f, array, allow_pickle=False)
        else:
            f.write(data)


def _cache_store(cache_dir: Path, sources, shas, options, chunk: Chunk, skipped, opened=None) -> None:
    """Store ``chunk`` as the parse of ``sources`` whose bytes hashed to ``shas``; ``opened`` are the sources'
    ``fstat`` when those bytes were read (their size and modification time key the record)."""
    opened = opened or [None] * len(sources)
    key = _cache_key(sources, options)
    stem = f"{sources[0].name}-{key}-{shas[0][:12]}"
    record = {"version": CACHE_VERSION, "x": f"{stem}.x.npy", "y": None if chunk.y is None else f"{stem}.y.npy",
              "sources": [{**_stat(s, st), "sha256": sha} for s, sha, st in zip(sources, shas, opened)],
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

