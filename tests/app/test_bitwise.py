"""`fnn train` ends bitwise where the code before the architecture change ended (reference hashes committed).

tests/app/bitwise_reference.json holds, per OpenBLAS kernel (the matrix products round differently on each), the
SHA-256 of the final parameters (model.npz) and of the last checkpoint's parameters and optimizer state (last.npz)
of the runs in CASES, made by running this file as a script with the code of commit adb807f:
``python tests/app/test_bitwise.py OUT.json`` (for another kernel: with OPENBLAS_CORETYPE set in that shell).
On a machine whose kernel has no reference the tests are skipped, saying so.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from functional_nn import checkpoint, tree_leaves
from tests.app.interrupt import fnn_signalled_at_step
from tests.synthetic import write_digits

try:
    from functional_nn.app.cli import main
except ImportError:                      # the code before the change, when making the reference
    from functional_nn.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("bitwise_reference.json")

# Dropout and random shifts on in every case, so the per-batch randomness must replay exactly too. The lr and
# warm-up of the defaults the references were made with (before the 5-epoch default of 2026-12-04) are explicit.
COMMON = ["--lr", "0.003", "--warmup-epochs", "1", "--hidden", "32", "16", "--epochs", "3", "--batch-size", "16",
          "--seed", "3", "--dropout", "0.2", "--augment-shift", "1"]
CASES = {
    "sgd": ["--optimizer", "sgd", "--lr", "0.05"],
    "momentum": ["--optimizer", "momentum", "--lr", "0.02"],
    "nesterov": ["--optimizer", "nesterov", "--lr", "0.02"],
    "adam": ["--optimizer", "adam"],
    "adamw": ["--optimizer", "adamw", "--weight-decay", "0.001"],
    "rmsprop": ["--optimizer", "rmsprop", "--lr", "0.001"],
    "adam-early-stopping": ["--optimizer", "adam", "--lr", "0.03", "--epochs", "12", "--early-stopping",
                            "--patience", "1"],
    "adam-clip": ["--optimizer", "adam", "--clip-norm", "0.5"],
    "sgd-standardize-tanh-f64": ["--optimizer", "sgd", "--lr", "0.05", "--normalize", "standardize", "--activation",
                                 "tanh", "--dtype", "float64", "--init", "glorot", "--lr-schedule", "step"],
    "momentum-l2-exp": ["--optimizer", "momentum", "--lr", "0.02", "--l2", "0.001", "--lr-schedule", "exponential",
                        "--warmup-epochs", "0.5"],
    "adamw-sigmoid-constant": ["--optimizer", "adamw", "--activation", "sigmoid", "--lr-schedule", "constant",
                               "--warmup-epochs", "0"],
}
STEPS_PER_EPOCH = 34   # 540 training rows (600 less 10% validation) at batch 16


def digest(leaves) -> str:
    h = hashlib.sha256()
    for a in leaves:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def summary(run: Path) -> dict:
    model, last = checkpoint.load(run / "model.npz"), checkpoint.load(run / "last.npz")
    metrics = json.loads((run / "metrics.json").read_text())
    return {"model": digest(tree_leaves(model.params)),
            "last": digest(tree_leaves(last.params) + tree_leaves(last.opt_state)),
            "test_accuracy": metrics["test_accuracy"], "epochs_run": metrics["epochs_run"],
            "stopped_early": metrics["stopped_early"]}


def train_args(files: dict, run: Path, name: str) -> list[str]:
    return ["train", "--train", str(files["train"]), "--test", str(files["test"]), "--data-dir", str(files["cache"]),
            "--out", str(run), "--no-plots", "--quiet", *COMMON, *CASES[name]]


def blas_kernel() -> str | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return next((i.get("architecture") for i in threadpool_info() if i.get("user_api") == "blas"), None)


@pytest.fixture(scope="module")
def reference():
    kernels = json.loads(REFERENCE.read_text())["kernels"]
    kernel = blas_kernel()
    if kernel not in kernels:
        pytest.skip(f"no bitwise reference for the OpenBLAS kernel {kernel!r} (have {', '.join(kernels)}); "
                    "make one with the code before the change, as this file's docstring says")
    return kernels[kernel]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bitwise")
    return {"train": write_digits(root / "train.csv", 600, 1), "test": write_digits(root / "test.csv", 100, 2),
            "cache": root / "cache"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fnn_train_ends_bitwise_where_the_code_before_the_change_ended(reference, files, tmp_path, name):
    assert main(train_args(files, tmp_path / name, name)) == 0
    assert summary(tmp_path / name) == reference[name]


@pytest.mark.parametrize("name, at", [("adam-early-stopping", STEPS_PER_EPOCH + 7), ("adamw", 2 * STEPS_PER_EPOCH - 3)])
def test_a_mid_epoch_sigint_and_resume_end_at_the_same_bits(reference, files, tmp_path, name, at):
    run = tmp_path / name
    interrupted = fnn_signalled_at_step(signal.SIGINT, at, train_args(files, run, name))
    assert interrupted.returncode == 130, interrupted.stderr
    progress = checkpoint.load(run / "last.npz").meta["progress"]
    assert (progress["epoch"], progress["batch"]) == divmod(at, STEPS_PER_EPOCH)
    resumed = subprocess.run([sys.executable, "-m", "functional_nn.app.cli", "train", "--resume", str(run)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert summary(run) == reference[name]


if __name__ == "__main__":       # make the reference with the code checked out (see the docstring)
    sys.path.insert(0, str(REPO_ROOT))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        data = {"train": write_digits(root / "train.csv", 600, 1), "test": write_digits(root / "test.csv", 100, 2),
                "cache": root / "cache"}
        result = {}
        for case in CASES:
            assert main(train_args(data, root / case, case)) == 0, case
            result[case] = summary(root / case)
    Path(sys.argv[1]).write_text(json.dumps({blas_kernel(): result}, indent=1))
