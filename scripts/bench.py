#!/usr/bin/env python
"""Benchmark harness: this project's training step against the GEMM-only floor, PyTorch CPU and scikit-learn.

The harness is ``functional_nn.app.bench`` (also ``fnn bench``; its docstring says what is timed). This script runs
it on the checkout it lives in, not on an installed copy::

    python scripts/bench.py --rounds 7         # MNIST (data/**/mnist_train.csv or --data PATH)
    python scripts/bench.py --quick            # fixture data, one round: a few seconds (CI)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout, not an installed copy

from functional_nn.app.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
