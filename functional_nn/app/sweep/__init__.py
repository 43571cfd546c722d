"""``fnn sweep SPEC.toml``: train every configuration of a space with every seed, and rank them.

A trial is a pure function of (settings, seed, data location) that trains a normal run folder under ``trials/``
(pictures off unless ``--trial-plots``) and returns a record (``.trial``); the executor only schedules it
(``.execute``): a local process pool whose workers each get ``--threads-per-worker`` BLAS threads, or a
``distributed.Client`` (``--scheduler ADDRESS``, ``--local-cluster N``), each worker resolving its own data
folder and parse cache. The sweep folder holds ``sweep.toml`` (the spec, copied), ``trials.csv``, ``summary.csv``
and ``best.toml`` (``.tables``), ``pictures/`` and ``sweep.html`` (``.report``).

Faults: a trial that diverges, raises, or loses its worker is recorded and the sweep goes on (a local worker that
dies is replaced and its trials tried once more); SIGINT / SIGTERM stop scheduling, stop the running trials after
their batch, write the table and exit 130 / 143; ``--resume SWEEP_DIR`` runs only the unfinished trials (failed
or cancelled ones again) and ends with the table of an uninterrupted sweep; a sweep folder is never overwritten.
``method = "halving"`` stops the worst trials at rungs (asynchronous successive halving, ``.trial.Rungs``).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from pathlib import Path

from functional_nn.app.entry import SignalHandlers
from functional_nn.app.output import Output
from functional_nn.app.runs import atomic_write_text
from functional_nn.app.settings import UsageError
from functional_nn.app.sweep import tables
from functional_nn.app.sweep.execute import CLUSTER_HINT, LocalPool, Lost, executor
from functional_nn.app.sweep.spec import Spec, describe, read_spec, trial_settings
from functional_nn.app.sweep.trial import run_trial, rungs_for, with_own_data_dir
from functional_nn.app.train import absolute_paths

ATTEMPTS = 2                        # a trial whose local worker died is tried this many times in all
POLL_SECONDS = 0.25
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class _Signals(SignalHandlers):
    """SIGINT / SIGTERM while the sweep runs: the first stops scheduling (the loop cancels what runs), a second
    one cancels harder (the local workers are killed)."""

    def __init__(self):
        self.received: int | None = None
        self.count = 0

    def _handle(self, signum, frame):
        self.received = self.received or signum
        self.count += 1


def _open_sweep(args) -> tuple[Spec, Path]:
    if args.resume:
        out = Path(args.resume)
        if not (out / "sweep.toml").is_file():
            raise UsageError(f"--resume {out}: no sweep.toml there (not a sweep folder)")
        if args.spec is not None:
            raise UsageError("give SPEC.toml or --resume SWEEP_DIR, not both (a resumed sweep keeps its own spec)")
        return read_spec(out / "sweep.toml"), out
    if args.spec is None:
        raise UsageError("give SPEC.toml (or --resume SWEEP_DIR)")
    spec = read_spec(args.spec)
    return spec, Path(args.out) if args.out else Path("sweeps") / time.strftime("%Y%m%d-%H%M%S")


def _exists(out: Path) -> UsageError:
    return UsageError(f"--out {out}: exists; a sweep folder is never overwritten (--resume {out} continues it)")


def _check_flags(args) -> int:
    if args.local_cluster is not None and args.local_cluster < 1:
        raise UsageError(f"--local-cluster must be at least 1, got {args.local_cluster}")
    if args.workers < 0 or args.threads_per_worker < 1:
        raise UsageError("--workers and --threads-per-worker must be at least 1")
    if (args.scheduler or args.local_cluster) and args.workers:
        raise UsageError("--workers is for the local pool; a Dask cluster has its own workers "
                         "(--local-cluster N starts N)")
    if args.scheduler or args.local_cluster:
        try:
            import distributed  # noqa: F401 - checked before the sweep folder is made
        except ImportError:
            raise UsageError(CLUSTER_HINT) from None
    cores = os.cpu_count() or 1
    workers = args.workers or max(1, cores // args.threads_per_worker)
    if workers * args.threads_per_worker > cores:
        Output().warn(f"fnn sweep: warning: {workers} worker(s) x {args.threads_per_worker} thread(s) is more "
                      f"than the {cores} cores: the trials will compete for them")
    return workers


def _trial_line(row: dict, metric: str, config: dict, done: int, total: int) -> str:
    value = tables.number(row.get(metric))
    shown = "-" if math.isnan(value) else f"{value:.4f}"
    extra = f" ({row['error']})" if row.get("error") and row["status"] != "ok" else ""
    return (f"[{done}/{total}] {row['trial']} {row['status']} {metric} {shown} epochs {row.get('epochs_run') or '-'} "
            f"{tables.number(row.get('seconds')):.1f}s {describe(config)}{extra}")


def sweep_command(args) -> int:
    """``fnn sweep SPEC.toml [--out DIR | --resume DIR] [--workers N] [--threads-per-worker T]
    [--scheduler ADDRESS | --local-cluster N] [--dry-run] [--log text|json] [--quiet] [--no-plots]
    [--trial-plots]``; returns the exit status."""
    spec, out = _open_sweep(args)
    workers = _check_flags(args)
    output = Output(log=args.log, quiet=args.quiet)
    threads = args.threads_per_worker
    everything = list(tables.trials(spec))
    where = (f"Dask scheduler {args.scheduler}" if args.scheduler else
             f"a Dask LocalCluster of {args.local_cluster} worker(s) x {threads} thread(s)" if args.local_cluster
             else f"{workers} local worker(s) x {threads} thread(s)")
    if args.dry_run:
        for name, _, config, seed in everything:
            output.event("trial_plan", f"{name}: {describe(config)}, seed={seed}",
                         {"trial": name, "config": config, "seed": seed}, always=True)
        output.warn(f"fnn sweep: {len(spec.configs)} configuration(s) x {len(spec.seeds)} seed(s) = "
                    f"{len(everything)} trials ({spec.method}), {where}; nothing run")
        return 0
    if not args.resume and out.exists():
        raise _exists(out)
    rows = tables.read_trials(out / "trials.csv", spec) if args.resume else {}
    todo = [t for t in everything if rows.get(t[0], {}).get("status") not in tables.DONE]
    if todo and not (args.scheduler or args.local_cluster):
        _prepare_data(spec, todo, output)
    if not args.resume:
        try:
            out.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise _exists(out) from None
        shutil.copyfile(spec.path, out / "sweep.toml")
    output.event("sweep", None, {"sweep_dir": str(out), "trials": len(everything), "to_run": len(todo),
                                 "method": spec.method, "executor": where})
    output.note(f"fnn sweep: {out}: {len(everything)} trials ({spec.method}), {len(todo)} to run, {where}")

    def save():
        tables.write_table(out / "trials.csv", tables.trial_fields(spec),
                           [rows[t[0]] for t in everything if t[0] in rows])

    t0 = time.perf_counter()
    saved_env = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})   # for the BLAS of workers as they start
    bar = None
    try:
        with _Signals() as signals:
            ex = executor(workers=workers, scheduler=args.scheduler, local_cluster=args.local_cluster)
            try:
                if output.shows_progress():
                    from tqdm import tqdm
                    bar = tqdm(total=len(everything), initial=len(everything) - len(todo), desc="fnn sweep",
                               unit="trial", file=output.stderr, dynamic_ncols=True)
                _schedule(spec, out, todo, rows, ex, signals, output, bar, save, threads=threads,
                          plots=args.trial_plots, total=len(everything))
            finally:
                ex.close()
                if bar is not None:
                    bar.close()
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    save()
    seconds = time.perf_counter() - t0
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        left = sum(1 for t in everything if rows.get(t[0], {}).get("status") not in tables.DONE)
        resume = f"fnn sweep --resume {out}"
        output.event("interrupted", None, {"signal": name, "unfinished": left, "resume": resume})
        output.warn(f"fnn sweep: stopped by {name}; {left} trial(s) unfinished, the table is saved in "
                    f"{out / 'trials.csv'}. Continue with: {resume}")
        return 128 + signals.received
    return _finish(spec, out, rows, output, seconds=seconds, ran=len(todo), plots=not args.no_plots)


def _prepare_data(spec: Spec, todo, output: Output) -> None:
    """The local pool's workers share this machine's data folder: fetch and parse each dataset once, here, before
    they start (not once per worker at the same moment); a data fault is then one line before any trial runs."""
    from functional_nn.app import data as app_data
    seen = set()
    for _, _, config, seed in todo:
        settings = with_own_data_dir(trial_settings(spec, config, seed))
        key = tuple(settings[k] for k in ("dataset", "train", "test", "data_dir"))
        if key not in seen:
            seen.add(key)
            app_data.load_train_test(settings, progress=output.note)


def _schedule(spec, out, todo, rows, ex, signals, output, bar, save, *, threads, plots, total):
    """Submit the trials (at most ``ex.capacity`` in flight), record each as it ends, stop on a signal."""
    pending = list(reversed(todo))
    inflight: dict = {}
    attempts: dict[str, int] = {}
    interrupted_with = 0

    def submit(trial):
        name, c, config, seed = trial
        settings = absolute_paths(trial_settings(spec, config, seed))    # a worker's data_dir stays its own
        attempts[name] = attempts.get(name, 0) + 1
        handle = ex.submit(run_trial, settings, str((out / "trials" / name).resolve()), threads,
                           rungs_for(out.resolve(), name, spec, settings["epochs"]), plots)
        inflight[handle] = trial

    while pending or inflight:
        if signals.received is not None and signals.count > interrupted_with:
            pending.clear()                                # stop scheduling; the running trials stop after a batch
            ex.interrupt(signal.SIGKILL if interrupted_with else signals.received, list(inflight))
            interrupted_with = signals.count
        while pending and len(inflight) < ex.capacity:
            submit(pending.pop())
        for handle in ex.wait(list(inflight), POLL_SECONDS):
            trial = inflight.pop(handle)
            name, c, config, seed = trial
            record = ex.outcome(handle)
            if isinstance(record, Lost):
                if signals.received is None and attempts[name] < ATTEMPTS and isinstance(ex, LocalPool):
                    pending.append(trial)                  # its worker died (or a neighbour's did): once more
                    output.warn(f"fnn sweep: {name}: {record.error}; running it again")
                    continue
                record = {"status": "cancelled" if signals.received is not None else "failed",
                          "error": record.error}
            elif signals.received is not None and record.get("status") == "failed":
                record = {**record, "status": "cancelled"}
            row = tables.trial_row(spec, name, c, config, seed, record)
            rows[name] = row
            save()
            done = sum(1 for r in rows.values() if r["status"] in tables.DONE)
            line = _trial_line(row, spec.metric, config, done, total)
            if bar is not None:
                bar.update(1)
                if row["status"] not in ("ok", "stopped"):
                    bar.write(line, file=output.stderr)
            else:
                output.event("trial", line, {"trial": name, "config": c, "seed": seed, "settings": config,
                                             **{k: record.get(k) for k in tables.RESULT_FIELDS}})


def _finish(spec: Spec, out: Path, rows: dict, output: Output, *, seconds: float, ran: int, plots: bool) -> int:
    shas = {r.get("data_sha256") for r in rows.values() if r.get("data_sha256")}
    if len(shas) > 1:
        raise UsageError(f"{out}: the trials read different data (their SHA-256s differ: {sorted(shas)}); "
                         "every worker must see the same dataset")
    summary = tables.summarize(spec, rows)
    tables.write_table(out / "summary.csv", list(summary[0]), summary)
    best = summary[0]
    have_best = not math.isnan(best[f"{spec.metric}_mean"])
    if have_best:
        atomic_write_text(out / "best.toml", tables.best_toml(spec, best, out))
    else:
        (out / "best.toml").unlink(missing_ok=True)
    from functional_nn.app.sweep import report
    report.write(spec, out, rows, summary, seconds=seconds, ran=ran, plots=plots, output=output)
    shown = list(dict.fromkeys((spec.metric, "test_accuracy")))      # the metric once when it is test_accuracy
    lines = ["rank  config  " + "  ".join(f"{m} mean (std)" for m in shown) + "  seeds  settings"]
    lines += [f"{r['rank']:>4}  {r['config']:>6}  "
              + "  ".join(f"{r[f'{m}_mean']:.4f} ({r[f'{m}_std']:.4f})" for m in shown)
              + f"  {r['seeds']:>5}  {describe(spec.configs[r['config']])}" for r in summary]
    plain = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in summary]
    output.event("ranking", "\n".join(lines), {"ranking": plain}, always=True)
    not_ok = sum(1 for r in rows.values() if r["status"] not in ("ok", "stopped"))
    stopped = sum(1 for r in rows.values() if r["status"] == "stopped")
    rate = ran / seconds * 3600 if seconds > 0 and ran else math.nan
    output.event("done", None, {"sweep_dir": str(out), "trials": len(rows), "not_ok": not_ok, "stopped": stopped,
                                "seconds": round(seconds, 3), "best": str(out / "best.toml") if have_best else None})
    output.note(f"fnn sweep: {out}: {len(rows)} trials ({ran} run in {seconds:.1f} s, {rate:.0f} trials/hour), "
                f"{stopped} stopped by halving, {not_ok} not ok; "
                + (f"best: fnn train --config {out / 'best.toml'}" if have_best else "no trial finished"))
    return 0


__all__ = ["sweep_command"]
