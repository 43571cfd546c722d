"""Train an MLP on MNIST by composing the library: `fnn train --early-stopping` (its defaults) without a run folder."""
import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import toolz

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
import functional_nn as fnn  # noqa: E402
from pipelines import datasets, read_arrays, stages  # noqa: E402


def batches(chunk, *, batch_size=1000, rng=None):
    """Scaled float32 batches of a uint8 chunk: shuffled by ``rng`` if given, else in order."""
    shuffle = partial(stages.shuffle, rng=rng, buffer_rows=max(65536, len(chunk.y))) if rng else toolz.identity
    return toolz.pipe(stages.from_arrays(chunk.x, chunk.y), shuffle, partial(stages.batch, batch_size=batch_size),
                      stages.scale)


def log(state):
    m = state.metrics
    print(f"Epoch {int(state.epoch)} - loss: {m.loss:.4f} - val_loss: {m.val_loss:.4f} - val_acc: {m.val_accuracy:.4f}")
    return state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, kind, default in (("--epochs", int, 10), ("--lr", float, 3e-3), ("--batch-size", int, 128),
                                ("--patience", int, 3), ("--seed", int, 0), ("--train", str, None),
                                ("--test", str, None)):
        p.add_argument(flag, type=kind, default=default)
    p.add_argument("--hidden", type=int, nargs="*", default=[256, 128])
    a = p.parse_args(argv)
    if a.train and not a.test:
        p.error("--train needs --test PATH (the held-out test set)")
    data = None if a.train else datasets.load("mnist", progress=print)
    train, val = stages.train_val_split(read_arrays(a.train) if a.train else data.train, seed=a.seed, fraction=0.1)
    steps = -(-len(train.y) // a.batch_size)                              # batches per epoch
    optimizer = fnn.adam(fnn.warmup_cosine(a.lr, warmup_steps=steps, decay_steps=max(steps * a.epochs, steps + 1)))
    params = fnn.init_mlp(np.random.default_rng(a.seed), [train.x.shape[1], *a.hidden, 10])
    final = toolz.last(toolz.pipe(
        fnn.fit(fnn.make_train_step(optimizer), fnn.initial_state(params, optimizer.init(params)),
                lambda epoch: batches(train, batch_size=a.batch_size, rng=np.random.default_rng([a.seed, epoch]))),
        partial(fnn.with_validation, batches=lambda: batches(val), n_classes=10),
        partial(fnn.track_best, monitor="val_loss"),
        partial(fnn.early_stopping, patience=a.patience),
        partial(fnn.take_epochs, a.epochs),
        partial(map, log)))
    params = final.best.params if fnn.patience_exhausted(final, a.patience) else final.params   # stopped: the best
    result = fnn.evaluate(params, batches(read_arrays(a.test) if a.test else data.test), n_classes=10)
    print(f"Test - loss: {result.loss:.4f} - acc: {result.accuracy:.4f}")
    return result


if __name__ == "__main__":
    main()
