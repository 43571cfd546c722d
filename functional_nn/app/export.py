"""``fnn export RUN_DIR --format onnx``: a trained run as an ONNX model (needs the ``onnx`` extra).

The graph takes raw pixels (float32, 0-255, shape ``[N, n_features]``) and returns class probabilities
(``[N, n_classes]``): the run's normalization is inside it (``x / 255``, or ``(x - mean) / std`` with the run's
statistics), then each layer's ``MatMul``, ``Add`` and activation (``Relu``, ``LeakyRelu`` with the core's
slope, ``Tanh``, ``Sigmoid``), then ``Softmax``. Opset 17, checked by ``onnx.checker`` before it is written
(atomically). Class names and the source run are recorded in the model's metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from functional_nn.app.inference import TrainedModel, load_run
from functional_nn.app.settings import UsageError
from functional_nn.ops import LEAKY_RELU_SLOPE
from pipelines.io.atomic import atomic_write_bytes

ONNX_HINT = "fnn export --format onnx needs the onnx extra: python -m pip install 'functional-nn[onnx]'"
OPSET = 17


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise UsageError(ONNX_HINT) from None
    return onnx, helper, numpy_helper


def to_onnx(model: TrainedModel):
    """The ``onnx.ModelProto`` of a trained model (raw 0-255 pixels in, probabilities out)."""
    onnx, helper, numpy_helper = _onnx()
    dtype = np.float32 if model.dtype == "float32" else np.float64
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    norm = model.normalization
    if norm["kind"] == "scale":
        nodes.append(helper.make_node("Div", ["pixels", const("divisor", 255.0)], ["x0"], name="scale"))
    else:
        nodes.append(helper.make_node("Sub", ["pixels", const("mean", norm["mean"])], ["centred"], name="centre"))
        nodes.append(helper.make_node("Div", ["centred", const("std", norm["std"])], ["x0"], name="standardize"))
    x = "x0"
    for i, layer in enumerate(model.params):
        w, b = const(f"w{i}", layer.w), const(f"b{i}", layer.b)
        nodes.append(helper.make_node("MatMul", [x, w], [f"xw{i}"], name=f"matmul{i}"))
        nodes.append(helper.make_node("Add", [f"xw{i}", b], [f"z{i}"], name=f"add{i}"))
        x = f"z{i}"
        act = layer.activation
        if act == "relu":
            nodes.append(helper.make_node("Relu", [x], [f"a{i}"], name=f"relu{i}"))
        elif act == "leaky_relu":
            nodes.append(helper.make_node("LeakyRelu", [x], [f"a{i}"], alpha=float(LEAKY_RELU_SLOPE),
                                          name=f"leaky_relu{i}"))
        elif act == "tanh":
            nodes.append(helper.make_node("Tanh", [x], [f"a{i}"], name=f"tanh{i}"))
        elif act == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", [x], [f"a{i}"], name=f"sigmoid{i}"))
        elif act == "identity":
            continue
        else:
            raise UsageError(f"{model.run_dir}: activation {act!r} has no ONNX export")
        x = f"a{i}"
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=-1, name="softmax"))
    graph = helper.make_graph(
        nodes, "functional_nn_mlp",
        [helper.make_tensor_value_info("pixels", elem, ["N", model.n_features])],
        [helper.make_tensor_value_info("probabilities", elem, ["N", model.sizes[-1]])],
        initializer=inits)
    proto = helper.make_model(graph, producer_name="functional-nn", opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 9)               # readable by older runtimes too
    helper.set_model_props(proto, {"classes": ",".join(model.classes), "run": str(model.run_dir),
                                   "checkpoint": model.checkpoint, "input": "raw pixels 0-255"})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_command(args) -> int:
    """``fnn export RUN_DIR --format onnx [--out FILE] [--checkpoint ...]``."""
    if args.format != "onnx":
        raise UsageError(f"--format must be onnx, got {args.format!r}")
    _onnx()                                                    # the hint before any reading
    model = load_run(args.run_dir, args.checkpoint)
    out = Path(args.out) if args.out else Path(args.run_dir) / f"{args.checkpoint}.onnx"
    atomic_write_bytes(out, to_onnx(model).SerializeToString())
    print(out)
    return 0
