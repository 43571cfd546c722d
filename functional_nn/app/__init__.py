"""The ``fnn`` application: the command line, settings, run folders, pictures and benchmarks.

It is the only code that sees both packages: it composes the core (:mod:`functional_nn`, pure functions and the
training loop) with :mod:`pipelines` (files to batches), and it owns everything with a side effect that a run
needs: flags and settings files, signals, the clock, progress output, run folders and pictures. It may import
``functional_nn``, ``pipelines`` and any third-party package (matplotlib, Pillow and tqdm lazily); nothing imports
it (import-linter contracts in ``pyproject.toml``).

Library use: ``from functional_nn.app import load_run`` (:mod:`functional_nn.app.inference`) gives a trained run
as a predictor with the run's own preprocessing. The names load on first use, so that the console script's entry
point (:mod:`functional_nn.app.entry`) imports nothing heavy before it handles signals.
"""

_EXPORTS = {"load_run": "inference", "TrainedModel": "inference"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'functional_nn.app' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"functional_nn.app.{_EXPORTS[name]}"), name)
