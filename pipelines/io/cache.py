"""The parse cache: ``.npy`` copies of parsed arrays plus a JSON record of each source's size, mtime and SHA-256.

Holds ``file_sha256`` and ``_atomic_write`` (cache files through :func:`pipelines.io.atomic.atomic_file`).
May import NumPy, the standard library and ``pipelines.chunk``; nothing else of ``pipelines``.
"""

from __future__ import annotations

import hashlib
import json
import os
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
    """Write a cache file atomically, not synced (a cache lost in a crash is parsed again)."""
    with atomic_file(path, fsync=False) as f:
        if array is not None:
            np.save(f, array, allow_pickle=False)
        else:
            f.write(data)


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

