"""Preflight: the memory a training configuration needs, checked against what the machine has before allocating.

``fnn train --hidden 3000000`` would otherwise be found out by the kernel's OOM killer after minutes (or by a
``MemoryError`` traceback). :func:`training_bytes` estimates the peak of one run from its settings alone, and
:func:`check_training_memory` refuses, in one line naming the flag that dominates, a run that needs more than
:func:`available_bytes` reports. The estimate counts what the training loop holds at once:

- the parameters, their gradients and the update (3 copies), the optimizer's slots (``SLOTS``: 1 for momentum,
  nesterov and RMSProp, 2 for Adam and AdamW), the best-so-far copy when a validation split is kept, and one
  copy in flight while a checkpoint is written;
- the activations of one batch: for every layer its pre-activation, activation and gradient (3 floats per unit
  per row), dropout masks included, and as much again for the evaluation batches (``data.EVAL_BATCH`` rows);
- the data is already in memory when this runs (it has been parsed), so it is part of what is no longer available.

Available memory is the smallest of ``MemAvailable`` in ``/proc/meminfo`` and the cgroup's limit less its usage
(v2 ``memory.max`` / ``memory.current``, v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``); where none of
them can be read, nothing is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

from functional_nn.app.settings import UsageError, flag_name

SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
HEADROOM = 0.9           # refuse above this share of the available memory (the interpreter and BLAS need some)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None          # "max" (no limit) and anything odd: unknown


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    except (OSError, UnicodeDecodeError):
        return None
    return None


def available_bytes() -> int | None:
    """Memory this process can still allocate (bytes), or None when the system does not say."""
    candidates = [_meminfo_available()]
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:            # v1 says "no limit" with a huge value
            candidates.append(max(cap - used, 0))
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def parameter_count(sizes: Sequence[int]) -> int:
    """Weights and biases of an MLP with layer widths ``sizes`` (inputs first).

    >>> parameter_count([784, 128, 64, 10])
    109386
    """
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def training_bytes(settings: Mapping, sizes: Sequence[int], *, rows: int, eval_batch: int) -> tuple[int, int]:
    """(bytes of the parameter-sized arrays, bytes of one batch's activations) for a training run on ``rows``
    training rows (a batch is at most that many) evaluated ``eval_batch`` rows at a time.

    >>> from functional_nn.app.settings import DEFAULTS
    >>> params, acts = training_bytes(DEFAULTS, [784, 128, 64, 10], rows=54000, eval_batch=1000)
    >>> params, acts
    (3062808, 14860992)
    """
    itemsize = 8 if settings["dtype"] == "float64" else 4
    copies = 3 + SLOTS.get(settings["optimizer"], 2) + 1 + (1 if settings["validation_fraction"] > 0 else 0)
    units = sum(sizes)
    activations = 3 * units * itemsize * (min(settings["batch_size"], rows) + eval_batch)
    return copies * parameter_count(sizes) * itemsize, activations


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def check_training_memory(settings: Mapping, sizes: Sequence[int], sources: Mapping, *, rows: int, eval_batch: int,
                          available: int | None = None) -> None:
    """UsageError (one line naming ``--hidden`` or ``--batch-size``, whichever needs more) when the run would need
    more than ``HEADROOM`` of the available memory; ``available`` defaults to :func:`available_bytes`."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    params, activations = training_bytes(settings, sizes, rows=rows, eval_batch=eval_batch)
    need = params + activations
    if need <= HEADROOM * available:
        return
    key = "hidden" if params >= activations else "batch_size"
    flag = sources.get(key, flag_name(key))
    value = ",".join(map(str, sizes[1:-1])) if key == "hidden" else settings["batch_size"]
    raise UsageError(f"{flag} {value}: the run needs about {_gb(need)} (parameters, gradients and "
                     f"{settings['optimizer']} state {_gb(params)}, one batch's activations {_gb(activations)}), "
                     f"more than the {_gb(available)} this machine has available; choose a smaller {flag_name(key)}")

