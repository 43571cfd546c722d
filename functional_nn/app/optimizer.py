"""The optimizer and learning-rate schedule that a run's settings describe (``--optimizer``, ``--lr-schedule``...).

Pure: settings in, a core :class:`~functional_nn.optim.Optimizer` out. Imports the core only.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import functional_nn as fnn


def make_schedule(settings: Mapping, steps_per_epoch: int):
    """The learning rate as a function of the optimizer step (linear warm-up, then the schedule)."""
    lr = float(settings["lr"])
    total = settings["epochs"] * steps_per_epoch
    warmup = int(round(settings["warmup_epochs"] * steps_per_epoch))
    kind = settings["lr_schedule"]
    if kind == "cosine":
        return fnn.warmup_cosine(lr, warmup_steps=warmup, decay_steps=max(total, warmup + 1))
    if kind == "constant":
        base = fnn.constant(lr)
    elif kind == "step":                         # x0.1 after each third of the run
        base = fnn.step_decay(lr, step_size=max(1, -(-total // 3)), gamma=0.1)
    else:                                        # exponential: down to 1% of lr at the end
        base = fnn.exponential_decay(lr, decay_rate=0.01, transition_steps=max(1, total))
    if warmup == 0:
        return base
    return partial(_warmed_up, base=base, warmup=warmup)


def _warmed_up(step, *, base, warmup):
    return base(step) * min(1.0, (int(step) + 1) / warmup)


def make_optimizer(settings: Mapping, schedule):
    """The optimizer named by the settings, clipped first when ``clip_norm`` is set."""
    name = settings["optimizer"]
    if name == "sgd":
        opt = fnn.sgd(schedule)
    elif name in ("momentum", "nesterov"):
        opt = fnn.momentum(schedule, beta=settings["momentum"], nesterov=name == "nesterov")
    elif name == "adam":
        opt = fnn.adam(schedule, b1=settings["beta1"], b2=settings["beta2"])
    elif name == "adamw":
        opt = fnn.adamw(schedule, b1=settings["beta1"], b2=settings["beta2"], weight_decay=settings["weight_decay"])
    else:
        opt = fnn.rmsprop(schedule)
    if settings["clip_norm"] is not None:
        opt = fnn.chain(fnn.clip_by_global_norm(settings["clip_norm"]), opt)
    return opt
