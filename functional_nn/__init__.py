"""functional_nn: the core. A pure-function MLP in NumPy: hand-written backprop over immutable pytrees.

It holds the pytrees (``tree``), parameters (``params``), activations (``ops``), the model, loss and gradient
(``model``), the optimizers (``optim``, with their arithmetic written once in ``fused``), learning-rate
``schedules``, the training step and evaluation (``train``), the training loop (``loop``: a lazy fold over epochs
that scripts compose with toolz) and model files (``checkpoint``, its only I/O). Everything public is importable
from here; the submodules load on first use (PEP 562), so that ``import functional_nn`` is instant and
``fnn``'s entry point can handle Ctrl-C from its first moment.

It may import numpy, attrs and toolz only: never ``pipelines``, the application (``functional_nn.app``),
argparse, matplotlib, tqdm or PIL; it prints nothing and reads no clock; randomness only from a
``numpy.random.Generator`` passed in (import-linter contracts in pyproject.toml; tests/test_layers.py).
"""

import importlib

# public name -> the submodule that defines it (loaded by __getattr__ on first use)
_EXPORTS = {
    **dict.fromkeys(("Checkpoint", "CheckpointError", "load", "save"), "checkpoint"),
    **dict.fromkeys(("Best", "Diverged", "EpochMetrics", "TrainState", "early_stopping", "fit", "initial_state",
        "patience_exhausted", "take_epochs", "track_best", "with_validation"), "loop"),
    **dict.fromkeys(("backprop", "cross_entropy", "dropout_masks", "forward", "grad", "loss", "predict",
        "predict_proba", "value_and_grad", "with_leaves"), "model"),
    **dict.fromkeys(("ACTIVATIONS", "DERIVATIVES", "identity", "identity_derivative", "leaky_relu",
        "leaky_relu_derivative", "log_softmax", "relu", "relu_derivative", "sigmoid", "sigmoid_derivative", "softmax",
        "tanh", "tanh_derivative"), "ops"),
    **dict.fromkeys(("AdamState", "ChainState", "ClipState", "FusedOptimizer", "MomentumState", "Optimizer",
        "RmspropState", "SgdState", "adam", "adamw", "apply_updates", "chain", "clip_by_global_norm", "global_norm",
        "momentum", "rmsprop", "sgd"), "optim"),
    **dict.fromkeys(("INITS", "Dense", "init_dense", "init_mlp", "readonly"), "params"),
    **dict.fromkeys(("constant", "exponential_decay", "step_decay", "warmup_cosine"), "schedules"),
    **dict.fromkeys(("ClassScores", "class_scores", "Evaluation", "StepMetrics", "batch_xy", "evaluate",
        "make_train_step", "train_step"), "train"),
    **dict.fromkeys(("TreeDef", "pytree_class", "pytree_name", "register_pytree", "tree_allclose", "tree_flatten",
        "tree_leaves", "tree_map", "tree_unflatten"), "tree"),
}

__all__ = [
    "ACTIVATIONS", "DERIVATIVES", "INITS",
    "AdamState", "Best", "ChainState", "ClassScores", "Checkpoint", "CheckpointError", "ClipState", "Dense", "Diverged",
    "EpochMetrics", "Evaluation", "FusedOptimizer", "MomentumState", "Optimizer", "RmspropState", "SgdState",
    "StepMetrics", "TrainState", "TreeDef",
    "adam", "adamw", "apply_updates", "backprop", "batch_xy", "chain", "class_scores", "clip_by_global_norm",
    "constant",
    "cross_entropy", "dropout_masks", "early_stopping", "evaluate", "exponential_decay", "fit", "forward",
    "global_norm", "grad", "identity", "identity_derivative", "init_dense", "init_mlp", "initial_state",
    "leaky_relu", "leaky_relu_derivative", "load", "log_softmax", "loss", "make_train_step", "momentum",
    "patience_exhausted", "predict", "predict_proba", "pytree_class", "pytree_name", "readonly", "register_pytree",
    "relu", "relu_derivative", "rmsprop", "save", "sgd", "sigmoid", "sigmoid_derivative", "softmax", "step_decay",
    "take_epochs", "tanh", "tanh_derivative", "track_best", "train_step", "tree_allclose", "tree_flatten",
    "tree_leaves", "tree_map", "tree_unflatten", "value_and_grad", "warmup_cosine", "with_leaves",
    "with_validation",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'functional_nn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"functional_nn.{module}"), name)
    globals()[name] = value              # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
