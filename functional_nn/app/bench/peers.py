"""The optional peers: PyTorch CPU and scikit-learn's ``MLPClassifier``, each one epoch of the same network.

They are comparisons, never dependencies: each factory returns None when its library is not installed (imported
lazily, here only). Imports numpy and the bench's ``configs`` and ``feed``; reads the clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from functional_nn.app.bench.configs import SEED
from functional_nn.app.bench.feed import batch_bounds, epoch_order

Peer = tuple[str, Callable[..., float]]


def init_weights(sizes: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal float32 weights and zero biases, seeded with ``SEED``."""
    rng = np.random.default_rng(SEED)
    return [
        (rng.standard_normal((a, b), dtype=np.float32) * np.float32(math.sqrt(2.0 / a)), np.zeros(b, np.float32))
        for a, b in zip(sizes[:-1], sizes[1:])
    ]


def torch_mlp(torch, weights: Sequence[tuple[np.ndarray, np.ndarray]]):
    """A ``torch.nn.Sequential`` of Linear layers holding ``weights`` (fnn's (in, out) layout), ReLU between them."""
    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def make_torch(config: Mapping, x_u8: np.ndarray, y: np.ndarray, batch_size: int, threads: int) -> Peer | None:
    """PyTorch CPU, same network, weights, batch order and per-batch gather + scale; None when torch is absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    sizes = config["sizes"]
    xt, yt = torch.from_numpy(x_u8), torch.from_numpy(y)
    weights = init_weights(sizes)

    def fresh():
        model = torch_mlp(torch, weights)
        opt_cls = torch.optim.SGD if config["optimizer"] == "sgd" else torch.optim.Adam
        return model, opt_cls(model.parameters(), lr=config["lr"])

    bounds = batch_bounds(len(y), batch_size)
    cross_entropy = torch.nn.functional.cross_entropy

    def run(epoch: int, steps: int | None = None) -> float:
        model, opt = fresh()
        t0 = time.perf_counter()
        order = torch.from_numpy(epoch_order(len(y), epoch))
        xs, ys = xt[order], yt[order]  # one permutation per epoch, then plain slices (as ours)
        for lo, hi in bounds[:steps]:
            xb = xs[lo:hi].float().div_(255.0)
            opt.zero_grad(set_to_none=True)
            loss = cross_entropy(model(xb), ys[lo:hi])
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return f"torch {torch.__version__}", run


def make_sklearn(config: Mapping, x_u8: np.ndarray, y: np.ndarray, batch_size: int) -> Peer | None:
    """scikit-learn ``MLPClassifier``: one epoch of ``partial_fit``; None when scikit-learn is absent."""
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    sizes = config["sizes"]
    x_f32 = x_u8.astype(np.float32) * np.float32(1.0 / 255.0)  # sklearn takes the whole array: scaled untimed
    classes = np.arange(sizes[-1])
    extra = {"momentum": 0.0, "nesterovs_momentum": False} if config["optimizer"] == "sgd" else {}

    def run(epoch: int, steps: int | None = None) -> float:  # partial_fit always runs a whole epoch
        clf = MLPClassifier(
            hidden_layer_sizes=tuple(sizes[1:-1]),
            activation=config["activation"],
            solver=config["optimizer"],
            alpha=0.0,
            batch_size=batch_size,
            learning_rate_init=config["lr"],
            shuffle=True,
            random_state=epoch,
            **extra,
        )
        t0 = time.perf_counter()
        clf.partial_fit(x_f32, y, classes=classes)
        return time.perf_counter() - t0

    return f"scikit-learn {sklearn.__version__}", run
