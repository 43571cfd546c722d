"""Statistics fitted once, outside the stream: ``fit_standardizer`` -> ``Standardizer(mean, std)``."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import numpy as np

from pipelines.chunk import Chunk, readonly

__all__ = ["Standardizer", "fit_standardizer"]


@attrs.frozen(eq=False)
class Standardizer:
    """Per-feature ``mean`` and ``std`` (float32, read-only) for ``stages.standardize``.

    ``to_dict``/``from_dict`` give a JSON-ready form (for checkpoint metadata).

    >>> s = Standardizer.from_dict({"mean": [1.0], "std": [2.0]})
    >>> s.to_dict()
    {'mean': [1.0], 'std': [2.0]}
    """

    mean: np.ndarray = attrs.field(converter=lambda a: readonly(np.asarray(a, np.float32)))
    std: np.ndarray = attrs.field(converter=lambda a: readonly(np.asarray(a, np.float32)))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        return cls(d["mean"], d["std"])


def fit_standardizer(data: Chunk | np.ndarray | Iterable[Chunk], *, min_std: float = 1e-6) -> Standardizer:
    """Per-feature mean and std of ``x`` over an array, a ``Chunk`` or a whole stream of chunks (one pass).

    Accumulates in float64 (Chan et al.'s pairwise merge of chunk means and squared deviations). A feature
    whose std is below ``min_std`` (e.g. MNIST's always-black border) gets std 1, so it maps to 0, not NaN.

    >>> s = fit_standardizer(np.array([[0, 5], [2, 5]], np.uint8))
    >>> s.mean.tolist(), s.std.tolist()
    ([1.0, 5.0], [1.0, 1.0])
    """
    if isinstance(data, np.ndarray):
        data = [Chunk(data.reshape(len(data), -1))]
    elif isinstance(data, Chunk):
        data = [data]
    n, mean, m2 = 0, None, None
    for chunk in data:
        x = chunk.x.astype(np.float64)
        k = len(x)
        if k == 0:
            continue
        mean_k = x.mean(axis=0)
        m2_k = ((x - mean_k) ** 2).sum(axis=0)
        if mean is None:
            n, mean, m2 = k, mean_k, m2_k
            continue
        delta = mean_k - mean
        total = n + k
        mean = mean + delta * (k / total)
        m2 = m2 + m2_k + delta**2 * (n * k / total)
        n = total
    if mean is None:
        raise ValueError("fit_standardizer: no rows")
    std = np.sqrt(m2 / n)
    return Standardizer(mean, np.where(std < min_std, 1.0, std))
