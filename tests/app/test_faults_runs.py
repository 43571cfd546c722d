"""Runs that cannot collide and signal and crash edges (issue 11, classes 5 and 6), as real processes where the
behaviour is a process's: the run-folder lock, unique default names, stale temporaries, a run killed before its
first checkpoint, SIGTERM after the last batch, Ctrl-C while still importing, and write errors that name the file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from functional_nn import checkpoint as ckpt
from functional_nn.app import runs
from functional_nn.app.cli import main
from functional_nn.app.lock import run_lock
from tests.app.interrupt import REPO_ROOT, fnn_signalled_at_step

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"
# 40 rows, 4 held out: 36 training rows in batches of 8 = 5 steps per epoch, 2 epochs = 10 steps
TRAIN = ["--train", str(CSV), "--test", str(CSV), "--hidden", "8", "--epochs", "2", "--batch-size", "8",
         "--no-plots", "--quiet"]


def fnn_process(argv, cwd=REPO_ROOT, **kwargs):
    """``fnn`` as the console script runs it (through its entry point), in a subprocess."""
    return subprocess.Popen([sys.executable, "-m", "functional_nn.app.entry", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def weights(run: Path, name: str = "model.npz"):
    return [np.asarray(p.w).tobytes() for p in ckpt.load(run / name).params]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(["train", *TRAIN, "--out", str(run)]) == 0
    return run


# ------------------------------------------------------------------------------------------------ the lock

HOLD = """
import sys, time
from functional_nn.app.lock import run_lock
with run_lock(sys.argv[1], "--out"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO_ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["train", *TRAIN, "--out", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"fnn train: error: --out {run}: the run folder is in use by process {holder.pid} on "
                       f"{os.uname().nodename}"]
        assert main(["train", "--resume", str(run)]) == 2
        assert f"the run folder is in use by process {holder.pid}" in capsys.readouterr().err
        assert runs.user_files(run) == []                      # nothing was written beside the holder's lock
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", *TRAIN, "--out", str(run)]) == 0     # a dead holder's lock binds nobody


def test_a_lock_file_of_garbage_or_a_folder_does_not_crash(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_bytes(b"\xff" * 10_000)              # read only when busy: a free lock just works
    assert main(["train", *TRAIN, "--out", str(run)]) == 0
    other = tmp_path / "other"
    (other / ".lock").mkdir(parents=True)
    capsys.readouterr()
    assert main(["train", *TRAIN, "--out", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(other) in err[0] and "lock file" in err[0]


def test_the_lock_names_another_process_even_when_its_file_is_garbage(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run, "--out"):
        (run / ".lock").write_bytes(b"[" * 5000)
        from functional_nn.app.settings import UsageError
        with pytest.raises(UsageError, match="in use by another process$"):
            with run_lock(run, "--out"):
                pass


def test_two_runs_started_together_on_one_folder_never_mix(tmp_path):
    run = tmp_path / "run"
    procs = [fnn_process(["train", *TRAIN, "--out", str(run), "--seed", str(seed)]) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use by process" in loser or "a run folder already exists" in loser
    seed = json.loads((run / "config.json").read_text())["seed"]
    assert ckpt.load(run / "model.npz").meta["seed"] == seed            # config and model of the same run
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] >= 0


def test_runs_without_out_started_in_the_same_second_get_their_own_folders(tmp_path):
    procs = [fnn_process(["train", *TRAIN], cwd=tmp_path) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 3 and all(runs.is_complete(f) for f in folders)


# ------------------------------------------------------------------------------------------------ crashes

def test_stale_temporaries_are_removed_on_resume_and_on_overwrite(tmp_path, straight):
    run = tmp_path / "run"
    result = fnn_signalled_at_step(signal.SIGTERM, 3, ["train", *TRAIN, "--out", str(run)])
    assert result.returncode == 143, result.stderr
    for name in (".last.npz.k1ll3d.tmp", ".history.csv.abc.tmp"):
        (run / name).write_bytes(b"\0" * 1000)                 # what a SIGKILL mid-write leaves
    (run / "notes.txt").write_text("mine")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".lock"]
    assert weights(run) == weights(straight) and (run / "notes.txt").read_text() == "mine"
    (run / ".model.npz.x.tmp").write_bytes(b"x")
    assert main(["train", *TRAIN, "--out", str(run), "--overwrite"]) == 0
    assert not (run / ".model.npz.x.tmp").exists()


@pytest.mark.parametrize("left", [["config.json"], ["config.json", "history.csv", ".last.npz.half.tmp"]])
def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(tmp_path, straight, capsys, left):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    for p in run.iterdir():                                    # as if killed before last.npz was first written
        if p.name not in left:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for name in left:
        if name.endswith(".tmp"):
            (run / name).write_bytes(b"PK\x03\x04 half a checkpoint")
    capsys.readouterr()
    assert main(["train", *TRAIN, "--out", str(run)]) == 2     # no silent overwrite: it says how to go on
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run)]) == 0
    assert "starting the run again from the beginning" in capsys.readouterr().err
    assert weights(run) == weights(straight) and not list(run.glob(".*.tmp"))


def test_sigterm_after_the_last_batch_stops_before_the_test_and_resume_finishes(tmp_path, straight):
    run = tmp_path / "run"
    result = fnn_signalled_at_step(signal.SIGTERM, 10, ["train", *TRAIN, "--out", str(run)])
    assert result.returncode == 143, result.stderr
    assert "Traceback" not in result.stderr and "after the last epoch" in result.stderr
    assert not (run / "metrics.json").exists() and not (run / "model.npz").exists()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert weights(run) == weights(straight)
    assert (json.loads((run / "metrics.json").read_text())["test_accuracy"]
            == json.loads((straight / "metrics.json").read_text())["test_accuracy"])


EARLY = """
import builtins, os, signal, sys
sig = int(sys.argv[1])
real = builtins.__import__
def landing(name, *args, **kwargs):
    if name == "numpy":                       # the signal lands while fnn is still importing
        builtins.__import__ = real
        os.kill(os.getpid(), sig)
    return real(name, *args, **kwargs)
builtins.__import__ = landing
from functional_nn.app.entry import main
sys.exit(main(["train", "--help"]))
"""


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_still_importing_exits_cleanly(sig, status):
    result = subprocess.run([sys.executable, "-c", EARLY, str(int(sig))], capture_output=True, text=True,
                            timeout=120, cwd=REPO_ROOT, check=False)
    assert result.returncode == status and result.stderr.strip() == "fnn: interrupted", result.stderr


def test_the_console_script_is_the_entry_point_that_handles_signals():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'fnn = "functional_nn.app.entry:main"' in text


def test_sigint_at_a_random_moment_never_prints_a_traceback(tmp_path):
    """Ctrl-C at several moments of a whole run, from the first tenth of a second (while NumPy is still being
    imported): always 130 (or 0 when it came after the end, or death by SIGINT while the interpreter exits) and
    one message. (Earlier, during the interpreter's
    own start-up before any of fnn's code runs, Python itself reports the interrupt.)"""
    for delay in (0.1, 0.2, 0.4, 0.8, 1.5):
        p = fnn_process(["train", *TRAIN, "--out", str(tmp_path / f"r{delay}")])
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=300)
        err = p.stderr.read()
        # -SIGINT: the signal came while the interpreter was exiting after the run (a shell shows 130 too)
        assert code in (0, 130, -signal.SIGINT) and "Traceback" not in err, (delay, code, err)


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full)
    run = tmp_path / "run"
    assert main(["train", *TRAIN, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(run / "last.npz") in err[0], err
    assert not list(run.glob(".*.tmp"))
