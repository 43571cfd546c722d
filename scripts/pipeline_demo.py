"""One input pipeline assembled with toolz.pipe, then the same pipeline with one stage swapped.

    python scripts/pipeline_demo.py                    # the committed 40-row MNIST fixture (offline)
    python scripts/pipeline_demo.py --dataset mnist    # real MNIST (downloads on first use, into data/)
"""

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import toolz

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from pipelines import (batch, epoch_seed_rng, fit_standardizer, from_arrays, load, read_arrays, scale,  # noqa: E402
                       shuffle, standardize, train_val_split)

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "fixtures" / "mnist_test_40.csv"


def epoch_batches(train, normalize, *, seed, epoch, batch_size):
    """The training stream of one epoch; ``normalize`` is the swappable stage. Generators are single-use:
    call this again each epoch."""
    return toolz.pipe(
        from_arrays(train.x, train.y),
        normalize,
        partial(shuffle, rng=epoch_seed_rng(seed, epoch)),
        partial(batch, batch_size=batch_size, drop_remainder=True),
    )


def describe(name, batches):
    batches = list(batches)
    x = np.concatenate([b.x for b in batches])
    print(f"{name:>12}: {len(batches)} batches of {batches[0].x.shape}, x {x.dtype} "
          f"mean {x.mean():+.3f} std {x.std():.3f}, first labels {batches[0].y[:8].tolist()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["fixture", "mnist", "fashion-mnist"], default="fixture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    if args.dataset == "fixture":
        data = read_arrays(FIXTURE)
    else:
        data = load(args.dataset, progress=print).train
    train, val = train_val_split(data, seed=args.seed, fraction=0.2, stratify=True)
    print(f"train {train.x.shape}, val {val.x.shape}")

    # Pipeline 1: scale pixels to [0, 1].
    describe("scale", epoch_batches(train, scale, seed=args.seed, epoch=0, batch_size=args.batch_size))

    # Pipeline 2: the same, with one stage swapped: standardize with statistics fitted once on train.
    stats = fit_standardizer(train)
    describe("standardize", epoch_batches(train, partial(standardize, stats=stats), seed=args.seed, epoch=0,
                                          batch_size=args.batch_size))

    # Same (seed, epoch): same order. Next epoch: a new order, replayable without running epoch 0.
    describe("epoch 1", epoch_batches(train, scale, seed=args.seed, epoch=1, batch_size=args.batch_size))


if __name__ == "__main__":
    main()
