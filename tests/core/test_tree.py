import re

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functional_nn import Dense, init_mlp
from functional_nn.tree import (
    pytree_class,
    pytree_name,
    register_pytree,
    tree_allclose,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_unflatten,
)
from tests.strategies import architectures, seeds


@register_pytree
@attrs.frozen(eq=False)
class Tagged:
    value: object
    extra: object = None
    tag: str = attrs.field(default="a", metadata={"static": True})


def nested():
    return {
        "layers": (Dense(np.ones((2, 3)), np.zeros(3), "relu"), Dense(np.ones((3, 1)), np.zeros(1))),
        "list": [np.arange(3), None, Tagged(np.float32(2.0), [np.ones(1)], tag="b")],
        "step": np.int64(7),
    }


def test_flatten_unflatten_round_trip():
    tree = nested()
    leaves, treedef = tree_flatten(tree)
    assert treedef.num_leaves == len(leaves) == 8
    rebuilt = tree_unflatten(treedef, leaves)
    assert tree_allclose(rebuilt, tree, rtol=0, atol=0)
    assert rebuilt["layers"][0].activation == "relu" and rebuilt["list"][2].tag == "b"
    assert type(rebuilt["list"]) is list and rebuilt["list"][1] is None


@settings(max_examples=15, deadline=None)
@given(seed=seeds, sizes=architectures)
def test_round_trip_over_mlps(seed, sizes):
    params = init_mlp(np.random.default_rng(seed), sizes)
    leaves, treedef = tree_flatten(params)
    assert len(leaves) == 2 * (len(sizes) - 1)
    assert tree_allclose(tree_unflatten(treedef, leaves), params, rtol=0, atol=0)
    assert all(a is b for a, b in zip(tree_leaves(params), leaves, strict=True))


def test_static_fields_are_structure_not_leaves():
    assert tree_leaves(Dense(np.ones((1, 1)), np.zeros(1), "tanh"))[0].shape == (1, 1)
    assert len(tree_leaves(Dense(np.ones((1, 1)), np.zeros(1), "tanh"))) == 2
    _, def_relu = tree_flatten(Dense(np.ones((1, 1)), np.zeros(1), "relu"))
    _, def_tanh = tree_flatten(Dense(np.ones((1, 1)), np.zeros(1), "tanh"))
    assert def_relu != def_tanh


def test_dict_leaves_in_sorted_key_order():
    assert tree_leaves({"b": 2, "a": 1, "c": {"z": 4, "y": 3}}) == [1, 2, 3, 4]


def test_tree_map_several_trees_and_rebuilds_records():
    a = (Dense(np.ones((2, 2)), np.ones(2), "relu"),)
    b = (Dense(np.full((2, 2), 2.0), np.full(2, 3.0), "relu"),)
    out = tree_map(lambda x, y: x * y, a, b)
    assert isinstance(out[0], Dense) and out[0].activation == "relu"
    np.testing.assert_array_equal(out[0].b, [3.0, 3.0])
    assert not out[0].w.flags.writeable  # the converter ran again


@pytest.mark.parametrize(
    ("other", "where"),
    [
        ((Dense(np.ones((2, 2)), np.ones(2), "relu"), Dense(np.ones((2, 1)), np.ones(1), "tanh")), "[1]"),
        ((Dense(np.ones((2, 2)), np.ones(2), "relu"),), "<root>"),
        ([Dense(np.ones((2, 2)), np.ones(2), "relu"), Dense(np.ones((2, 1)), np.ones(1))], "<root>"),
    ],
)
def test_tree_map_mismatch_names_the_path(other, where):
    params = (Dense(np.ones((2, 2)), np.ones(2), "relu"), Dense(np.ones((2, 1)), np.ones(1)))
    with pytest.raises(ValueError, match=re.escape(f"structure mismatch at {where}:")):
        tree_map(lambda x, y: x + y, params, other)


def test_tree_map_mismatch_inside_a_record():
    with pytest.raises(ValueError, match=re.escape("at [0].extra[1]: expected list of length 2, got list of length 1")):
        tree_map(lambda a, b: a, (Tagged(1, [1, [2, 3]]),), (Tagged(1, [1, [2]]),))


def test_tree_map_mismatch_in_static_field_and_dict_keys():
    with pytest.raises(ValueError, match=r"at \[1\]: static field 'activation'"):
        tree_map(
            lambda a, b: a,
            (Dense(np.ones((1, 1)), np.ones(1)), Dense(np.ones((1, 1)), np.ones(1), "relu")),
            (Dense(np.ones((1, 1)), np.ones(1)), Dense(np.ones((1, 1)), np.ones(1), "tanh")),
        )
    with pytest.raises(ValueError, match=r"at \['x'\]\[2\]: expected None"):
        tree_map(lambda a, b: a, {"x": [1, 2, None]}, {"x": [1, 2, 3]})
    with pytest.raises(ValueError, match="expected dict with keys"):
        tree_map(lambda a, b: a, {"x": 1}, {"y": 1})


def test_tree_unflatten_checks_leaf_count():
    _, treedef = tree_flatten((1, 2))
    with pytest.raises(ValueError, match="2 leaves, got 3"):
        tree_unflatten(treedef, [1, 2, 3])


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=5))
@settings(max_examples=20, deadline=None)
def test_tree_allclose(values):
    a = {"v": np.array(values), "n": None}
    assert tree_allclose(a, tree_map(np.copy, a), rtol=0, atol=0)
    assert not tree_allclose(a, {"v": np.array(values) + 1.0, "n": None})
    assert not tree_allclose(a, {"v": np.array(values + [0.0]), "n": None})  # shape differs
    assert not tree_allclose(a, {"v": np.array(values)})  # structure differs


def test_registry_names_and_errors():
    assert pytree_class(pytree_name(Dense)) is Dense
    assert pytree_name(Tagged).endswith("test_tree.Tagged")
    with pytest.raises(TypeError, match="not an attrs class"):
        register_pytree(dict)
