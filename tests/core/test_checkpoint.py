import io
import json
import os
import zipfile

import numpy as np
import pytest

from functional_nn import (
    Checkpoint,
    CheckpointError,
    Dense,
    adam,
    chain,
    clip_by_global_norm,
    grad,
    init_mlp,
    load,
    momentum,
    save,
    tree_flatten,
    tree_map,
)

META = {"sizes": [6, 5, 3], "activation": "tanh", "seed": np.int64(3), "normalization": {"mean": 0.5}}


def trained_state(dtype=np.float32):
    rng = np.random.default_rng(0)
    params = init_mlp(rng, [6, 5, 3], activation="tanh", dtype=dtype)
    opt = chain(clip_by_global_norm(1.0), adam(1e-2))
    state = opt.init(params)
    x, y = rng.standard_normal((4, 6)).astype(dtype), np.array([0, 1, 2, 1])
    updates, state = opt.update(grad(params, x, y), state, params)
    return params, state


def assert_bitwise_equal(a, b):
    leaves_a, def_a = tree_flatten(a)
    leaves_b, def_b = tree_flatten(b)
    assert def_a == def_b
    for x, y in zip(leaves_a, leaves_b):
        assert type(x) is type(y) and x.dtype == y.dtype and np.shape(x) == np.shape(y)
        np.testing.assert_array_equal(x, y)
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bitwise(tmp_path, dtype):
    params, state = trained_state(dtype)
    path = tmp_path / "last.npz"
    save(path, params, META, opt_state=state)
    ckpt = load(path)
    assert isinstance(ckpt, Checkpoint)
    assert_bitwise_equal(ckpt.params, params)
    assert_bitwise_equal(ckpt.opt_state, state)
    assert ckpt.meta == {"sizes": [6, 5, 3], "activation": "tanh", "seed": 3, "normalization": {"mean": 0.5}}
    assert all(isinstance(layer, Dense) and not layer.w.flags.writeable for layer in ckpt.params)
    assert type(ckpt.opt_state.step) is np.int64


def test_round_trip_without_opt_state_and_other_trees(tmp_path):
    params = init_mlp(np.random.default_rng(1), [3, 2])
    save(tmp_path / "model.npz", params, {})
    ckpt = load(tmp_path / "model.npz")
    assert ckpt.opt_state is None and ckpt.meta == {}
    assert_bitwise_equal(ckpt.params, params)
    opt = momentum(0.1)
    tree = {"a": [np.arange(3), None], "b": (np.float32(1.5),)}
    save(tmp_path / "tree.npz", tree, {"k": 1}, opt_state=opt.init(tree))
    ckpt = load(tmp_path / "tree.npz")
    assert_bitwise_equal(ckpt.params, tree)
    assert_bitwise_equal(ckpt.opt_state, opt.init(tree))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    params, state = trained_state()
    path = tmp_path / "model.npz"
    save(path, params, META)
    save(path, tree_map(lambda a: a + 1, params), META, opt_state=state)  # overwrite in place
    assert os.listdir(tmp_path) == ["model.npz"]
    assert load(path).opt_state is not None
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        save(path, params, {"bad": object()})
    assert os.listdir(tmp_path) == ["model.npz"]  # the old file survives a failed save
    assert_bitwise_equal(load(path).params, tree_map(lambda a: a + 1, params))


def test_save_rejects_non_array_leaves(tmp_path):
    with pytest.raises(TypeError, match="leaves must be NumPy arrays"):
        save(tmp_path / "x.npz", ["text"], {})
    assert os.listdir(tmp_path) == []


def good_file(tmp_path):
    params, state = trained_state()
    path = tmp_path / "good.npz"
    save(path, params, META, opt_state=state)
    return path


def rewrite_header(src, dst, change):
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["__checkpoint__"][()]))
    change(header, arrays)
    arrays["__checkpoint__"] = np.array(json.dumps(header))
    np.savez(dst, **arrays)


def make_bad(kind, tmp_path):
    good = good_file(tmp_path)
    bad = tmp_path / f"{kind}.npz"
    raw = good.read_bytes()
    if kind == "missing":
        pass
    elif kind == "directory":
        bad.mkdir()
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(raw[: len(raw) // 2])
    elif kind == "corrupt":
        middle = len(raw) // 2
        bad.write_bytes(raw[:middle] + bytes(b ^ 0xFF for b in raw[middle : middle + 64]) + raw[middle + 64 :])
    elif kind == "text":
        bad.write_text("sizes,activation\n784,relu\n")
    elif kind == "npy":
        np.save(bad.with_suffix(".npy"), np.zeros(3))
        bad.with_suffix(".npy").rename(bad)
    elif kind == "foreign_npz":
        np.savez(bad, a=np.zeros(3), b=np.ones(2))
    elif kind == "wrong_format":
        rewrite_header(good, bad, lambda h, a: h.update(format="something-else"))
    elif kind == "bad_json":
        with np.load(good, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["__checkpoint__"] = np.array("{not json")
        np.savez(bad, **arrays)
    elif kind == "shape_mismatch":
        rewrite_header(good, bad, lambda h, a: a.update({"params/0": np.zeros((2, 2), np.float32)}))
    elif kind == "dtype_mismatch":
        rewrite_header(good, bad, lambda h, a: a.update({"params/1": a["params/1"].astype(np.float64)}))
    elif kind == "missing_array":
        rewrite_header(good, bad, lambda h, a: a.pop("opt_state/3"))
    elif kind == "unknown_class":
        rewrite_header(good, bad, lambda h, a: h["params"]["tree"]["children"][0].update({"class": "x.Nope"}))
    elif kind == "layer_chain":
        def swap(h, a):  # consistent header and arrays, but layer 1 no longer takes layer 0's outputs
            a["params/2"] = np.zeros((4, 3), np.float32)
            h["params"]["leaves"][2]["shape"] = [4, 3]
        rewrite_header(good, bad, swap)
    elif kind == "huge_npy_header":              # a member whose .npy header claims 10^12 elements in a few bytes
        write_members(good, bad, "params/0.npy", npy_bytes({"descr": "<f4", "fortran_order": False,
                                                           "shape": (10**6, 10**6)}, b"\0" * 64))
    elif kind == "overflowing_npy_header":       # dimensions whose product overflows int64
        write_members(good, bad, "params/0.npy", npy_bytes({"descr": "<f4", "fortran_order": False,
                                                           "shape": (2**62, 2**62, 16)}, b""))
    elif kind == "object_member":
        write_members(good, bad, "params/0.npy", npy_bytes({"descr": "|O", "fortran_order": False, "shape": (1,)},
                                                           b"\0" * 8))
    elif kind == "compressed":
        with np.load(good, allow_pickle=False) as data:
            np.savez_compressed(bad, **{k: data[k] for k in data.files})
    elif kind == "complex_leaf":
        def complex_leaf(h, a):
            a["params/1"] = a["params/1"].astype(np.complex64)
            h["params"]["leaves"][1]["dtype"] = "<c8"
        rewrite_header(good, bad, complex_leaf)
    elif kind == "deep_json":                    # 100,000-deep nesting in the metadata
        with np.load(good, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["__checkpoint__"] = np.array("[" * 100_000 + "]" * 100_000)
        np.savez(bad, **arrays)
    elif kind == "deep_tree":                    # a structure 900 levels deep: valid JSON, too deep to rebuild
        with np.load(good, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(str(arrays["__checkpoint__"][()]))
        header["params"]["tree"] = "@TREE@"
        nested = '{"node": "tuple", "children": [' * 900 + '{"node": "leaf"}' + "]}" * 900
        arrays["__checkpoint__"] = np.array(json.dumps(header).replace('"@TREE@"', nested))
        np.savez(bad, **arrays)
    elif kind == "fifo":
        os.mkfifo(bad)
    else:
        raise AssertionError(kind)
    return bad


def npy_bytes(header: dict, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def write_members(src, dst, name, data):
    """Copy the archive ``src`` to ``dst`` with member ``name`` replaced by raw ``data`` (stored, as np.savez)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, data if info.filename == name else zin.read(info))


BAD_KINDS = [
    "missing", "directory", "empty", "truncated", "corrupt", "text", "npy", "foreign_npz", "wrong_format", "bad_json",
    "shape_mismatch", "dtype_mismatch", "missing_array", "unknown_class", "layer_chain", "huge_npy_header",
    "overflowing_npy_header", "object_member", "compressed", "complex_leaf", "deep_json", "deep_tree", "fifo",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_bad_file_raises_one_line_checkpoint_error(kind, tmp_path):
    bad = make_bad(kind, tmp_path)
    with pytest.raises(CheckpointError) as info:
        load(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_corrupting_any_region_raises_checkpoint_error(tmp_path):
    good = good_file(tmp_path)
    raw = good.read_bytes()
    for i, start in enumerate(range(0, len(raw), max(1, len(raw) // 16))):
        bad = tmp_path / f"c{i}.npz"
        bad.write_bytes(raw[:start] + b"\x00" * 32 + raw[start + 32 :])
        try:
            ckpt = load(bad)
        except CheckpointError as err:
            assert str(err).startswith(str(bad))
        else:  # zeroed bytes inside an array payload are valid floats: the file still loads, with the same layout
            assert_bitwise_equal(tree_map(np.zeros_like, ckpt.params), tree_map(np.zeros_like, load(good).params))
