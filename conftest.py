"""Doctest collection: modules of optional extras are skipped when their extra is not installed."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("sklearn") is None:
    collect_ignore.append("functional_nn/app/estimator.py")
