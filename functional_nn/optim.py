"""Optimizers as pure ``Optimizer(init, update)`` bundles (the optax ``GradientTransformation`` shape).

``sgd``, ``momentum``, ``adam``, ``adamw`` and ``rmsprop`` return a :class:`FusedOptimizer`: the same pair, plus a
fast path that :func:`~functional_nn.train.train_step` takes (their arithmetic is written once, as a
:class:`~functional_nn.fused.LeafRule`); ``clip_by_global_norm`` and ``chain`` are plain ones.

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

from functional_nn.fused import LeafRule
from functional_nn.schedules import Schedule
from functional_nn.tree import register_pytree, tree_leaves, tree_map

__all__ = [
    "AdamState",
    "ChainState",
    "ClipState",
    "FusedOptimizer",
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


class FusedOptimizer(Optimizer):
    """An :class:`Optimizer` whose step can also end inside the gradient buffers it is handed (the fast path).

    It is still the plain pair ``(init, update)`` that :func:`chain`, :func:`apply_updates` and user code rely on
    (optax extends ``GradientTransformation`` the same way); ``update`` is a :class:`~functional_nn.fused.LeafRule`,
    the optimizer's arithmetic written once, and the type adds what :func:`~functional_nn.train.train_step` uses:

    - ``grad_scale(state)``: the factor the caller multiplies the gradients by before handing them over (backprop
      folds it into its small output delta, which is free): SGD asks for ``-lr``, Adam for ``1 - b1``; else 1.
    - ``fused_step(grads, state, params, rebuild) -> (new_params, new_state)``: ``update`` + ``apply_updates``.

    Buffer ownership: ``grads`` is a list of gradient leaves in ``tree_leaves(params)`` order that the caller has
    just allocated, that nobody else has seen, and that the caller hands over and never reads again:
    ``fused_step`` overwrites them and returns them as the new parameters. It never writes into ``params``,
    ``state`` or any array it did not receive that way; the composed ``update`` writes into nothing passed in.
    """

    __slots__ = ()

    def grad_scale(self, state: OptState) -> float:
        """The factor ``fused_step`` expects the gradients to be multiplied by (1.0 when none)."""
        scale = self.update.grad_scale
        return 1.0 if scale is None else scale(state)

    def fused_step(self, grads: list, state: OptState, params: Params, rebuild) -> tuple[Params, OptState]:
        """``update`` then ``apply_updates``, ending in ``grads`` (see the class docstring for who owns what)."""
        return self.update.fused_step(grads, state, params, rebuild)


def _zeros_like(params: Params) -> Params:
    return tree_map(np.zeros_like, params)


def _rate(learning_rate: float | Schedule, step: np.int64) -> float:
    """The learning rate at ``step`` as a Python float (weak under NEP 50: float32 stays float32)."""
    return float(learning_rate(step)) if callable(learning_rate) else float(learning_rate)


def _descent(learning_rate: float | Schedule) -> Callable[[OptState], tuple[float]]:
    """``state -> (-learning_rate at the state's step,)``: the coefficients of a rule that only needs the rate."""
    return lambda state: (-_rate(learning_rate, state.step),)


# Each optimizer below is a LeafRule: its arithmetic is one `leaf` function, run by the composed `update` on a copy of
# the gradients and by the fused step on backprop's own fresh gradient arrays (functional_nn.fused). The in-place
# operations are on `g` (the rule's to overwrite) or on arrays the leaf has just allocated.


def sgd(learning_rate: float | Schedule) -> FusedOptimizer:
    """Plain gradient descent: ``updates = -learning_rate * grads``.

    >>> opt = sgd(0.5)
    >>> updates, state = opt.update({"w": np.array([2.0])}, opt.init({"w": np.zeros(1)}))
    >>> updates["w"].tolist(), int(state.step)
    ([-1.0], 1)
    """
    coefficients = _descent(learning_rate)

    def leaf(g, p, moments, coefs, scaled):
        (factor,) = coefs
        return (g if scaled else np.multiply(g, factor, out=g)), ()   # scaled: g is already -lr * gradient

    rule = LeafRule(coefficients, leaf, next_state=lambda state, moments: SgdState(step=state.step + 1),
                    grad_scale=lambda state: -_rate(learning_rate, state.step), name="sgd")
    return FusedOptimizer(lambda params: SgdState(step=np.int64(0)), rule)


def momentum(learning_rate: float | Schedule, beta: float = 0.9, *, nesterov: bool = False) -> FusedOptimizer:
    """Heavy-ball momentum: ``v = beta * v + g``; ``updates = -lr * v`` (Nesterov: ``-lr * (g + beta * v)``).

    >>> opt = momentum(1.0, beta=0.5)
    >>> state = opt.init(np.zeros(1))
    >>> u1, state = opt.update(np.ones(1), state)
    >>> u2, state = opt.update(np.ones(1), state)
    >>> u1.tolist(), u2.tolist()
    ([-1.0], [-1.5])
    """
    beta = float(beta)

    def leaf(g, p, moments, coefs, scaled):
        (v,), (factor,) = moments, coefs
        v = v * beta
        v += g
        if nesterov:
            u = v * beta
            u += g
            return np.multiply(u, factor, out=g), (v,)
        return np.multiply(v, factor, out=g), (v,)

    rule = LeafRule(_descent(learning_rate), leaf, lambda state: (state.velocity,),
                    next_state=lambda state, m: MomentumState(step=state.step + 1, velocity=m[0]),
                    name="nesterov" if nesterov else "momentum")
    return FusedOptimizer(lambda params: MomentumState(step=np.int64(0), velocity=_zeros_like(params)), rule)


def _ema_square(v: np.ndarray, g: np.ndarray, b2: float) -> np.ndarray:
    """New second moment ``b2 v + (1 - b2) g**2`` as ``v + (1 - b2) (g**2 - v)``: four passes, one new array.

    Adam's ``nu`` and RMSprop's ``nu`` (``b2`` = its ``decay``).
    """
    out = np.square(g)
    out -= v
    out *= 1.0 - b2
    out += v
    return out


def _adam_coefficients(t: int, b1: float, b2: float, eps: float, factor: float) -> tuple[float, float]:
    """``(step_size, eps_hat)`` of step ``t`` (1 for the first): direction = ``step_size * mu / (sqrt(nu) + eps_hat)``.

    That is ``factor * mu_hat / (sqrt(nu_hat) + eps)`` with ``bc = 1 - b**t``, computed as
    ``(factor * sqrt(bc2) / bc1) * mu / (sqrt(nu) + eps * sqrt(bc2))``: the same number (multiply top and bottom by
    ``sqrt(bc2)``; Kingma & Ba, section 2) in one pass fewer.
    """
    sqrt_bc2 = math.sqrt(1.0 - b2**t)
    return factor * sqrt_bc2 / (1.0 - b1**t), eps * sqrt_bc2


def adam(learning_rate: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> FusedOptimizer:
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
) -> FusedOptimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``updates = -lr * (adam_direction + wd * params)``.

    Decays every parameter leaf (biases too), as optax's default; ``update`` needs ``params``.

    >>> opt = adamw(0.1, weight_decay=0.5)
    >>> p = np.array([2.0])
    >>> updates, _ = opt.update(np.array([3.0]), opt.init(p), p)
    >>> np.round(updates, 6).tolist()   # -0.1 * (1 + 0.5 * 2)
    [-0.2]
    """
    return _adam(learning_rate, float(b1), float(b2), float(eps), float(weight_decay))


def _adam(learning_rate, b1: float, b2: float, eps: float, weight_decay: float | None) -> FusedOptimizer:
    """:func:`adam` (``weight_decay`` None) and :func:`adamw`: one rule.

    The fused step asks for gradients pre-multiplied by ``1 - b1`` (``g1 = (1 - b1) g``, free in backprop), which
    saves a pass: ``mu = b1 mu + g1`` (two passes, not three) and ``nu = b2 (nu + c g1**2)`` with
    ``c = (1 - b2) / (b2 (1 - b1)**2)`` (four passes, as before); the composed update, given raw gradients, computes
    ``mu = mu + (1 - b1) (g - mu)`` and ``nu`` by :func:`_ema_square`. Same numbers up to rounding. The fold needs
    ``1 - b1 > 0`` and ``b2 > 0``; otherwise the fused step takes raw gradients too. The direction is then
    computed in the gradient's array.
    """
    folds = 0.0 < b2 and b1 < 1.0
    c = (1.0 - b2) / (b2 * (1.0 - b1) ** 2) if folds else 0.0

    def coefficients(state: AdamState) -> tuple[float, float, float]:
        factor = -_rate(learning_rate, state.step)
        step_size, eps_hat = _adam_coefficients(int(state.step) + 1, b1, b2, eps, factor)
        return step_size, eps_hat, factor * weight_decay if weight_decay else 0.0

    def leaf(g, p, moments, coefs, scaled):
        (m, v), (step_size, eps_hat, decay) = moments, coefs
        if scaled:  # g is (1 - b1) * gradient
            m = m * b1
            m += g
            v_new = np.square(g)
            v_new *= c
            v_new += v
            v_new *= b2
            v = v_new
        else:
            m_new = g - m
            m_new *= 1.0 - b1
            m_new += m
            m, v = m_new, _ema_square(v, g, b2)
        u = np.sqrt(v, out=g)  # g is no longer needed: the direction m / (sqrt(v) + eps_hat) * step_size goes there
        u += eps_hat
        np.divide(m, u, out=u)
        u *= step_size
        if decay:
            u += p * decay
        return u, (m, v)

    rule = LeafRule(coefficients, leaf, lambda state: (state.mu, state.nu),
                    next_state=lambda state, m: AdamState(step=state.step + 1, mu=m[0], nu=m[1]),
                    grad_scale=(lambda state: 1.0 - b1) if folds else None,
                    needs_params=weight_decay is not None, name="adam" if weight_decay is None else "adamw")
    return FusedOptimizer(lambda params: AdamState(step=np.int64(0), mu=_zeros_like(params), nu=_zeros_like(params)),
                          rule)


def rmsprop(learning_rate: float | Schedule, decay: float = 0.9, eps: float = 1e-8) -> FusedOptimizer:
    """RMSprop: ``nu = decay nu + (1 - decay) g**2``; ``updates = -lr * g / (sqrt(nu) + eps)``.

    >>> opt = rmsprop(0.1, decay=0.75)
    >>> updates, state = opt.update(np.array([2.0]), opt.init(np.zeros(1)))
    >>> np.round(updates, 6).tolist()   # nu = 0.25 * 4 = 1
    [-0.2]
    """
    decay, eps = float(decay), float(eps)

    def leaf(g, p, moments, coefs, scaled):
        (v,), (factor,) = moments, coefs
        nu = _ema_square(v, g, decay)
        denom = np.sqrt(nu)
        denom += eps
        u = np.multiply(g, factor, out=g)
        u /= denom
        return u, (nu,)

    rule = LeafRule(_descent(learning_rate), leaf, lambda state: (state.nu,),
                    next_state=lambda state, m: RmspropState(step=state.step + 1, nu=m[0]), name="rmsprop")
    return FusedOptimizer(lambda params: RmspropState(step=np.int64(0), nu=_zeros_like(params)), rule)


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
