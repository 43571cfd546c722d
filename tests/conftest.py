"""Test-suite options: the long fuzz run (``@pytest.mark.fuzz``) runs only when asked for with ``-m fuzz``."""

import pytest


def pytest_collection_modifyitems(config, items):
    if "fuzz" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long fuzz run: python -m pytest -m fuzz tests/pipelines/test_fuzz_readers.py")
    for item in items:
        if "fuzz" in item.keywords:
            item.add_marker(skip)
