"""Run the real `fnn` command in a subprocess that sends itself a signal just before its N-th training step.

The signal then lands at an exact, repeatable place, and the real handler, checkpoint and exit path run.
"""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SIGNAL_AT_STEP = """
import os, sys
import functional_nn
from functional_nn.app.cli import main
sig, at = int(sys.argv[1]), int(sys.argv[2])
make = functional_nn.make_train_step
def make_train_step(*args, **kwargs):
    step, count = make(*args, **kwargs), [0]
    def counted(*a):
        count[0] += 1
        if count[0] == at:
            os.kill(os.getpid(), sig)
        return step(*a)
    return counted
functional_nn.make_train_step = make_train_step
sys.exit(main(sys.argv[3:]))
"""


def fnn_signalled_at_step(sig: int, at: int, argv: list[str]) -> subprocess.CompletedProcess:
    """``fnn *argv`` in a subprocess that sends itself ``sig`` just before its ``at``-th training step."""
    return subprocess.run([sys.executable, "-c", SIGNAL_AT_STEP, str(int(sig)), str(at), *argv], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
