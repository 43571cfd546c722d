"""Shared hypothesis strategies: shapes drawn first, then arrays of those shapes (thinc's tests/strategies.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from functional_nn.ops import ACTIVATIONS

finite32 = st.floats(-30, 30, width=32)
seeds = st.integers(0, 2**32 - 1)
activations = st.sampled_from(sorted(ACTIVATIONS))

logits_2d = st.tuples(st.integers(1, 8), st.integers(1, 10)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=finite32)
)

# layer widths [n_in, 0 to 3 hidden widths, n_classes], every width in 1..16 (n_classes at least 2)
architectures = st.tuples(
    st.integers(1, 16), st.lists(st.integers(1, 16), min_size=0, max_size=3), st.integers(2, 16)
).map(lambda t: [t[0], *t[1], t[2]])
