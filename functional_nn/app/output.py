"""Where the ``fnn`` commands' lines go: results on stdout (text or JSON lines), notes on stderr, progress bars.

Also the texts that more than one command prints (the Keras-style epoch line, the command that resumes a run).
Imports the standard library (tqdm lazily, only for a bar on a terminal).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

FINAL_EVENTS = frozenset({"test", "diverged", "interrupted"})


class Output:
    """Where the command's lines go: results on stdout (text or JSON lines), notes on stderr."""

    def __init__(self, *, log: str = "text", quiet: bool = False, stdout=None, stderr=None):
        self.log, self.quiet = log, quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def note(self, text: str) -> None:
        """A progress note on stderr (silenced by --quiet)."""
        if not self.quiet:
            print(text, file=self.stderr, flush=True)

    def warn(self, text: str) -> None:
        """A warning on stderr, even with --quiet."""
        print(text, file=self.stderr, flush=True)

    def event(self, kind: str, text: str | None, data: Mapping, *, always: bool = False) -> None:
        """One result: a JSON line with ``"event": kind`` (--log json) or ``text`` (unless --quiet).

        With --quiet only the final events (the test result, a divergence, an interruption) are printed.
        """
        if self.log == "json":
            if self.quiet and not always and kind not in FINAL_EVENTS:
                return
            print(json.dumps({"event": kind, **data}), file=self.stdout, flush=True)
        elif text is not None and (always or not self.quiet):
            print(text, file=self.stdout, flush=True)

    def shows_progress(self) -> bool:
        """True when progress bars are shown: a text log, not --quiet, stderr a terminal."""
        return not self.quiet and self.log == "text" and getattr(self.stderr, "isatty", lambda: False)()

    def progress_bar(self, total: int, initial: int, desc: str):
        """A tqdm bar on stderr when it is a terminal (text log, not quiet); else None."""
        if not self.shows_progress():
            return None
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, desc=desc, file=self.stderr, leave=False,
                    unit="batch", dynamic_ncols=True)


def _fmt_lr(lr: float) -> str:
    return f"{lr:.3g}"


def epoch_line(row: Mapping, epochs: int) -> str:
    """Keras-style epoch summary.

    >>> epoch_line({"epoch": 3, "seconds": 1.23, "loss": 0.0812, "accuracy": 0.97531, "val_loss": 0.0921,
    ...             "val_accuracy": 0.972, "lr": 0.001}, 15)
    'Epoch 3/15 - 1.2s - loss: 0.0812 - acc: 0.9753 - val_loss: 0.0921 - val_acc: 0.9720 - lr: 0.001'
    """
    parts = [f"Epoch {row['epoch']}/{epochs}", f"{row['seconds']:.1f}s", f"loss: {row['loss']:.4f}",
             f"acc: {row['accuracy']:.4f}"]
    if row.get("val_loss") is not None:
        parts += [f"val_loss: {row['val_loss']:.4f}", f"val_acc: {row['val_accuracy']:.4f}"]
    parts.append(f"lr: {_fmt_lr(row['lr'])}")
    return " - ".join(parts)


def resume_command(run_dir: Path) -> str:
    """The command that resumes a run, quoted for a POSIX shell so that it can be pasted as printed.

    >>> resume_command(Path("runs/my run"))
    "fnn train --resume 'runs/my run'"
    """
    return f"fnn train --resume {shlex.quote(str(run_dir))}"


def note(text: str) -> None:
    """A progress note on stderr (dataset downloads and the like)."""
    print(text, file=sys.stderr, flush=True)
