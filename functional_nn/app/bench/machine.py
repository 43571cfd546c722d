"""What the timings ran on: the BLAS and its threads, the CPU model, the OpenBLAS environment, glibc's malloc.

An I/O edge (reads the environment, /proc/cpuinfo and the load average). Imports numpy, the standard library,
threadpoolctl when installed, and ``functional_nn.app.malloc``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from functional_nn.app.malloc import tune_malloc

OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def blas_info() -> dict[str, Any]:
    """The BLAS NumPy uses and its thread count: threadpoolctl when installed, else ``np.show_config``.

    Call it before torch or scikit-learn is imported, so that every pool threadpoolctl sees belongs to NumPy.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = pools[0]
            return {
                "name": p.get("internal_api"),
                "version": p.get("version"),
                "architecture": p.get("architecture"),
                "threading_layer": p.get("threading_layer"),
                "threads": int(p.get("num_threads") or 1),
                "source": "threadpoolctl",
            }
    config = np.show_config(mode="dicts")
    blas = config.get("Build Dependencies", {}).get("blas", {})
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return {
        "name": blas.get("name"),
        "version": blas.get("version"),
        "architecture": None,
        "threading_layer": None,
        "threads": int(threads) if threads else (os.cpu_count() or 1),
        "source": "np.show_config (threads assumed from the environment or the CPU count)",
    }


def machine_info(blas: dict[str, Any]) -> dict[str, Any]:
    """Platform, CPU, versions, ``blas``, the OpenBLAS/OpenMP variables and the load average before the run."""
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "env": {k: os.environ.get(k) for k in OPENBLAS_ENV},
        "load_before": list(os.getloadavg()),
    }


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, else ``platform.processor()``, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def set_malloc(mode: str) -> tuple[str, str | None]:
    """``mode`` "tuned": glibc's thresholds fixed as ``fnn`` fixes them; "default": left alone.

    Returns what the allocator is (for the report) and a note when "tuned" could not be applied, else None.
    """
    described = tune_malloc() if mode == "tuned" else None
    if mode == "tuned" and described is None:
        return "glibc defaults", "--malloc tuned: not glibc on Linux, allocator left as it is"
    return described or "glibc defaults", None
