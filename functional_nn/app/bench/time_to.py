"""Time to an accuracy: PyTorch CPU trains ``fnn train``'s default configuration until its test accuracy reaches a
target, for ``bench --time-to ACC`` to print beside the wall time of the whole ``fnn train`` command.

The same network (784-256-128-10 with the defaults; read from the resolved settings), the same He initialization
scheme, Adam with fnn's own learning-rate schedule per step (``make_schedule``), the same batch size and a 90%
training split; the test set is evaluated after each epoch (not timed). Reported: the training seconds up
to the first epoch that reaches the target. None when torch is absent. Imports numpy; torch lazily.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from functional_nn.app.bench.peers import init_weights, torch_mlp
from functional_nn.app.optimizer import make_schedule


def torch_time_to(target: float, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                  settings: Mapping, *, threads: int, seed: int = 0) -> dict[str, Any] | None:
    """PyTorch trains ``settings`` (fnn's resolved defaults) on ``train`` (uint8 pixels, labels) epoch by epoch
    until the accuracy on ``test`` reaches ``target`` or the epochs run out."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x, y = train
    n_val = int(round(len(y) * settings["validation_fraction"]))
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order[n_val:]], y[order[n_val:]]                        # a 90% training split, as fnn's
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    xs_test = torch.from_numpy(test[0]).float().div_(255.0)
    ys_test = torch.from_numpy(test[1].astype(np.int64))
    sizes = (x.shape[1], *settings["hidden"], 10)
    model = torch_mlp(torch, init_weights(sizes))
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]))
    bs, epochs = settings["batch_size"], settings["epochs"]
    steps_per_epoch = -(-len(y) // bs)
    schedule = make_schedule(settings, steps_per_epoch)              # fnn's own: the very same learning rates
    rng = np.random.default_rng(seed + 1)
    seconds, step, history = 0.0, 0, []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(len(y)))
        xs, ys = xt[perm], yt[perm]
        model.train()
        for lo in range(0, len(y), bs):
            for group in opt.param_groups:
                group["lr"] = float(schedule(step))
            xb = xs[lo:lo + bs].float().div_(255.0)
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xb), ys[lo:lo + bs]).backward()
            opt.step()
            step += 1
        seconds += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            accuracy = float((model(xs_test).argmax(1) == ys_test).float().mean())
        history.append({"epoch": epoch, "train_seconds": round(seconds, 3), "test_accuracy": accuracy})
        if accuracy >= target:
            break
    reached = history[-1]["test_accuracy"] >= target
    return {"impl": f"torch {torch.__version__}", "target": target, "reached": reached,
            "epochs": len(history), "train_seconds": seconds, "history": history}


__all__ = ["torch_time_to"]
