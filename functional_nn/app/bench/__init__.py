"""Benchmark harness (``fnn bench``): this project's training step against the GEMM-only floor, PyTorch and sklearn.

Usage::

    fnn bench                          # MNIST (data/**/mnist_train.csv or --data PATH), 5 rounds
    fnn bench --rounds 9 --json        # machine-readable output
    fnn bench --quick                  # fixture (or synthetic) data, one round: a few seconds (CI)
    python scripts/bench.py ...        # the same, on the checkout the script lives in

Everything runs in ONE process, in alternating rounds (round r: floor, fed, ours, torch, sklearn per configuration,
then the data timings), so that drift of a shared machine hits every contender alike; the report gives medians,
min-max and the ratios ours / floor, ours / fed and ours / torch. Configurations, float32, batch 128:

    (a) 784-128-64-10 ReLU, SGD lr 0.1        (b) 784-256-128-10 ReLU, Adam lr 1e-3

Rows timed per configuration, each one MNIST epoch (60000 rows, 469 steps):

- ``floor``: the 3 forward and 5 backward matrix products of every step, on preallocated random float32 operands
  (``np.matmul(..., out=...)``); nothing else. No NumPy trainer can beat it with this BLAS.
- ``fed``: the same 8 products, but the data layer's operand is each real batch of the epoch, fed as ``ours`` is
  fed and timed with it. What separates it from ``floor`` is the data: a new 400 kB batch per step that the first
  product must read (the floor's stays in cache) and the feed itself. No trainer fed this way can beat it.
- ``ours``: ``functional_nn.train.make_train_step`` over one epoch, fed as the ``fnn`` command feeds it
  (pipelines ``shuffle -> batch -> scale``: one permutation of the rows per epoch, gathered a megabyte at a time,
  batches scaled to float32 as they are drawn), all of it timed.
- ``torch``: the same network, initial weights and batch order in PyTorch CPU, ``torch.set_num_threads`` equal to
  our BLAS threads: the uint8 tensor permuted once per epoch, then plain slices scaled to float32 per batch,
  ``F.cross_entropy``, ``torch.optim.SGD`` / ``Adam``.
- ``sklearn``: ``MLPClassifier.partial_fit`` for one epoch (same sizes, solver, learning rate, batch size, no L2);
  it shuffles with its own generator and gets the whole float32 array pre-scaled (outside the timing).

Before each timed run the harness sleeps 0.15 s so that idle BLAS / OpenMP workers of the previous contender stop
spinning. Epoch times on a shared machine have outliers: compare the minima and the per-round (paired) ratios too.

Data rows: the first parse of the CSV (``pipelines.io.read_arrays`` into an empty cache) against
``np.loadtxt(dtype=np.uint8)``, and the cached reload. Finally the peak resident memory and wall time of a default
``fnn train`` in a subprocess (skipped, with a note, with ``--no-train`` or in ``--quick``).

torch and scikit-learn are peers for comparison, never dependencies: when absent they are skipped with a note.

Modules, one idea each: ``configs`` (the fixed choices), ``machine`` (BLAS, CPU, malloc), ``data`` (finding or
making the CSV, parse timings), ``feed`` (batches as ``fnn`` makes them), ``floor``, ``ours`` and ``peers`` (the
contenders), ``rounds`` (warm-up and alternating rounds), ``train_run`` (the ``fnn train`` subprocess), ``report``
(summaries, ratios, the table) and ``cli`` (arguments, errors, the run). It is part of the application: it may
import ``functional_nn``, ``pipelines`` and the rest of ``functional_nn.app``; only ``fnn bench`` and the scripts
import it.
"""

from functional_nn.app.bench.cli import main

__all__ = ["main"]
