"""fnn sweep under faults (issue 12, item 4): a signal stops the sweep and --resume ends with the uninterrupted
table; a worker process killed mid-sweep leaves every trial finished or failed, never missing."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from functional_nn.app.cli import main
from tests.app.interrupt import REPO_ROOT

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"
# trials of a few seconds each: long enough to be caught running
SPEC = (f'[train]\ntrain = "{CSV}"\ntest = "{CSV}"\nepochs = 400\nbatch-size = 8\nhidden = [8]\n'
        '[sweep]\nseeds = [0, 1]\n[space]\nlr = [0.001, 0.01]\n')
METRICS = ("trial", "config", "seed", "lr", "status", "epochs_run", "val_accuracy", "val_loss", "test_accuracy",
           "test_loss", "data_sha256")


def table(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def metrics(rows: list[dict]) -> list[dict]:
    return [{k: r[k] for k in METRICS} for r in rows]


def start_sweep(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "functional_nn", "sweep", *argv], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_a_running_trial(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until some trial has finished an epoch (its history.csv has a row)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for history in (out / "trials").glob("*/history.csv"):
            try:
                if len(history.read_text().splitlines()) >= 2:
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("no trial started")


def pool_workers(parent: int) -> list[int]:
    """The PIDs of the spawned pool workers of ``parent`` (from /proc: children running spawn_main)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return sorted(found)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    base = tmp_path_factory.mktemp("sweep")
    spec = base / "s.toml"
    spec.write_text(SPEC, encoding="utf-8")
    assert main(["sweep", str(spec), "--out", str(base / "out"), "--workers", "2", "--no-plots"]) == 0
    rows = table(base / "out" / "trials.csv")
    assert [r["status"] for r in rows] == ["ok"] * 4
    return rows


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_sweep_and_resume_ends_with_the_uninterrupted_table(tmp_path, uninterrupted, sig):
    spec, out = tmp_path / "s.toml", tmp_path / "out"
    spec.write_text(SPEC, encoding="utf-8")
    proc = start_sweep(str(spec), "--out", str(out), "--workers", "2", "--no-plots")
    wait_for_a_running_trial(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr and f"stopped by {sig.name}" in stderr
    assert f"fnn sweep --resume {out}" in stderr
    partial = table(out / "trials.csv")
    assert partial and {r["status"] for r in partial} <= {"ok", "cancelled"}
    assert "cancelled" in {r["status"] for r in partial}
    assert not (out / "summary.csv").exists()
    assert main(["sweep", "--resume", str(out), "--no-plots"]) == 0
    assert metrics(table(out / "trials.csv")) == metrics(uninterrupted)


def test_a_worker_killed_mid_sweep_leaves_no_trial_missing_and_resume_completes_the_rest(tmp_path, uninterrupted):
    distributed = pytest.importorskip("distributed", reason="needs the cluster extra")
    spec, out = tmp_path / "s.toml", tmp_path / "out"
    spec.write_text(SPEC, encoding="utf-8")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        proc = start_sweep(str(spec), "--out", str(out), "--scheduler", cluster.scheduler_address, "--no-plots")
        wait_for_a_running_trial(out, proc)
        busy = [address for address, keys in client.processing().items() if keys]
        pids = client.run(os.getpid, workers=busy[:1])             # the PID of a worker running a trial
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        rows = table(out / "trials.csv")
        assert [r["trial"] for r in rows] == [r["trial"] for r in uninterrupted]      # none missing
        assert {r["status"] for r in rows} <= {"ok", "failed"}
        for r, expected in zip(rows, uninterrupted):
            if r["status"] == "ok":                                # rescheduled: the same result
                assert metrics([r]) == metrics([expected])
        client.wait_for_workers(2, timeout=60)                     # the nanny has started a new worker
        assert main(["sweep", "--resume", str(out), "--scheduler", cluster.scheduler_address, "--no-plots"]) == 0
    assert metrics(table(out / "trials.csv")) == metrics(uninterrupted)


def test_a_local_worker_killed_mid_sweep_runs_its_trials_again(tmp_path, uninterrupted):
    spec, out = tmp_path / "s.toml", tmp_path / "out"
    spec.write_text(SPEC, encoding="utf-8")
    proc = start_sweep(str(spec), "--out", str(out), "--workers", "2", "--no-plots")
    wait_for_a_running_trial(out, proc)
    pids = pool_workers(proc.pid)
    assert pids, "no pool worker found"
    os.kill(pids[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "running it again" in stderr and "Traceback" not in stderr
    assert metrics(table(out / "trials.csv")) == metrics(uninterrupted)
