"""Optimizers as pure ``Optimizer(init, update)`` bundles (the optax ``GradientTransformation`` shape).

``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, new_state)``; the caller then
does ``params = apply_updates(params, updates)``. States are frozen registered attrs records with a ``step``
count (``np.int64``, as optax's ``count``) and their arrays shaped like ``params``; nothing is modified in place
except arrays an update has just allocated. A ``learning_rate`` is a float or a schedule ``step -> float``
(see :mod:`functional_nn.schedules`), evaluated at the state's step before the update (0 first).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import numpy as np

from functional_nn.schedules import Schedule
from functional_nn.tree import register_pytree, tree_leaves, tree_map

__all__ = [
    "AdamState",
    "ChainState",
    "ClipState",
    "MomentumState",
    "Optimizer",
    "RmspropState",
    "SgdState",
    "adam",
    "adamw",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "global_norm",
    "momentum",
    "rmsprop",
    "sgd",
]

Params = Any
OptState = Any


class Optimizer(NamedTuple):
    """Two pure functions: ``init(params) -> state``; ``update(grads, state, params=None) -> (updates, state)``."""

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Params, OptState]]


@register_pytree
@attrs.frozen(eq=False)
class SgdState:
    """State of :func:`sgd`: only the step count."""

    step: np.int64


@register_pytree
@attrs.frozen(eq=False)
class MomentumState:
    """State of :func:`momentum`: step count and velocity (shaped like params)."""

    step: np.int64
    velocity: Params


@register_pytree
@attrs.frozen(eq=False)
class AdamState:
    """State of :func:`adam` and :func:`adamw`: step count, first moment ``mu`` and second moment ``nu``."""

    step: np.int64
    mu: Params
    nu: Params


@register_pytree
@attrs.frozen(eq=False)
class RmspropState:
    """State of :func:`rmsprop`: step count and running mean of squared gradients ``nu``."""

    step: np.int64
    nu: Params


@register_pytree
@attrs.frozen(eq=False)
class ClipState:
    """State of :func:`clip_by_global_norm`: only the step count."""

    step: np.int64


@register_pytree
@attrs.frozen(eq=False)
class ChainState:
    """State of :func:`chain`: step count and the tuple of the chained optimizers' states."""

    step: np.int64
    states: tuple


def _zeros_like(params: Params) -> Params:
    return tree_map(np.zeros_like, params)


def _rate(learning_rate: float | Schedule, step: np.int64) -> float:
    """The learning rate at ``step`` as a Python float (weak under NEP 50: float32 stays float32)."""
    return float(learning_rate(step)) if callable(learning_rate) else float(learning_rate)


# ----------------------------------------------------------------------------------------------- fused steps
# ``make_train_step`` spends most of a step outside the matrix products: ``update`` allocates updates (and new
# moments) with a ``tree_map`` per quantity, then ``apply_updates`` allocates the sums. When the caller has just
# allocated the gradients itself (backprop did), the step can end in those arrays instead. Optimizers that support
# this carry a ``_Fused`` record as an attribute of their ``update`` function (so ``Optimizer`` stays the plain
# ``(init, update)`` pair). Its ``apply`` runs the per-leaf arithmetic of ``update`` + ``apply_updates``: for
# momentum in the same order (bitwise the same result); SGD and Adam also fold a constant into backprop's output
# delta (``grad_scale``), one pass fewer per parameter, same maths to rounding. tests/test_fast_step.py checks both
# against references. Measured by scripts/bench.py: the step then costs its matrix products plus the unavoidable
# elementwise passes (Adam: 11 passes over every parameter, about 0.15 s of a 784-256-128-10 MNIST epoch).


class _Fused(NamedTuple):
    """``apply(grads, state, params, rebuild) -> (new_params, new_state)``: ``update`` then ``apply_updates``.

    ``grads`` is a list of gradient leaves in ``tree_leaves(params)`` order that the caller has just allocated and
    hands over: ``apply`` may write into them (they become the new parameters), never into ``params`` or ``state``.
    ``rebuild(leaves)`` makes a tree shaped like ``params`` from such a list. When ``grad_scale`` is given, the
    caller computes the gradients already multiplied by ``grad_scale(state)`` (backprop folds it into its small
    output delta, which is free): SGD asks for ``-lr`` and is left with one addition per parameter.
    """

    apply: Callable[..., tuple[Params, OptState]]
    grad_scale: Callable[[OptState], float] | None = None


def _with_fused(update: Callable, apply: Callable, grad_scale: Callable | None = None) -> Callable:
    update.fused = _Fused(apply, grad_scale)
    return update


def _add_params_(updates: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``apply_updates`` for one leaf, into ``updates`` (an array the caller owns) when the dtypes agree."""
    if updates.dtype != p.dtype:
        return np.add(p, updates, dtype=p.dtype, casting="same_kind")
    return np.add(p, updates, out=updates)


def sgd(learning_rate: float | Schedule) -> Optimizer:
    """Plain gradient descent: ``updates = -learning_rate * grads``.

    >>> opt = sgd(0.5)
    >>> updates, state = opt.update({"w": np.array([2.0])}, opt.init({"w": np.zeros(1)}))
    >>> updates["w"].tolist(), int(state.step)
    ([-1.0], 1)
    """

    def init(params: Params) -> SgdState:
        return SgdState(step=np.int64(0))

    def update(grads: Params, state: SgdState, params: Params = None) -> tuple[Params, SgdState]:
        factor = -_rate(learning_rate, state.step)
        return tree_map(lambda g: g * factor, grads), SgdState(step=state.step + 1)

    def grad_scale(state: SgdState) -> float:
        return -_rate(learning_rate, state.step)

    def apply(grads: list, state: SgdState, params: Params, rebuild) -> tuple[Params, SgdState]:
        # grads are already -lr * gradient (grad_scale): the update is one addition, into the gradient's array
        new = [_add_params_(g, p) for g, p in zip(grads, tree_leaves(params), strict=True)]
        return rebuild(new), SgdState(step=state.step + 1)

    return Optimizer(init, _with_fused(update, apply, grad_scale))


def momentum(learning_rate: float | Schedule, beta: float = 0.9, *, nesterov: bool = False) -> Optimizer:
    """Heavy-ball momentum: ``v = beta * v + g``; ``updates = -lr * v`` (Nesterov: ``-lr * (g + beta * v)``).

    >>> opt = momentum(1.0, beta=0.5)
    >>> state = opt.init(np.zeros(1))
    >>> u1, state = opt.update(np.ones(1), state)
    >>> u2, state = opt.update(np.ones(1), state)
    >>> u1.tolist(), u2.tolist()
    ([-1.0], [-1.5])
    """
    beta = float(beta)

    def init(params: Params) -> MomentumState:
        return MomentumState(step=np.int64(0), velocity=_zeros_like(params))

    def update(grads: Params, state: MomentumState, params: Params = None) -> tuple[Params, MomentumState]:
        factor = -_rate(learning_rate, state.step)

        def new_velocity(v: np.ndarray, g: np.ndarray) -> np.ndarray:
            out = v * beta
            out += g
            return out

        def step_of(v: np.ndarray, g: np.ndarray) -> np.ndarray:
            if not nesterov:
                return v * factor
            out = v * beta
            out += g
            out *= factor
            return out

        velocity = tree_map(new_velocity, state.velocity, grads)
        updates = tree_map(step_of, velocity, grads)
        return updates, MomentumState(step=state.step + 1, velocity=velocity)

    def apply(grads: list, state: MomentumState, params: Params, rebuild) -> tuple[Params, MomentumState]:
        factor = -_rate(learning_rate, state.step)
        new, velocity = [], []
        for g, p, v in zip(grads, tree_leaves(params), tree_leaves(state.velocity), strict=True):
            v = v * beta
            v += g
            if nesterov:  # step_of's arithmetic, ending in g's array once g is no longer needed
                u = v * beta
                u += g
                u = np.multiply(u, factor, out=g)
            else:
                u = np.multiply(v, factor, out=g)
            new.append(_add_params_(u, p))
            velocity.append(v)
        return rebuild(new), MomentumState(step=state.step + 1, velocity=rebuild(velocity))

    return Optimizer(init, _with_fused(update, apply))


def _adam_mu(m: np.ndarray, g: np.ndarray, b1: float) -> np.ndarray:
    """New first moment ``b1 m + (1 - b1) g`` as ``m + (1 - b1) (g - m)``: three passes, one new array."""
    out = g - m
    out *= 1.0 - b1
    out += m
    return out


def _ema_square(v: np.ndarray, g: np.ndarray, b2: float) -> np.ndarray:
    """New second moment ``b2 v + (1 - b2) g**2`` as ``v + (1 - b2) (g**2 - v)``: four passes, one new array.

    Adam's ``nu`` and RMSprop's ``nu`` (``b2`` = its ``decay``).
    """
    out = np.square(g)
    out -= v
    out *= 1.0 - b2
    out += v
    return out


def _adam_moments(grads, state: AdamState, b1: float, b2: float):
    """New ``mu`` and ``nu`` trees (see :func:`_adam_mu`, :func:`_ema_square`), no temporaries."""
    return (tree_map(lambda m, g: _adam_mu(m, g, b1), state.mu, grads),
            tree_map(lambda v, g: _ema_square(v, g, b2), state.nu, grads))


def _adam_coefficients(t: int, b1: float, b2: float, eps: float, factor: float) -> tuple[float, float]:
    """``(step_size, eps_hat)`` of step ``t`` (1 for the first): direction = ``step_size * mu / (sqrt(nu) + eps_hat)``.

    That is ``factor * mu_hat / (sqrt(nu_hat) + eps)`` with ``bc = 1 - b**t``, computed as
    ``(factor * sqrt(bc2) / bc1) * mu / (sqrt(nu) + eps * sqrt(bc2))``: the same number (multiply top and bottom by
    ``sqrt(bc2)``; Kingma & Ba, section 2) in one pass fewer.
    """
    sqrt_bc2 = math.sqrt(1.0 - b2**t)
    return factor * sqrt_bc2 / (1.0 - b1**t), eps * sqrt_bc2


def _adam_direction_leaf(m: np.ndarray, v: np.ndarray, step_size: float, eps_hat: float, *, out=None):
    """``m / (sqrt(v) + eps_hat) * step_size``, computed in ``out`` (a scratch array to use; else a new one)."""
    out = np.sqrt(v, out=out)
    out += eps_hat
    np.divide(m, out, out=out)
    out *= step_size
    return out


def _adam_direction(mu, nu, t: int, b1: float, b2: float, eps: float, factor: float):
    """``factor * mu_hat / (sqrt(nu_hat) + eps)`` for every leaf (see :func:`_adam_coefficients`)."""
    step_size, eps_hat = _adam_coefficients(t, b1, b2, eps, factor)
    return tree_map(lambda m, v: _adam_direction_leaf(m, v, step_size, eps_hat), mu, nu)


def _adam_fused(learning_rate, b1: float, b2: float, eps: float, weight_decay: float | None) -> _Fused:
    """The fused step of :func:`adam` (``weight_decay`` None) and :func:`adamw`: ``update`` then ``apply_updates``.

    It asks for gradients pre-multiplied by ``1 - b1`` (``g1 = (1 - b1) g``, free in backprop), which saves a pass:
    ``mu = b1 mu + g1`` (two passes, not three) and ``nu = b2 (nu + c g1**2)`` with ``c = (1 - b2) / (b2 (1 - b1)**2)``
    (four passes, as before). Same numbers up to rounding. The direction is then computed in the gradient's array.
    """
    if not (0.0 < b2 and b1 < 1.0):  # the fold needs 1 - b1 > 0 and b2 > 0; otherwise no pre-multiplication
        return _Fused(_adam_apply(learning_rate, b1, b2, eps, weight_decay, folded=False))
    return _Fused(_adam_apply(learning_rate, b1, b2, eps, weight_decay, folded=True), lambda state: 1.0 - b1)


def _adam_apply(learning_rate, b1: float, b2: float, eps: float, weight_decay: float | None, *, folded: bool):
    c = (1.0 - b2) / (b2 * (1.0 - b1) ** 2) if folded else 0.0

    def apply(grads: list, state: AdamState, params: Params, rebuild) -> tuple[Params, AdamState]:
        factor = -_rate(learning_rate, state.step)
        step_size, eps_hat = _adam_coefficients(int(state.step) + 1, b1, b2, eps, factor)
        decay = factor * weight_decay if weight_decay else 0.0
        new, mus, nus = [], [], []
        leaves = zip(grads, tree_leaves(params), tree_leaves(state.mu), tree_leaves(state.nu), strict=True)
        for g, p, m, v in leaves:
            if folded:  # g is (1 - b1) * gradient
                m = m * b1
                m += g
                v_new = np.square(g)
                v_new *= c
                v_new += v
                v_new *= b2
                v = v_new
            else:
                m, v = _adam_mu(m, g, b1), _ema_square(v, g, b2)
            u = _adam_direction_leaf(m, v, step_size, eps_hat, out=g)  # g is no longer needed
            if decay:
                u += p * decay
            new.append(_add_params_(u, p))
            mus.append(m)
            nus.append(v)
        return rebuild(new), AdamState(step=state.step + 1, mu=rebuild(mus), nu=rebuild(nus))

    return apply


def adam(learning_rate: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba): bias-corrected moments, ``updates = -lr * mu_hat / (sqrt(nu_hat) + eps)``.

    >>> opt = adam(0.1)
    >>> updates, state = opt.update(np.array([3.0]), opt.init(np.zeros(1)))
    >>> np.round(updates, 6).tolist()   # first step: -lr * sign(g)
    [-0.1]
    """
    return _adam(learning_rate, float(b1), float(b2), float(eps), None)


def adamw(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> Optimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``updates = -lr * (adam_direction + wd * params)``.

    Decays every parameter leaf (biases too), as optax's default; ``update`` needs ``params``.

    >>> opt = adamw(0.1, weight_decay=0.5)
    >>> p = np.array([2.0])
    >>> updates, _ = opt.update(np.array([3.0]), opt.init(p), p)
    >>> np.round(updates, 6).tolist()   # -0.1 * (1 + 0.5 * 2)
    [-0.2]
    """
    return _adam(learning_rate, float(b1), float(b2), float(eps), float(weight_decay))


def _adam(learning_rate, b1: float, b2: float, eps: float, weight_decay: float | None) -> Optimizer:
    """:func:`adam` (``weight_decay`` None) and :func:`adamw`: one ``init``, one ``update``, one fused step."""

    def init(params: Params) -> AdamState:
        return AdamState(step=np.int64(0), mu=_zeros_like(params), nu=_zeros_like(params))

    def update(grads: Params, state: AdamState, params: Params = None) -> tuple[Params, AdamState]:
        if weight_decay is not None and params is None:
            raise ValueError("adamw: update(grads, state, params) needs params for the weight decay")
        factor = -_rate(learning_rate, state.step)
        mu, nu = _adam_moments(grads, state, b1, b2)
        updates = _adam_direction(mu, nu, int(state.step) + 1, b1, b2, eps, factor)
        if weight_decay is not None:
            decay = factor * weight_decay

            def add_decay(d: np.ndarray, p: np.ndarray) -> np.ndarray:
                return d + p * decay if decay else d

            updates = tree_map(add_decay, updates, params)
        return updates, AdamState(step=state.step + 1, mu=mu, nu=nu)

    update.fused = _adam_fused(learning_rate, b1, b2, eps, weight_decay)
    return Optimizer(init, update)


def rmsprop(learning_rate: float | Schedule, decay: float = 0.9, eps: float = 1e-8) -> Optimizer:
    """RMSprop: ``nu = decay nu + (1 - decay) g**2``; ``updates = -lr * g / (sqrt(nu) + eps)``.

    >>> opt = rmsprop(0.1, decay=0.75)
    >>> updates, state = opt.update(np.array([2.0]), opt.init(np.zeros(1)))
    >>> np.round(updates, 6).tolist()   # nu = 0.25 * 4 = 1
    [-0.2]
    """
    decay, eps = float(decay), float(eps)

    def init(params: Params) -> RmspropState:
        return RmspropState(step=np.int64(0), nu=_zeros_like(params))

    def update(grads: Params, state: RmspropState, params: Params = None) -> tuple[Params, RmspropState]:
        factor = -_rate(learning_rate, state.step)

        def step_of(g: np.ndarray, v: np.ndarray) -> np.ndarray:
            denom = np.sqrt(v)
            denom += eps
            out = g * factor
            out /= denom
            return out

        nu = tree_map(lambda v, g: _ema_square(v, g, decay), state.nu, grads)
        return tree_map(step_of, grads, nu), RmspropState(step=state.step + 1, nu=nu)

    return Optimizer(init, update)


def global_norm(tree: Params) -> float:
    """The L2 norm of all leaves together, as a Python float.

    >>> global_norm((np.array([3.0]), {"b": np.array([4.0])}))
    5.0
    """
    return math.sqrt(sum(float(np.vdot(leaf, leaf)) for leaf in tree_leaves(tree)))


def clip_by_global_norm(max_norm: float) -> Optimizer:
    """Scale the whole gradient tree by ``max_norm / global_norm`` when that norm exceeds ``max_norm``.

    Put it first in a :func:`chain`: ``chain(clip_by_global_norm(1.0), adam(1e-3))``.

    >>> opt = clip_by_global_norm(1.0)
    >>> clipped, _ = opt.update((np.array([3.0]), np.array([4.0])), opt.init(None))
    >>> [np.round(c, 6).tolist() for c in clipped]
    [[0.6], [0.8]]
    """
    max_norm = float(max_norm)
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")

    def init(params: Params) -> ClipState:
        return ClipState(step=np.int64(0))

    def update(grads: Params, state: ClipState, params: Params = None) -> tuple[Params, ClipState]:
        norm = global_norm(grads)
        if norm > max_norm:
            scale = max_norm / norm
            grads = tree_map(lambda g: g * scale, grads)
        return grads, ClipState(step=state.step + 1)

    return Optimizer(init, update)


def chain(*optimizers: Optimizer) -> Optimizer:
    """Compose optimizers left to right: each one's updates are the next one's gradients (optax ``chain``).

    >>> opt = chain(clip_by_global_norm(1.0), sgd(0.5))
    >>> updates, state = opt.update(np.array([10.0]), opt.init(np.zeros(1)))
    >>> updates.tolist(), [int(s.step) for s in state.states]
    ([-0.5], [1, 1])
    """

    def init(params: Params) -> ChainState:
        return ChainState(step=np.int64(0), states=tuple(opt.init(params) for opt in optimizers))

    def update(grads: Params, state: ChainState, params: Params = None) -> tuple[Params, ChainState]:
        if len(state.states) != len(optimizers):
            raise ValueError(f"chain: {len(optimizers)} optimizers but {len(state.states)} states")
        new_states = []
        for opt, sub_state in zip(optimizers, state.states):
            grads, sub_state = opt.update(grads, sub_state, params)
            new_states.append(sub_state)
        return grads, ChainState(step=state.step + 1, states=tuple(new_states))

    return Optimizer(init, update)


def apply_updates(params: Params, updates: Params) -> Params:
    """``params + updates``, leaf by leaf, cast back to each parameter's dtype (as optax).

    Raises:
        ValueError: if the two trees differ in structure (naming where).

    >>> apply_updates({"w": np.ones(2, np.float32)}, {"w": np.array([0.5, -1.0])})["w"].tolist()
    [1.5, 0.0]
    """

    def add(p: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.add(p, u, dtype=p.dtype, casting="same_kind")

    return tree_map(add, params, updates)
