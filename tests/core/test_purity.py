"""Purity: no public function of functional_nn modifies an argument (snapshot every leaf, call, compare)."""

import inspect

import numpy as np

import functional_nn as fnn


def writable_args():
    rng = np.random.default_rng(0)
    params = fnn.init_mlp(rng, [4, 6, 5, 3], activation="tanh")  # read-only arrays: a write would raise
    x = rng.standard_normal((7, 4), dtype=np.float32)
    return {
        "params": params,
        "tree": {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": [np.ones(3, np.float32)]},  # writable
        "other": {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": [np.ones(3, np.float32)]},
        "x": x,
        "y": rng.integers(0, 3, size=7),
        "soft": rng.dirichlet(np.ones(3), size=7).astype(np.float32),
        "masks": fnn.dropout_masks(rng, params, 7, rate=0.5),
        "z": rng.standard_normal((7, 3)).astype(np.float32),
        "confusion": rng.integers(0, 5, size=(3, 3)),
        "sizes": [4, 6, 3],
        "meta": {"sizes": [4, 6, 3], "mean": np.zeros(2, np.float32)},
    }


def calls(a, tmp_path):
    """One call of every public function on the shared arguments ``a``; returns the names called."""
    rng = np.random.default_rng(1)
    p, t, x, y = a["params"], a["tree"], a["x"], a["y"]
    called = set()

    def call(name, *args, **kwargs):
        called.add(name)
        return getattr(fnn, name)(*args, **kwargs)

    for name in ("relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax", "log_softmax"):
        call(name, a["z"])
    for name in ("relu", "leaky_relu", "sigmoid", "tanh", "identity"):
        call(f"{name}_derivative", a["z"])
    call("readonly", a["z"])
    call("Dense", a["tree"]["w"], a["tree"]["b"][0], "relu")
    call("init_mlp", rng, a["sizes"])
    call("init_dense", rng, 3, 2)
    call("forward", p, x), call("predict", p, x), call("predict_proba", p, x)
    for labels in (y, a["soft"]):
        call("loss", p, x, labels, l2=0.1, masks=a["masks"])
        call("grad", p, x, labels, l2=0.1, masks=a["masks"])
        call("value_and_grad", p, x, labels, masks=a["masks"])
    call("dropout_masks", rng, p, 7, rate=0.5)
    for labels in (y, a["soft"]):
        _, leaves, _ = call("backprop", p, x, labels, l2=0.1, masks=a["masks"], scale=-0.5)
        call("with_leaves", p, leaves)
        call("cross_entropy", a["z"], labels)
    call("batch_xy", (x, y))
    call("tree_map", lambda u, v: u + v, t, a["other"])
    leaves, treedef = call("tree_flatten", t)
    call("tree_unflatten", treedef, leaves)
    call("tree_leaves", t), call("tree_allclose", t, a["other"])
    call("register_pytree", fnn.SgdState)
    call("pytree_class", call("pytree_name", fnn.Dense))
    call("global_norm", t)
    call("apply_updates", t, a["other"])
    for name in ("constant", "step_decay", "exponential_decay", "warmup_cosine"):
        kwargs = {
            "constant": {},
            "step_decay": {"step_size": 2},
            "exponential_decay": {"decay_rate": 0.5, "transition_steps": 2},
            "warmup_cosine": {"warmup_steps": 2, "decay_steps": 5},
        }[name]
        call(name, 0.1, **kwargs)(np.int64(3))
    optimizers = {
        "sgd": (0.1,), "momentum": (0.1,), "adam": (0.1,), "adamw": (0.1,), "rmsprop": (0.1,),
        "clip_by_global_norm": (0.5,),
    }
    for name, args in optimizers.items():
        opt = call(name, *args)
        state = opt.init(t)
        _, state = opt.update(a["other"], state, t)  # a non-zero state: the next update must not touch it
        before = fnn.tree_map(np.copy, state)
        opt.update(a["other"], state, t)
        for old, new in zip(fnn.tree_leaves(before), fnn.tree_leaves(state), strict=True):
            np.testing.assert_array_equal(new, old)
    opt = call("chain", fnn.clip_by_global_norm(1.0), fnn.adam(0.1))
    opt.update(a["other"], opt.init(t), t)
    step = call("make_train_step", fnn.momentum(0.1), l2=0.01, dropout=0.3)
    step(p, fnn.momentum(0.1).init(p), x, y, rng)
    call("train_step", p, fnn.sgd(0.1).init(p), x, y, None, optimizer=fnn.sgd(0.1))
    call("evaluate", p, [(x, y), (x, a["soft"])], n_classes=3)
    call("class_scores", a["confusion"])
    optimizer = fnn.adam(0.1)
    state0 = call("initial_state", p, optimizer.init(p))
    states = call("fit", fnn.make_train_step(optimizer, dropout=0.3), state0, lambda epoch: [(x, y), (x, a["soft"])],
                  batch_rng=lambda epoch, index: np.random.default_rng([epoch, index]))
    states = call("with_validation", states, batches=[(x, y)], n_classes=3)
    states = call("track_best", states, monitor="val_loss")
    states = call("early_stopping", states, patience=1)
    last = list(call("take_epochs", 3, states))[-1]
    call("patience_exhausted", last, 1)
    stopped = list(fnn.fit(fnn.make_train_step(optimizer), last, lambda epoch: [(x, y), (x, y)],
                           stop=lambda epoch, done: done == 1))
    list(fnn.take_epochs(5, fnn.fit(fnn.make_train_step(optimizer), stopped[-1], lambda epoch: [(x, y), (x, y)])))
    call("save", tmp_path / "m.npz", p, a["meta"], opt_state=fnn.adam(0.1).init(p))
    call("load", tmp_path / "m.npz")
    return called


def test_no_public_function_modifies_its_arguments(tmp_path):
    args = writable_args()
    snapshot = fnn.tree_map(np.copy, {k: v for k, v in args.items() if k != "sizes"})  # sizes: ints, not leaves
    sizes = list(args["sizes"])
    called = calls(args, tmp_path)
    after_call = {k: v for k, v in args.items() if k != "sizes"}
    for before, after in zip(fnn.tree_leaves(snapshot), fnn.tree_leaves(after_call), strict=True):
        np.testing.assert_array_equal(after, before)
    assert args["sizes"] == sizes

    public = {
        name for name in fnn.__all__
        if callable(getattr(fnn, name)) and not (inspect.isclass(getattr(fnn, name)) and name != "Dense")
    }
    assert public <= called, f"not exercised: {sorted(public - called)}"
