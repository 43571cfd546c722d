"""The ``fnn`` console script's entry point: signals are handled from the process's first moment.

It imports only the standard library before installing the handlers (``import functional_nn`` is lazy), so a
Ctrl-C or SIGTERM while the command is still importing NumPy ends in the documented one-line message and exit
130 / 143, never a traceback. SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt`` that remembers its
signal, wherever ``fnn train`` does not handle it itself (it finishes the batch and saves, see ``train``).
"""

from __future__ import annotations

import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt; the command exits 143."""


class SignalHandlers:
    """While entered, SIGINT and SIGTERM call ``self._handle(signum, frame)`` (a subclass defines it); the previous
    handlers come back on exit. Only in the main thread: elsewhere (a Dask worker's thread running a sweep's
    trial) Python allows no handlers, and nothing is installed."""

    def __enter__(self):
        import threading
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        raise NotImplementedError


def _on_sigterm(signum, frame):
    raise Terminated()


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def install_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` (the main thread's next bytecode)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def main(argv: list[str] | None = None) -> int:
    """Install the SIGTERM handler, then import and run the command line (``functional_nn.app.cli.main``)."""
    install_sigterm()
    try:
        from functional_nn.app.cli import main as cli_main
    except KeyboardInterrupt as e:
        print("fnn: interrupted", file=sys.stderr)
        return exit_status(e)
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
