"""Learning-rate schedules: pure functions of the step count (0 for the first update), returning Python floats.

Python floats keep float32 arithmetic float32 under NEP 50 (a NumPy float64 scalar would promote it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Schedule", "constant", "exponential_decay", "step_decay", "warmup_cosine"]

Schedule = Callable[[int], float]


def constant(value: float) -> Schedule:
    """The same learning rate at every step.

    >>> constant(0.1)(1000)
    0.1
    """
    value = float(value)

    def schedule(step: int) -> float:
        return value

    return schedule


def step_decay(init_value: float, *, step_size: int, gamma: float = 0.1) -> Schedule:
    """``init_value * gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size`` steps.

    >>> s = step_decay(1.0, step_size=10, gamma=0.5)
    >>> [s(0), s(9), s(10), s(25)]
    [1.0, 1.0, 0.5, 0.25]
    """
    if step_size < 1:
        raise ValueError(f"step_size must be positive, got {step_size}")
    init_value, gamma, step_size = float(init_value), float(gamma), int(step_size)

    def schedule(step: int) -> float:
        return init_value * gamma ** (int(step) // step_size)

    return schedule


def exponential_decay(init_value: float, *, decay_rate: float, transition_steps: int) -> Schedule:
    """``init_value * decay_rate ** (step / transition_steps)`` (smooth, as optax's default ``staircase=False``).

    >>> s = exponential_decay(1.0, decay_rate=0.5, transition_steps=100)
    >>> [s(0), s(100), round(s(50), 6)]
    [1.0, 0.5, 0.707107]
    """
    if transition_steps < 1:
        raise ValueError(f"transition_steps must be positive, got {transition_steps}")
    init_value, decay_rate, transition_steps = float(init_value), float(decay_rate), int(transition_steps)

    def schedule(step: int) -> float:
        return init_value * decay_rate ** (int(step) / transition_steps)

    return schedule


def warmup_cosine(
    peak_value: float, *, warmup_steps: int, decay_steps: int, init_value: float = 0.0, end_value: float = 0.0
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    As optax's ``warmup_cosine_decay_schedule``, ``decay_steps`` is the whole schedule's length *including* the
    warm-up: the cosine runs over steps ``warmup_steps .. decay_steps``; after that the rate stays ``end_value``.

    >>> s = warmup_cosine(1.0, warmup_steps=10, decay_steps=110, init_value=0.0, end_value=0.1)
    >>> [s(0), s(5), s(10), round(s(60), 6), s(110), s(500)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    """
    if warmup_steps < 0 or decay_steps < warmup_steps:
        raise ValueError(f"need 0 <= warmup_steps <= decay_steps, got {warmup_steps} and {decay_steps}")
    peak_value, init_value, end_value = float(peak_value), float(init_value), float(end_value)
    warmup_steps, decay_steps = int(warmup_steps), int(decay_steps)
    cosine_steps = decay_steps - warmup_steps

    def schedule(step: int) -> float:
        step = int(step)
        if step < warmup_steps:
            return init_value + (peak_value - init_value) * step / warmup_steps
        if step >= decay_steps:
            return end_value
        progress = (step - warmup_steps) / cosine_steps
        return end_value + (peak_value - end_value) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule
