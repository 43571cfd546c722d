"""The ``fnn`` application: the command line, settings, run folders, pictures and benchmarks.

It is the only code that sees both packages: it composes the core (:mod:`functional_nn`, pure functions and the
training loop) with :mod:`pipelines` (files to batches), and it owns everything with a side effect that a run
needs: flags and settings files, signals, the clock, progress output, run folders and pictures. It may import
``functional_nn``, ``pipelines`` and any third-party package (matplotlib, Pillow and tqdm lazily); nothing imports
it (import-linter contracts in ``pyproject.toml``).
"""
