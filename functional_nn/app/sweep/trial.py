"""One trial of a sweep: a pure function of (settings, seed, data location) that trains a run folder and returns
its record; and the rungs of successive halving, shared by the trials through a file in the sweep folder.

``run_trial`` never raises: a failure is its record's status and error. The executors (``.execute``) only
schedule it, in a local process or on a Dask worker, so everything it needs travels in its arguments.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import attrs

RUNG_FILE = "rungs.jsonl"
INTERRUPTED = (130, 143)                 # fnn train's exit status when a signal stopped it


class TrialStopped(Exception):
    """Raised by a halving trial's epoch hook: the trial is not among the best at its rung."""


@attrs.frozen
class Rungs:
    """Asynchronous successive halving (ASHA; Optuna's SuccessiveHalvingPruner): after each rung epoch a trial
    records its metric in ``path`` and goes on only when it is among the best ``1/eta`` of the values recorded at
    that rung so far (the first trials to arrive always go on: asynchronous, nobody waits for a rung to fill).

    ``path`` is a JSON-lines file in the sweep folder, appended under an exclusive ``flock``; a trial run again
    (``--resume``) keeps its first place, so it is judged against the same trials as before. With several
    workers the decisions depend on the order the trials arrive (as in ASHA itself).
    """
    path: str
    trial: str
    rungs: tuple[int, ...]
    eta: int
    metric: str
    mode: str

    def __call__(self, row: Mapping) -> None:
        epoch = int(row["epoch"])
        if epoch not in self.rungs:
            return
        value = row.get(self.metric)
        value = math.nan if value is None else float(value)
        values = self._record(epoch, value)
        if not promotable(value, values, self.eta, self.mode):
            raise TrialStopped(f"stopped at epoch {epoch} (rung {self.rungs.index(epoch)}): {self.metric} "
                               f"{value:.4f} not in the best 1/{self.eta} of {len(values)}")

    def _record(self, epoch: int, value: float) -> list[float]:
        """Record the trial's value at the rung; the values it competes with: those recorded before it (a trial
        run again on ``--resume`` keeps its place, so it is judged as it was the first time)."""
        with open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0)
                values = read_rung(f.read(), epoch)
                if self.trial not in values:
                    f.write(json.dumps({"rung_epoch": epoch, "trial": self.trial, "value": value}) + "\n")
                    f.flush()
                values[self.trial] = value
                names = list(values)
                return [values[t] for t in names[: names.index(self.trial) + 1]]
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def read_rung(text: str, epoch: int) -> dict[str, float]:
    """``trial -> value`` recorded at the rung ``epoch``, in the order the trials first arrived there (damaged
    lines skipped)."""
    values = {}
    for line in text.splitlines():
        try:
            item = json.loads(line)
            if item["rung_epoch"] == epoch:
                values[str(item["trial"])] = float(item["value"])
        except (ValueError, KeyError, TypeError):
            continue
    return values


def promotable(value: float, values: list[float], eta: int, mode: str) -> bool:
    """Whether ``value`` is among the best ``max(1, len(values) // eta)`` of ``values`` (which include it).

    >>> promotable(0.9, [0.9], 3, "max"), promotable(0.5, [0.9, 0.8, 0.5], 3, "max")
    (True, False)
    >>> promotable(0.1, [0.3, 0.1, 0.2, 0.4, 0.5, 0.6], 3, "min")
    True
    """
    if math.isnan(value):
        return False
    finite = sorted((v for v in values if not math.isnan(v)), reverse=mode == "max")
    keep = max(1, len(values) // eta)
    cut = finite[min(keep, len(finite)) - 1]
    return value >= cut if mode == "max" else value <= cut


def _limited_threads(threads: int | None):
    """This process's BLAS uses ``threads`` threads while the trial runs (threadpoolctl when installed)."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                    # without threadpoolctl the environment set before the start holds
        return contextlib.nullcontext()
    return threadpool_limits(threads)


def run_trial(settings: dict, out_dir: str, threads: int | None = None, rungs: Rungs | None = None,
              plots: bool = False) -> dict:
    """Train one trial into ``out_dir`` (a normal run folder, pictures off) and return its record; never raises.

    The record: ``status`` (ok, diverged, stopped by halving, cancelled by a signal, failed), ``error``, the last
    epoch's validation metrics, the test metrics, ``epochs`` run, ``seconds`` and the data's SHA-256s.
    """
    from functional_nn.app.malloc import tune_malloc
    from functional_nn.app.output import Output
    from functional_nn.app.train import train_command
    tune_malloc()                                # as fnn itself does: a step then costs no page faults
    t0 = time.perf_counter()
    record = {"status": "failed", "error": ""}
    settings = with_own_data_dir(settings)
    try:
        quiet = Output(log="text", quiet=True, stdout=io.StringIO(), stderr=io.StringIO())
        with _limited_threads(threads):
            status = train_command(settings, {}, out_dir=out_dir, resume=None, overwrite=True, given={},
                                   plots=plots, output=quiet, on_epoch=rungs)
        record["status"] = {0: "ok", 1: "diverged"}.get(status, "cancelled" if status in INTERRUPTED else "failed")
        if record["status"] in ("failed", "cancelled"):
            record["error"] = f"fnn train exit status {status}"
    except TrialStopped as e:
        record["status"], record["error"] = "stopped", str(e)
    except Exception as e:                             # noqa: BLE001 - a trial's fault is recorded, not raised
        record["error"] = " ".join(f"{type(e).__name__}: {e}".split())[:500]
    except KeyboardInterrupt:                          # a second signal aborted the run
        record["status"], record["error"] = "cancelled", "interrupted"
    record["seconds"] = round(time.perf_counter() - t0, 3)
    record.update(_results(Path(out_dir)))
    return record


def with_own_data_dir(settings: Mapping) -> dict:
    """The settings as this process runs them: no data folder given means this machine's own (its data and parse
    cache), and paths are absolute."""
    from functional_nn.app.train import absolute_paths
    from pipelines.datasets import default_data_dir
    if settings["data_dir"] is None:
        settings = {**settings, "data_dir": str(default_data_dir())}
    return absolute_paths(settings)


def _results(run: Path) -> dict:
    """What the run folder says of the trial (each part only when it is there and readable)."""
    found = {}
    with contextlib.suppress(OSError, ValueError):
        from functional_nn.app.runs import read_metrics
        metrics = read_metrics(run)
        found["test_accuracy"], found["test_loss"] = metrics["test_accuracy"], metrics["test_loss"]
    with contextlib.suppress(OSError, ValueError):
        from functional_nn.app.runs import read_history
        rows = read_history(run / "history.csv").rows()
        if rows:
            found["epochs_run"] = rows[-1]["epoch"]
            found["val_accuracy"], found["val_loss"] = rows[-1].get("val_accuracy"), rows[-1].get("val_loss")
    with contextlib.suppress(OSError, ValueError):
        from functional_nn import checkpoint as ckpt
        name = "model.npz" if (run / "model.npz").exists() else "last.npz"
        found["data_sha256"] = json.dumps(ckpt.load(run / name).meta.get("dataset_sha256"), sort_keys=True)
    return found


def rungs_for(out: Path, trial: str, spec, epochs: int) -> Rungs | None:
    """The halving hook of one trial (None unless the sweep's method is halving)."""
    points = spec.rungs(epochs)
    if not points:
        return None
    return Rungs(path=str(out / RUNG_FILE), trial=trial, rungs=points, eta=spec.eta, metric=spec.metric,
                 mode=spec.mode)


__all__ = ["RUNG_FILE", "Rungs", "TrialStopped", "promotable", "read_rung", "rungs_for", "run_trial",
           "with_own_data_dir"]
