"""Test-suite options: the long fuzz run (``@pytest.mark.fuzz``) runs only when asked for with ``-m fuzz``.

Tests that interrupt an ``fnn`` subprocess with SIGINT need it to start with SIGINT at its default: a suite run in
the background (``nohup``, ``&`` in a script) inherits SIGINT ignored, passes that on across exec, and the child
then rightly ignores Ctrl-C. The suite's own process takes Python's handler back, so its children start with the
default.
"""

import signal

import pytest

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    if "fuzz" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long fuzz run: python -m pytest -m fuzz tests/pipelines/test_fuzz_readers.py")
    for item in items:
        if "fuzz" in item.keywords:
            item.add_marker(skip)
