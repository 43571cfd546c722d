"""Atomic file writes: the one home of "temporary file beside the target, then rename" in ``pipelines`` and the app.

A reader never sees a half-written file: the content goes to a temporary file in the target's folder, which is
renamed over the target only when the write has finished (the core's model files do the same in
:mod:`functional_nn.checkpoint`, which may not import this package). Imports only the standard library.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write_bytes"]


@contextmanager
def atomic_file(path: str | os.PathLike, *, suffix: str = ".tmp", fsync: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: it replaces ``path`` (mode 0o644) when the block ends normally.

    On any exception in the block (a failed check included) the temporary file ``.NAME.*SUFFIX`` is removed and
    ``path`` is left as it was. ``fsync`` forces the bytes to disk before the rename (skip it for caches that
    can be rebuilt).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_file(Path(d) / "a.txt") as f:
    ...         _ = f.write(b"done")
    ...     sorted(p.name for p in Path(d).iterdir()), (Path(d) / "a.txt").read_bytes()
    (['a.txt'], b'done')
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as e:
        raise OSError(e.errno, f"cannot write: {e.strerror or e}", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp files are private (0o600)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:    # a full disk: name the file it could not write
            raise OSError(e.errno, f"cannot write: {e.strerror or e}", str(path)) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`), synced to disk."""
    with atomic_file(path) as f:
        f.write(data)
