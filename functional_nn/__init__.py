"""functional_nn: a pure-function MLP core in NumPy (hand-written backprop, immutable pytrees)."""
