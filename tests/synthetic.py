"""Synthetic MNIST-shaped CSV files for end-to-end tests: learnable, small, written in a few milliseconds."""

import numpy as np


def synthetic_digits(n, seed):
    """(x uint8 (n, 784), y int (n,)): each class is a fixed sparse stroke pattern plus noise."""
    templates = (np.random.default_rng(1234).random((10, 784)) < 0.15) * 200
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = np.clip(templates[y] + rng.integers(0, 60, (n, 784)), 0, 255).astype(np.uint8)
    return x, y


def write_digits(path, n, seed):
    """Write ``n`` rows ``label,784 pixels`` (headerless CSV) to ``path``: ten fixed random templates plus noise."""
    x, y = synthetic_digits(n, seed)
    np.savetxt(path, np.column_stack([y, x]), fmt="%d", delimiter=",")
    return path
