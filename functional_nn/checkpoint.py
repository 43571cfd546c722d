"""Model files (an I/O edge): params, optional optimizer state and JSON metadata in one ``.npz``.

Layout: arrays ``params/0 .. params/N-1`` and ``opt_state/0 ..`` (the trees' leaves in flatten order) and
``__checkpoint__``, a 0-d unicode array holding JSON: a format tag and version, the user's ``meta``, and for each
tree its structure (nodes by name, registered attrs classes by their registry name) plus every leaf's shape and
dtype. Nothing is pickled (``allow_pickle=False`` on load); writing goes to a temporary file in the same folder,
then ``os.replace`` (atomic), so a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from functional_nn.params import Dense
from functional_nn.tree import TreeDef, pytree_class, pytree_name, tree_flatten, tree_unflatten

__all__ = ["Checkpoint", "CheckpointError", "load", "save"]

FORMAT = "functional-nn-checkpoint"
VERSION = 1
_HEADER = "__checkpoint__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, foreign or inconsistent; the message starts with its path."""


@attrs.frozen(eq=False)
class Checkpoint:
    """What :func:`load` returns: ``params`` (a pytree), ``meta`` (dict) and ``opt_state`` (pytree or None)."""

    params: Any
    meta: dict
    opt_state: Any = None


# ------------------------------------------------------------------------------------------------ structure <-> JSON


def _treedef_to_json(td: TreeDef) -> dict:
    node = td.node
    if node == "leaf":
        return {"node": "leaf"}
    if node is None:
        return {"node": "none"}
    kids = [_treedef_to_json(k) for k in td.children]
    if node is tuple or node is list:
        return {"node": node.__name__, "children": kids}
    if node is dict:
        if not all(isinstance(k, str) for k in td.meta):
            raise TypeError(f"checkpoint: dict keys must be strings, got {list(td.meta)}")
        return {"node": "dict", "keys": list(td.meta), "children": kids}
    return {"node": "record", "class": pytree_name(node), "static": dict(td.meta), "children": kids}


def _treedef_from_json(obj: Any) -> TreeDef:
    """Inverse of :func:`_treedef_to_json`; raises ValueError / KeyError / TypeError on malformed input."""
    node = obj["node"]
    if node == "leaf":
        return TreeDef("leaf", (), (), 1)
    if node == "none":
        return TreeDef(None, (), (), 0)
    kids = tuple(_treedef_from_json(k) for k in obj["children"])
    count = sum(k.num_leaves for k in kids)
    if node in ("tuple", "list"):
        return TreeDef(tuple if node == "tuple" else list, (), kids, count)
    if node == "dict":
        keys = tuple(obj["keys"])
        if len(keys) != len(kids):
            raise ValueError("dict keys and children differ in number")
        return TreeDef(dict, keys, kids, count)
    if node == "record":
        try:
            cls = pytree_class(obj["class"])
        except KeyError:
            raise ValueError(f"unknown pytree class {obj['class']!r} (import the module that defines it)") from None
        return TreeDef(cls, tuple(obj["static"].items()), kids, count)
    raise ValueError(f"unknown node kind {node!r}")


def _leaf_info(leaf: Any) -> dict:
    if isinstance(leaf, np.generic):
        kind = "scalar"
    elif isinstance(leaf, np.ndarray):
        kind = "array"
    else:
        raise TypeError(f"checkpoint: leaves must be NumPy arrays or scalars, got {type(leaf).__name__}")
    if leaf.dtype.kind not in "biuf":
        raise TypeError(f"checkpoint: unsupported leaf dtype {leaf.dtype}")
    return {"kind": kind, "shape": list(np.shape(leaf)), "dtype": leaf.dtype.str}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"checkpoint: meta value of type {type(obj).__name__} is not JSON-serialisable")


# ------------------------------------------------------------------------------------------------ save


def save(path: str | os.PathLike, params: Any, meta: dict | None = None, *, opt_state: Any = None) -> None:
    """Write ``params``, ``meta`` and optionally ``opt_state`` to one ``.npz`` at ``path``, atomically.

    Args:
        path: destination file (written as given; use a ``.npz`` suffix). Its folder must exist.
        params: a pytree of NumPy arrays (e.g. a tuple of Dense).
        meta: JSON-serialisable dict (NumPy scalars and arrays are converted to Python values).
        opt_state: optional pytree (e.g. an optimizer state); records must be registered pytree classes.

    Raises:
        TypeError: for a leaf that is not a numeric NumPy array or scalar, or meta that is not JSON.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "meta": meta or {}}
    for name, tree in (("params", params), ("opt_state", opt_state)):
        if name == "opt_state" and tree is None:
            header[name] = None
            continue
        leaves, treedef = tree_flatten(tree)
        header[name] = {"tree": _treedef_to_json(treedef), "leaves": [_leaf_info(leaf) for leaf in leaves]}
        arrays.update({f"{name}/{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    text = json.dumps(header, default=_json_default, allow_nan=True)
    arrays[_HEADER] = np.array(text)

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as err:
        raise OSError(err.errno, f"cannot write: {err.strerror}", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private (0o600); a model file is an ordinary file
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):          # a full disk or a read-only folder: say which file failed
            raise OSError(err.errno, f"cannot write: {err.strerror or err}", str(path)) from None
        raise


# ------------------------------------------------------------------------------------------------ load


def _fail(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: " + " ".join(str(reason).split()))


MAX_MEMBERS = 1 << 14            # arrays in one file; an MLP with Adam state has a few dozen
MAX_HEADER_CHARS = 16 << 20      # the JSON header; a few kB for any MLP


def _member_spec(path: Path, info: zipfile.ZipInfo, f, file_size: int) -> None:
    """Check one archive member's ``.npy`` header against the member's real size before anything is allocated:
    the array data must be exactly ``prod(shape) * itemsize`` bytes of a plain numeric dtype (a 0-d unicode
    array for the JSON header), so that a header claiming 10^12 elements in a small file is refused."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size or info.file_size > file_size:
        raise _fail(path, f"member {name}: compressed or larger than the file (not written by this program)")
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _fail(path, f"member {name}: unsupported .npy version {version}")
    if name == _HEADER + ".npy":
        if dtype.kind != "U" or shape != () or dtype.itemsize > 4 * MAX_HEADER_CHARS:
            raise _fail(path, f"member {name}: expected a JSON string, got {dtype} {shape}")
    elif dtype.hasobject or dtype.kind not in "biuf":
        raise _fail(path, f"member {name}: unsupported dtype {dtype}")
    count = 1
    for n in shape:
        count *= n                                            # Python ints: no overflow
    data_bytes = info.file_size - f.tell()
    if count * dtype.itemsize != data_bytes:
        raise _fail(path, f"member {name}: the header claims {count} x {dtype.itemsize} bytes, "
                          f"the member holds {data_bytes}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``, read eagerly so that a damaged member fails here. Only a regular
    file is opened; each member's header is checked against its real size first (:func:`_member_spec`)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except OSError as err:
        raise _fail(path, f"cannot read: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(path, "is a directory, not a checkpoint file")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(path, "not a regular file (a FIFO, device or socket)")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise _fail(path, f"cannot read: {err.strerror or err}") from None
    if not magic:
        raise _fail(path, "empty file (truncated write?)")
    if magic != b"PK\x03\x04":
        raise _fail(path, "not a functional-nn checkpoint (not an .npz archive)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _fail(path, f"{len(infos)} archive members, more than a checkpoint has")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise _fail(path, f"unexpected archive member {info.filename!r}")
                with zf.open(info) as f:
                    _member_spec(path, info, f, st.st_size)
                with zf.open(info) as f:
                    arrays[info.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError) as err:
        raise _fail(path, f"truncated or corrupt .npz archive: {err}") from None
    return arrays


def _load_tree(path: Path, name: str, info: Any, arrays: dict[str, np.ndarray]) -> Any:
    try:
        treedef = _treedef_from_json(info["tree"])
        specs = info["leaves"]
        if len(specs) != treedef.num_leaves:
            raise ValueError(f"structure has {treedef.num_leaves} leaves, header lists {len(specs)}")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _fail(path, f"corrupt {name} structure: {err}") from None
    except RecursionError:
        raise _fail(path, f"corrupt {name} structure: nested too deeply") from None
    leaves = []
    for i, spec in enumerate(specs):
        key = f"{name}/{i}"
        if key not in arrays:
            raise _fail(path, f"missing array {key}")
        leaf = arrays[key]
        try:
            shape, dtype, kind = tuple(spec["shape"]), np.dtype(str(spec["dtype"])), spec["kind"]
        except (KeyError, TypeError, ValueError) as err:
            raise _fail(path, f"corrupt header for {key}: {err}") from None
        if dtype.kind not in "biuf" or kind not in ("array", "scalar"):
            raise _fail(path, f"corrupt header for {key}: a {kind!r} of dtype {dtype}")
        if leaf.shape != shape or leaf.dtype != dtype:
            raise _fail(path, f"{key} is {leaf.dtype} {leaf.shape}, the header says {dtype} {shape}")
        leaves.append(leaf[()] if kind == "scalar" else leaf)
    try:
        return tree_unflatten(treedef, leaves)
    except (TypeError, ValueError) as err:
        raise _fail(path, f"cannot rebuild {name}: {err}") from None


def _check_mlp(path: Path, params: Any) -> None:
    """When ``params`` is a tuple of Dense, check w/b shapes, the layer chain and a single float dtype."""
    if not (isinstance(params, tuple) and params and all(isinstance(p, Dense) for p in params)):
        return
    dtype = params[0].w.dtype
    for i, layer in enumerate(params):
        if layer.w.ndim != 2 or layer.b.shape != (layer.w.shape[1],):
            raise _fail(path, f"layer {i}: w {layer.w.shape} and b {layer.b.shape} do not fit")
        if i and params[i - 1].w.shape[1] != layer.w.shape[0]:
            n_prev = params[i - 1].w.shape[1]
            raise _fail(path, f"layer {i} takes {layer.w.shape[0]} inputs, layer {i - 1} gives {n_prev}")
        if layer.w.dtype != dtype or layer.b.dtype != dtype or not np.issubdtype(dtype, np.floating):
            raise _fail(path, f"layer {i}: dtypes {layer.w.dtype}/{layer.b.dtype}, expected one float dtype {dtype}")


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save`, checking its structure, shapes and dtypes.

    Args:
        path: the ``.npz`` file.

    Returns:
        ``Checkpoint(params, meta, opt_state)``; params are rebuilt as the same pytree (Dense arrays read-only),
        ``opt_state`` is None when none was saved. Classes in the file must be registered (imported) pytrees.

    Raises:
        CheckpointError: (a ``ValueError``) for a missing, truncated, corrupt, foreign or inconsistent file, with a
            one-line message starting with ``path``.
    """
    path = Path(path)
    arrays = _read_npz(path)
    if _HEADER not in arrays:
        raise _fail(path, f"not a functional-nn checkpoint (no {_HEADER} entry)")
    try:
        header = json.loads(str(arrays[_HEADER][()]))
    except (ValueError, TypeError) as err:
        raise _fail(path, f"corrupt metadata JSON: {err}") from None
    except RecursionError:
        raise _fail(path, "corrupt metadata JSON: nested too deeply") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _fail(path, "not a functional-nn checkpoint (wrong format tag)")
    if header.get("version") != VERSION:
        raise _fail(path, f"unsupported checkpoint version {header.get('version')!r} (this code reads {VERSION})")
    if not isinstance(header.get("meta"), dict) or "params" not in header or "opt_state" not in header:
        raise _fail(path, "corrupt metadata: missing meta, params or opt_state")
    params = _load_tree(path, "params", header["params"], arrays)
    _check_mlp(path, params)
    opt_state = None
    if header["opt_state"] is not None:
        opt_state = _load_tree(path, "opt_state", header["opt_state"], arrays)
    return Checkpoint(params=params, meta=header["meta"], opt_state=opt_state)
