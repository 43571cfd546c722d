"""An exclusive lock on a run folder, held for as long as a process writes it (``RUN_DIR/.lock``).

As git and SQLite do: a lock file that names its owner. The lock itself is ``fcntl.flock`` on that file, so the
kernel releases it when its process ends however it ends (a SIGKILL leaves no stale lock); the file holds JSON
``{"pid", "host", "started"}`` so that a second writer can say who holds the folder. The file's content is
untrusted: it is only read, bounded, to word that message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from functional_nn.app.settings import UsageError

LOCK_NAME = ".lock"


def _holder(fd: int) -> str:
    """``process PID on HOST`` from a lock file's content, as far as it can be read."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        pid, host = info["pid"], info["host"]
        if isinstance(pid, int) and isinstance(host, str) and len(host) <= 255:
            return f"process {pid} on {host}"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    return "another process"


@contextlib.contextmanager
def run_lock(run_dir: str | Path, flag: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; UsageError naming ``flag`` and the holder's PID when another process
    holds it. The folder must exist."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise UsageError(f"{flag} {run_dir}: cannot create its lock file {path.name}: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{flag} {run_dir}: {path.name} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{flag} {run_dir}: the run folder is in use by {_holder(fd)}") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode() + b"\n")
        try:
            yield
        finally:
            os.ftruncate(fd, 0)             # released: the next holder writes its own name
    finally:
        os.close(fd)                        # closing releases the flock
