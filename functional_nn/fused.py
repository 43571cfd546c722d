"""One optimizer's arithmetic, written once, run two ways: the composed ``update`` and the fused training step.

A :class:`LeafRule` holds an optimizer's per-parameter arithmetic as one function, ``leaf``. Calling the rule is the
plain optax-style ``update(grads, state, params=None) -> (updates, new_state)``, pure: it runs ``leaf`` on a copy of
each gradient. :meth:`LeafRule.fused_step` runs the very same ``leaf`` on gradient buffers that the caller hands
over and ends in them: ``update`` and ``apply_updates`` in one pass per parameter, with no updates or sums
allocated. :class:`functional_nn.optim.FusedOptimizer` is the optimizer type that carries such a rule; its docstring
states who owns which buffer.

Imports numpy and attrs, and :mod:`functional_nn.tree`; nothing else of the package (no cycle with ``optim``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from functional_nn.tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

__all__ = ["LeafRule", "add_into"]

Params = Any
OptState = Any


def add_into(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``p + u`` cast to ``p``'s dtype (``apply_updates`` for one leaf), written into ``u`` when the dtypes agree.

    ``u`` must be an array the caller owns (it is overwritten); ``p`` is never written.

    >>> u = np.array([0.5, -1.0], np.float32)
    >>> add_into(u, np.ones(2, np.float32)).tolist(), u.tolist()
    ([1.5, 0.0], [1.5, 0.0])
    """
    if u.dtype != p.dtype:
        return np.add(p, u, dtype=p.dtype, casting="same_kind")
    return np.add(p, u, out=u)


def _nothing(*leaves) -> None:
    return None


@attrs.frozen
class LeafRule:
    """An optimizer's arithmetic for one step, per parameter leaf; calling it is the composed ``update``.

    Attributes:
        coefficients: ``state -> tuple`` of this step's scalars (the learning rate at the state's step, ...).
        leaf: ``leaf(g, p, moments, coefficients, scaled) -> (u, new_moments)``: the update ``u`` of one parameter
            ``p`` (None when the caller gave no params) from its gradient ``g`` and its moment leaves (a sequence,
            one per tree of ``moments(state)``). ``g`` is the rule's own to overwrite (the composed path passes a copy);
            the moments and ``p`` are never written. ``scaled`` is True when ``g`` comes already multiplied by
            ``grad_scale(state)``.
        moments: ``state -> tuple`` of the state's trees shaped like the params (velocity; mu and nu), ``()`` if none.
        next_state: ``(state, new_moment_trees) -> new state`` (counts the step).
        grad_scale: ``state -> float`` that the fused caller folds into the gradients for free (backprop multiplies
            its small output delta), saving the rule a pass; None when the rule wants raw gradients.
        needs_params: True when ``leaf`` uses ``p`` (decoupled weight decay): the composed update then requires
            ``params``.
        name: the optimizer's name, for error messages.
    """

    coefficients: Callable[[OptState], tuple]
    leaf: Callable[..., tuple[np.ndarray, tuple]]
    moments: Callable[[OptState], tuple] = attrs.field(default=lambda state: ())
    next_state: Callable[[OptState, tuple], OptState] = attrs.field(kw_only=True)
    grad_scale: Callable[[OptState], float] | None = attrs.field(default=None, kw_only=True)
    needs_params: bool = attrs.field(default=False, kw_only=True)
    name: str = attrs.field(default="optimizer", kw_only=True)

    def __call__(self, grads: Params, state: OptState, params: Params = None) -> tuple[Params, OptState]:
        """The composed update: ``(updates, new_state)``, pure (``leaf`` runs on a copy of every gradient leaf)."""
        if self.needs_params and params is None:
            raise ValueError(f"{self.name}: update(grads, state, params) needs params for the weight decay")
        # the trees must share one structure (tree_map raises a ValueError naming where they differ)
        tree_map(_nothing, grads, *self.moments(state), *([] if params is None else [params]))
        g_leaves, treedef = tree_flatten(grads)
        p_leaves = [None] * len(g_leaves) if params is None else tree_leaves(params)
        updates, moments = self._run([np.array(g, copy=True) for g in g_leaves], p_leaves, state, scaled=False)
        trees = tuple(tree_unflatten(treedef, m) for m in moments)
        return tree_unflatten(treedef, updates), self.next_state(state, trees)

    def fused_step(self, grads: list, state: OptState, params: Params,
                   rebuild: Callable[[list], Params]) -> tuple[Params, OptState]:
        """``update`` then ``apply_updates`` in the buffers ``grads``: ``(new_params, new_state)``.

        ``grads`` are the gradient leaves in ``tree_leaves(params)`` order, multiplied by ``grad_scale(state)`` when
        the rule has one, freshly allocated by the caller and handed over: they are overwritten and become the new
        parameters. ``rebuild(leaves)`` makes a tree shaped like ``params`` from such a list.
        """
        p_leaves = tree_leaves(params)
        updates, moments = self._run(grads, p_leaves, state, scaled=self.grad_scale is not None)
        new_params = rebuild([add_into(u, p) for u, p in zip(updates, p_leaves)])
        return new_params, self.next_state(state, tuple(map(rebuild, moments)))

    def _run(self, grads: Sequence[np.ndarray], params: Sequence, state: OptState, *, scaled: bool):
        """``leaf`` over every parameter: (the updates, one list of new leaves per moment tree).

        It runs once per training step: a plain loop, no function call per leaf but ``leaf`` itself.
        """
        coefficients, leaf = self.coefficients(state), self.leaf
        moment_leaves = [tree_leaves(m) for m in self.moments(state)]
        updates, new_moments = [], [[] for _ in moment_leaves]
        for g, p, *ms in zip(grads, params, *moment_leaves, strict=True):
            u, news = leaf(g, p, ms, coefficients, scaled)
            updates.append(u)
            for out, m in zip(new_moments, news):
                out.append(m)
        return updates, new_moments
