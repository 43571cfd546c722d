"""Bad rows: raise a ``DataError`` at the first, or skip them and report them in one ``DataWarning``.

May import the standard library and ``pipelines.chunk``; nothing else of ``pipelines``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pipelines.chunk import DataError, DataWarning

MAX_REPORTED_LINES = 10


class _BadRows:
    """Where ``on_bad_row="skip"`` keeps count; ``report`` turns it into one ``DataWarning``."""

    def __init__(self, path: Path, mode: str) -> None:
        if mode not in ("raise", "skip"):
            raise ValueError(f'on_bad_row must be "raise" or "skip", got {mode!r}')
        self.path, self.mode, self.count, self.lines, self.first = path, mode, 0, [], ""

    def add(self, where: int | str, reason: str) -> None:
        if self.mode == "raise":
            raise DataError(self.path, where, reason)
        if not self.count:
            self.first = f"{where}: {reason}"
        self.count += 1
        if len(self.lines) < MAX_REPORTED_LINES:
            self.lines.append(where)

    def record(self) -> list | None:
        return [self.count, self.lines, self.first] if self.count else None

    def report(self) -> None:
        if self.count:
            warnings.warn(DataWarning(self.path, self.count, tuple(self.lines), self.first), stacklevel=3)

