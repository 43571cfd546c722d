"""Pytrees: nests of tuple / list / dict / None and registered frozen attrs records, with array leaves.

A registered record's children are its attrs fields in declaration order, except fields declared with
``metadata={"static": True}``: those are part of the tree's *structure* (like equinox's ``field(static=True)``),
so two ``Dense`` layers with different activations do not have the same structure.

The one piece of module state is the class registry filled by :func:`register_pytree` at import time (as JAX's
``register_pytree_node``); :mod:`functional_nn.checkpoint` uses it to rebuild records by name.
"""

from __future__ import annotations

import importlib

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = [
    "TreeDef",
    "pytree_class",
    "pytree_name",
    "register_pytree",
    "tree_allclose",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
]


@attrs.frozen
class _RecordSpec:
    """How to take a registered record apart: child field names and static field names (attrs order)."""

    name: str
    children: tuple[str, ...]
    statics: tuple[str, ...]


_REGISTRY: dict[type, _RecordSpec] = {}  # filled once per class at import time by register_pytree
_BY_NAME: dict[str, type] = {}


def register_pytree(cls: type) -> type:
    """Register an attrs class as a pytree node (use as a class decorator, above ``@attrs.frozen``).

    Children are the non-static fields in declaration order; rebuilding calls ``cls(**fields)``, so converters
    (for example ``readonly``) run again on the new leaves.

    >>> @register_pytree
    ... @attrs.frozen
    ... class Pair:
    ...     a: object
    ...     b: object
    ...     tag: str = attrs.field(default="x", metadata={"static": True})
    >>> tree_leaves(Pair(1, 2)), tree_map(lambda v: v * 10, Pair(1, 2)).b
    ([1, 2], 20)
    """
    if not attrs.has(cls):
        raise TypeError(f"register_pytree: {cls.__qualname__} is not an attrs class")
    fields = attrs.fields(cls)
    if any(not f.init for f in fields):
        raise TypeError(f"register_pytree: every field of {cls.__qualname__} must be an __init__ argument")
    children = tuple(f.alias for f in fields if not f.metadata.get("static", False))
    statics = tuple(f.alias for f in fields if f.metadata.get("static", False))
    name = f"{cls.__module__}.{cls.__qualname__}"
    _REGISTRY[cls] = _RecordSpec(name, children, statics)
    _BY_NAME[name] = cls
    return cls


def pytree_name(cls: type) -> str:
    """The registry name (``module.QualName``) of a registered class; raises KeyError if unregistered.

    >>> from functional_nn.params import Dense
    >>> pytree_name(Dense), pytree_class("functional_nn.params.Dense") is Dense
    ('functional_nn.params.Dense', True)
    """
    return _REGISTRY[cls].name


def pytree_class(name: str) -> type:
    """The registered class called ``name`` (see :func:`pytree_name`); raises KeyError if none is. A class of
    this package whose module has not been imported yet (``import functional_nn`` loads its modules lazily) is
    found by importing that module; no other module is ever imported from a name."""
    if (name not in _BY_NAME and name.startswith("functional_nn.") and not name.startswith("functional_nn.app.")
            and name.count(".") >= 2):
        module = name.rsplit(".", 1)[0]
        if module.replace("_", "").replace(".", "").isalnum():
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    return _BY_NAME[name]


# --------------------------------------------------------------------------------------------------------------
# tree_map: a direct recursion (no flatten / unflatten round trip) because it runs several times per training step.
# On a mismatch the error climbs back up the recursion collecting the path; try blocks cost nothing otherwise.


class _Mismatch(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what
        self.path: list[str] = []


def _kind(x: Any) -> str:
    return type(x).__name__ if x is not None else "None"


def _map(f: Callable, tree: Any, rest: list) -> Any:
    cls = type(tree)
    if cls is np.ndarray:  # the common case first: an array leaf
        for other in rest:
            if type(other) is not np.ndarray and _is_node(other):
                raise _Mismatch(f"expected a leaf, got {_describe(other)}")
        return f(tree, *rest)
    if cls is tuple or cls is list:
        n = len(tree)
        for other in rest:
            if type(other) is not cls or len(other) != n:
                raise _Mismatch(f"expected {cls.__name__} of length {n}, got {_describe(other)}")
        out = []
        for i, child in enumerate(tree):
            try:
                out.append(_map(f, child, [other[i] for other in rest]))
            except _Mismatch as err:
                err.path.append(f"[{i}]")
                raise
        return tuple(out) if cls is tuple else out
    spec = _REGISTRY.get(cls)
    if spec is not None:
        kwargs = {s: getattr(tree, s) for s in spec.statics}
        for other in rest:
            if type(other) is not cls:
                raise _Mismatch(f"expected {cls.__qualname__}, got {_describe(other)}")
            for s, value in kwargs.items():
                if getattr(other, s) != value:
                    raise _Mismatch(f"static field {s!r}: {value!r} != {getattr(other, s)!r}")
        for name in spec.children:
            try:
                kwargs[name] = _map(f, getattr(tree, name), [getattr(other, name) for other in rest])
            except _Mismatch as err:
                err.path.append(f".{name}")
                raise
        return cls(**kwargs)
    if cls is dict:
        keys = sorted(tree)
        for other in rest:
            if type(other) is not dict or sorted(other) != keys:
                raise _Mismatch(f"expected dict with keys {keys}, got {_describe(other)}")
        out_d = {}
        for k in keys:
            try:
                out_d[k] = _map(f, tree[k], [other[k] for other in rest])
            except _Mismatch as err:
                err.path.append(f"[{k!r}]")
                raise
        return out_d
    if tree is None:
        for other in rest:
            if other is not None:
                raise _Mismatch(f"expected None, got {_describe(other)}")
        return None
    for other in rest:  # any other leaf (a NumPy or Python scalar): the other trees must have leaves here too
        if _is_node(other):
            raise _Mismatch(f"expected a leaf, got {_describe(other)}")
    return f(tree, *rest)


def _is_node(x: Any) -> bool:
    return x is None or type(x) in (tuple, list, dict) or type(x) in _REGISTRY


def _describe(x: Any) -> str:
    if type(x) in (tuple, list):
        return f"{type(x).__name__} of length {len(x)}"
    if type(x) is dict:
        return f"dict with keys {sorted(x)}"
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape}"
    return _kind(x)


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``f`` to every leaf of ``tree`` (and the matching leaves of ``rest``); return a tree of the results.

    Args:
        f: function of ``1 + len(rest)`` leaves.
        tree: the pytree whose structure the result has.
        *rest: pytrees with exactly the same structure (same node types, lengths, dict keys and static fields).

    Returns:
        A new pytree; records are rebuilt through their ``__init__`` (converters run again).

    Raises:
        ValueError: on a structure mismatch, naming the path of the first differing node, e.g. ``[1].w``.

    >>> tree_map(lambda a, b: a + b, (1, {"k": 2}), (10, {"k": 20}))
    (11, {'k': 22})
    >>> tree_map(lambda a, b: a + b, (1, 2), (1, [2]))
    Traceback (most recent call last):
    ...
    ValueError: tree_map: structure mismatch at [1]: expected a leaf, got list of length 1
    """
    try:
        return _map(f, tree, list(rest))
    except _Mismatch as err:
        where = "".join(reversed(err.path)) or "<root>"
        raise ValueError(f"tree_map: structure mismatch at {where}: {err.what}") from None


# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class TreeDef:
    """The structure of a pytree: a node type, its metadata and the children's structures.

    ``node`` is ``tuple``, ``list``, ``dict``, ``None`` (the empty tree), a registered class, or ``"leaf"``;
    ``meta`` holds the sorted dict keys or the record's static field values (name, value) pairs.
    """

    node: Any
    meta: tuple = ()
    children: tuple[TreeDef, ...] = ()
    num_leaves: int = 0


_LEAF = TreeDef("leaf", (), (), 1)
_NONE = TreeDef(None, (), (), 0)


def _flatten(tree: Any, leaves: list) -> TreeDef:
    cls = type(tree)
    if cls is tuple or cls is list:
        kids = tuple(_flatten(child, leaves) for child in tree)
        return TreeDef(cls, (), kids, sum(k.num_leaves for k in kids))
    spec = _REGISTRY.get(cls)
    if spec is not None:
        kids = tuple(_flatten(getattr(tree, name), leaves) for name in spec.children)
        meta = tuple((s, getattr(tree, s)) for s in spec.statics)
        return TreeDef(cls, meta, kids, sum(k.num_leaves for k in kids))
    if cls is dict:
        keys = tuple(sorted(tree))
        kids = tuple(_flatten(tree[k], leaves) for k in keys)
        return TreeDef(dict, keys, kids, sum(k.num_leaves for k in kids))
    if tree is None:
        return _NONE
    leaves.append(tree)
    return _LEAF


def tree_flatten(tree: Any) -> tuple[list, TreeDef]:
    """Split a pytree into its leaves (depth first, dict keys sorted) and its structure.

    >>> leaves, treedef = tree_flatten({"b": (1, None), "a": [2, 3]})
    >>> leaves, treedef.num_leaves
    ([2, 3, 1], 3)
    >>> tree_unflatten(treedef, [20, 30, 10])
    {'a': [20, 30], 'b': (10, None)}
    """
    leaves: list = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _unflatten(treedef: TreeDef, it) -> Any:
    node = treedef.node
    if node == "leaf":
        return next(it)
    if node is None:
        return None
    kids = [_unflatten(k, it) for k in treedef.children]
    if node is tuple:
        return tuple(kids)
    if node is list:
        return kids
    if node is dict:
        return dict(zip(treedef.meta, kids))
    spec = _REGISTRY[node]
    return node(**dict(treedef.meta), **dict(zip(spec.children, kids)))


def tree_unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    """Rebuild a pytree of structure ``treedef`` from ``leaves`` (the inverse of :func:`tree_flatten`).

    Raises:
        ValueError: if ``len(leaves)`` differs from ``treedef.num_leaves``.
    """
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: the structure has {treedef.num_leaves} leaves, got {len(leaves)}")
    return _unflatten(treedef, iter(leaves))


def _leaves(tree: Any, out: list) -> None:
    cls = type(tree)
    if cls is tuple or cls is list:
        for child in tree:
            _leaves(child, out)
        return
    spec = _REGISTRY.get(cls)
    if spec is not None:
        for name in spec.children:
            _leaves(getattr(tree, name), out)
    elif cls is dict:
        for k in sorted(tree):
            _leaves(tree[k], out)
    elif tree is not None:
        out.append(tree)


def tree_leaves(tree: Any) -> list:
    """The leaves of ``tree`` in :func:`tree_flatten` order.

    >>> tree_leaves([1, (2, None), {"z": 4, "y": 3}])
    [1, 2, 3, 4]
    """
    out: list = []
    _leaves(tree, out)
    return out


def tree_allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """True when ``a`` and ``b`` have the same structure and every pair of leaves has the same shape and is close.

    Closeness is ``numpy.allclose(x, y, rtol, atol, equal_nan=True)``; ``rtol=0, atol=0`` asks for equality.

    >>> tree_allclose((np.ones(2), None), (np.ones(2) + 1e-9, None))
    True
    >>> tree_allclose((np.ones(2),), [np.ones(2)])
    False
    """
    leaves_a, def_a = tree_flatten(a)
    leaves_b, def_b = tree_flatten(b)
    if def_a != def_b:
        return False
    for x, y in zip(leaves_a, leaves_b):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            return False
    return True
