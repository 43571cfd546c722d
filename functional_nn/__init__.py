"""functional_nn: the core. A pure-function MLP in NumPy: hand-written backprop over immutable pytrees.

It holds the pytrees (``tree``), parameters (``params``), activations (``ops``), the model, loss and gradient
(``model``), the optimizers (``optim``, with their arithmetic written once in ``fused``), learning-rate
``schedules``, the training step and evaluation (``train``), the training loop (``loop``: a lazy fold over epochs
that scripts compose with toolz) and model files (``checkpoint``, its only I/O). Everything public is importable
from here.

It may import numpy, attrs and toolz only: never ``pipelines``, the application (``functional_nn.app``),
argparse, matplotlib, tqdm or PIL; it prints nothing and reads no clock; randomness only from a
``numpy.random.Generator`` passed in (import-linter contracts in pyproject.toml; tests/test_layers.py).
"""

from functional_nn.checkpoint import Checkpoint, CheckpointError, load, save
from functional_nn.loop import (
    Best,
    Diverged,
    EpochMetrics,
    TrainState,
    early_stopping,
    fit,
    initial_state,
    patience_exhausted,
    take_epochs,
    track_best,
    with_validation,
)
from functional_nn.model import (
    backprop,
    cross_entropy,
    dropout_masks,
    forward,
    grad,
    loss,
    predict,
    predict_proba,
    value_and_grad,
    with_leaves,
)
from functional_nn.ops import (
    ACTIVATIONS,
    DERIVATIVES,
    identity,
    identity_derivative,
    leaky_relu,
    leaky_relu_derivative,
    log_softmax,
    relu,
    relu_derivative,
    sigmoid,
    sigmoid_derivative,
    softmax,
    tanh,
    tanh_derivative,
)
from functional_nn.optim import (
    AdamState,
    ChainState,
    ClipState,
    FusedOptimizer,
    MomentumState,
    Optimizer,
    RmspropState,
    SgdState,
    adam,
    adamw,
    apply_updates,
    chain,
    clip_by_global_norm,
    global_norm,
    momentum,
    rmsprop,
    sgd,
)
from functional_nn.params import INITS, Dense, init_dense, init_mlp, readonly
from functional_nn.schedules import constant, exponential_decay, step_decay, warmup_cosine
from functional_nn.train import Evaluation, StepMetrics, batch_xy, evaluate, make_train_step, train_step
from functional_nn.tree import (
    TreeDef,
    pytree_class,
    pytree_name,
    register_pytree,
    tree_allclose,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_unflatten,
)

__all__ = [
    "ACTIVATIONS", "DERIVATIVES", "INITS",
    "AdamState", "Best", "ChainState", "Checkpoint", "CheckpointError", "ClipState", "Dense", "Diverged",
    "EpochMetrics", "Evaluation", "FusedOptimizer", "MomentumState", "Optimizer", "RmspropState", "SgdState",
    "StepMetrics", "TrainState", "TreeDef",
    "adam", "adamw", "apply_updates", "backprop", "batch_xy", "chain", "clip_by_global_norm", "constant",
    "cross_entropy", "dropout_masks", "early_stopping", "evaluate", "exponential_decay", "fit", "forward",
    "global_norm", "grad", "identity", "identity_derivative", "init_dense", "init_mlp", "initial_state",
    "leaky_relu", "leaky_relu_derivative", "load", "log_softmax", "loss", "make_train_step", "momentum",
    "patience_exhausted", "predict", "predict_proba", "pytree_class", "pytree_name", "readonly", "register_pytree",
    "relu", "relu_derivative", "rmsprop", "save", "sgd", "sigmoid", "sigmoid_derivative", "softmax", "step_decay",
    "take_epochs", "tanh", "tanh_derivative", "track_best", "train_step", "tree_allclose", "tree_flatten",
    "tree_leaves", "tree_map", "tree_unflatten", "value_and_grad", "warmup_cosine", "with_leaves",
    "with_validation",
]
