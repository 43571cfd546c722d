"""The contenders of each configuration, their warm-up, and the alternating timed rounds (data timings included).

Everything of one run happens in ONE process, in alternating rounds (round r: floor, fed, ours, torch, sklearn per
configuration, then the data timings), so that drift of a shared machine hits every contender alike. Reads the
clock and sleeps; imports numpy and the bench's ``configs``, ``data``, ``feed``, ``floor``, ``ours`` and ``peers``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from functional_nn.app.bench.configs import BATCH_SIZE, CONTENDERS, WARMUP_STEPS
from functional_nn.app.bench.data import DATA_TIMINGS, time_reads
from functional_nn.app.bench.feed import epoch_batches_factory
from functional_nn.app.bench.floor import make_floor
from functional_nn.app.bench.ours import make_ours
from functional_nn.app.bench.peers import make_sklearn, make_torch

Runner = Callable[..., float]  # run(epoch, steps=None) -> seconds


def contenders(cfg: Mapping, x_u8: np.ndarray, y: np.ndarray, *, threads: int,
               peers: bool) -> tuple[dict[str, str], dict[str, Runner | None], list[str]]:
    """(what each contender is, its runner or None when skipped, notes on the skipped ones) for one configuration."""
    n = len(y)
    floor = make_floor(cfg["sizes"], n, BATCH_SIZE)
    _, feed = epoch_batches_factory(x_u8, y, BATCH_SIZE)
    impl = {"floor": "np.matmul(out=) x 8 per step",
            "fed": "np.matmul x 8 per step on the real batches, fed and timed as ours"}
    runners: dict[str, Runner | None] = {"floor": lambda epoch, steps=None: floor(steps),
                                         "fed": make_floor(cfg["sizes"], n, BATCH_SIZE, batches=feed)}
    impl["ours"], runners["ours"] = make_ours(cfg, x_u8, y, BATCH_SIZE)
    notes = []
    for name, factory in (("torch", lambda: make_torch(cfg, x_u8, y, BATCH_SIZE, threads)),
                          ("sklearn", lambda: make_sklearn(cfg, x_u8, y, BATCH_SIZE))):
        made = factory() if peers else None
        if made is None:
            reason = "not installed" if peers else "--no-peers"
            notes.append(f"{name} skipped ({reason})")
            impl[name], runners[name] = f"skipped ({reason})", None
        else:
            impl[name], runners[name] = made
    return impl, runners, notes


def warm_up(runners: Mapping[str, Mapping[str, Runner | None]]) -> None:
    """A few untimed steps of every contender but sklearn: thread pools started, lazy initialisation done."""
    for by_name in runners.values():
        for name, run in by_name.items():
            if run is not None and name != "sklearn":
                run(0, WARMUP_STEPS)  # epoch 0: rounds use epochs 1, 2, ...


def alternate(runners: Mapping[str, Mapping[str, Runner | None]], *, rounds: int, settle: float, csv: Path,
              tmp: Path) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """The timed rounds: ({config: {contender: seconds per round}}, {data timing: seconds per round}).

    Each round's first parse writes a fresh cache folder under ``tmp``; ``settle`` seconds of sleep precede each
    timed run so that the previous contender's idle BLAS / OpenMP workers stop spinning.
    """
    samples = {key: {c: [] for c in CONTENDERS} for key in runners}
    data_samples: dict[str, list[float]] = {name: [] for name in DATA_TIMINGS}
    for r in range(rounds):
        for key, by_name in runners.items():
            for name in CONTENDERS:
                run = by_name[name]
                if run is not None:
                    time.sleep(settle)
                    samples[key][name].append(run(r + 1))
        cache = tmp / f"cache{r}"
        cache.mkdir()
        time.sleep(settle)
        for name, seconds in time_reads(csv, cache).items():
            data_samples[name].append(seconds)
    return samples, data_samples
