"""Peak resident memory and wall time of a default ``fnn train``, run in a subprocess from a temporary folder.

The child is ``fnn`` as this interpreter has it installed: its entry point ``functional_nn.app.cli:main``, called
by ``python -c`` (an editable install's console script can name an entry point that has since moved). It imports the
same ``functional_nn`` as this process: when that is a source checkout, the checkout goes first on its
``PYTHONPATH``. An I/O edge (subprocesses, files, the clock). Imports the standard library, ``pipelines.datasets``,
``functional_nn.app.runs`` and the bench's ``data``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import functional_nn
from functional_nn.app.bench.data import checkout_root
from functional_nn.app.runs import read_history, read_metrics
from pipelines import datasets

# Runs a command and writes its exit status and peak RSS (rusage of exactly that child, from os.wait4) to a file.
# A small interpreter of its own starts the command: a child forked straight from this process would count this
# process's resident memory (data, torch) in its ru_maxrss for the moment between fork and exec.
RSS_WRAPPER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": proc.returncode, "maxrss_kb": usage.ru_maxrss}, f)
"""


FNN = ("-c", "import sys; from functional_nn.app.cli import main; sys.exit(main())")  # the console script's call


def child_env() -> dict[str, str]:
    """This process's environment, with the checkout first on ``PYTHONPATH`` when ``functional_nn`` comes from one."""
    root = checkout_root()
    if root is None or Path(functional_nn.__file__).resolve().parents[1] != root:
        return dict(os.environ)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))


def measure_fnn_train(extra_args: Sequence[str], data_dir: Path) -> dict[str, Any]:
    """Wall time, peak RSS and test accuracy of ``fnn train --data-dir DATA_DIR`` (its run in a temporary folder)."""
    try:  # make sure the parse cache exists, so the timing is the "data already cached" case
        datasets.load("mnist", data_dir=data_dir)
        cached = True
    except Exception:  # noqa: BLE001 - any failure: fnn train reports it below, uncached
        cached = False
    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as tmp:
        log, run_dir, usage = Path(tmp) / "log.txt", Path(tmp) / "run", Path(tmp) / "usage.json"
        train = ["train", "--data-dir", str(data_dir.resolve()), "--out", str(run_dir), *extra_args]
        argv = [sys.executable, "-c", RSS_WRAPPER, str(usage), sys.executable, *FNN, *train]
        t0 = time.perf_counter()  # includes the wrapper's start (~20 ms)
        with open(log, "wb") as out:
            subprocess.run(argv, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=child_env(), check=False)
        seconds = time.perf_counter() - t0
        try:
            child = json.loads(usage.read_text())
        except (OSError, ValueError):
            child = {"returncode": None, "maxrss_kb": float("nan")}
        result = {
            "command": " ".join(["fnn", "train", "--data-dir", str(data_dir), "--out", "TMP", *extra_args]),
            "data_cached": cached,
            "returncode": child["returncode"],
            "seconds": seconds,
            "peak_rss_mb": child["maxrss_kb"] / 1024.0,  # Linux: kilobytes
            "log_tail": log.read_text(errors="replace").strip().splitlines()[-3:],
        }
        try:
            result["test_accuracy"] = read_metrics(run_dir)["test_accuracy"]
        except (OSError, ValueError):
            pass
        try:
            rows = read_history(run_dir / "history.csv").rows()
        except (OSError, ValueError):
            rows = []
        if rows:
            result["epochs"] = len(rows)
            result["epoch_seconds"] = [row.get("seconds") for row in rows]
    return result
