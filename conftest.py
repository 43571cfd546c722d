"""Test-session set-up for the whole tree (doctests included).

- Modules of optional extras are not collected as doctests when their extra is not installed.
- ``FNN_DATA_DIR`` points at one temporary folder for the session (unless the caller set it), so that no test
  writes to the user's cache folder (``~/.cache/functional-nn``); a test that needs real MNIST downloads it
  there once per session.
"""

import importlib.util
import os
import shutil
import tempfile

collect_ignore = []
if importlib.util.find_spec("sklearn") is None:
    collect_ignore.append("functional_nn/app/estimator.py")
if importlib.util.find_spec("onnx") is None:
    collect_ignore.append("functional_nn/app/export.py")

_SESSION_DATA = None


def pytest_configure(config):
    global _SESSION_DATA
    if not os.environ.get("FNN_DATA_DIR"):
        _SESSION_DATA = tempfile.mkdtemp(prefix="fnn-test-data-")
        os.environ["FNN_DATA_DIR"] = _SESSION_DATA


def pytest_unconfigure(config):
    if _SESSION_DATA is not None:
        shutil.rmtree(_SESSION_DATA, ignore_errors=True)
        os.environ.pop("FNN_DATA_DIR", None)
