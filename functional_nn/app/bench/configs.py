"""The benchmark's fixed choices: the two measured configurations, batch size, seed, rounds' pacing.

Constants only (ALL_CAPS, immutable); imports nothing, so every other bench module may import it.
"""

from __future__ import annotations

from types import MappingProxyType

BATCH_SIZE = 128
SEED = 0
CONFIGS = MappingProxyType({
    "a": MappingProxyType({"sizes": (784, 128, 64, 10), "activation": "relu", "optimizer": "sgd", "lr": 0.1}),
    "b": MappingProxyType({"sizes": (784, 256, 128, 10), "activation": "relu", "optimizer": "adam", "lr": 1e-3}),
})
CONTENDERS = ("floor", "fed", "ours", "torch", "sklearn")
WARMUP_STEPS = 20
# Before each timed run: let the previous contender's idle worker threads stop spinning (OpenBLAS spins ~0.1 s
# after its last call, OpenMP briefly), so that they do not take a core from the next one.
SETTLE_SECONDS = 0.15
QUICK_ROWS = 512  # synthetic rows for --quick when no fixture CSV exists (always so from a wheel)
