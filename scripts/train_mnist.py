"""Train an MLP on MNIST by composing the library yourself: what `fnn train` does, minus the run folder.

    python scripts/train_mnist.py                    # the `fnn train` defaults: same split, batches, result
    python scripts/train_mnist.py --epochs 1 --train data/fixtures/mnist_test_40.csv --test data/fixtures/mnist_test_40.csv
"""
import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
from toolz import pipe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import functional_nn as fnn  # noqa: E402
from pipelines import datasets, stages  # noqa: E402
from pipelines.io import read_arrays  # noqa: E402


def batches(chunk, *, batch_size, rng=None):
    """Scaled float32 batches of a uint8 chunk: shuffled by ``rng`` if given, else in order."""
    shuffle = partial(stages.shuffle, rng=rng, buffer_rows=max(65536, len(chunk.y))) if rng else (lambda c: c)
    return pipe(stages.from_arrays(chunk.x, chunk.y), shuffle, partial(stages.batch, batch_size=batch_size),
                stages.scale)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, nargs="*", default=[256, 128])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", help="training CSV / IDX file, with --test (default: the MNIST download)")
    p.add_argument("--test", help="test CSV / IDX file (default: the MNIST download's test set)")
    args = p.parse_args(argv)
    if args.train and not args.test:
        p.error("--train needs --test PATH (the held-out test set)")

    if args.train:
        train_all = read_arrays(args.train)
    else:
        data = datasets.load("mnist", progress=print)
        train_all, test = data.train, data.test
    if args.test:
        test = read_arrays(args.test)
    train, val = stages.train_val_split(train_all, seed=args.seed, fraction=0.1)
    steps = -(-len(train.y) // args.batch_size)                          # batches per epoch
    schedule = fnn.warmup_cosine(args.lr, warmup_steps=steps, decay_steps=max(steps * args.epochs, steps + 1))
    optimizer = fnn.adam(schedule)
    train_step = fnn.make_train_step(optimizer)
    params = fnn.init_mlp(np.random.default_rng(args.seed), [train.x.shape[1], *args.hidden, 10], init="he")
    opt_state = optimizer.init(params)

    for epoch in range(1, args.epochs + 1):
        losses = []
        for b in batches(train, batch_size=args.batch_size, rng=np.random.default_rng([args.seed, epoch])):
            params, opt_state, metrics = train_step(params, opt_state, b.x, b.y, None)
            losses.append(metrics["loss"] * len(b.y))
        v = fnn.evaluate(params, batches(val, batch_size=1000), n_classes=10)
        print(f"Epoch {epoch}/{args.epochs} - loss: {sum(losses) / len(train.y):.4f} - "
              f"val_loss: {v['loss']:.4f} - val_acc: {v['accuracy']:.4f}")
    result = fnn.evaluate(params, batches(test, batch_size=1000), n_classes=10)
    print(f"Test - loss: {result['loss']:.4f} - acc: {result['accuracy']:.4f}")
    return result


if __name__ == "__main__":
    main()
