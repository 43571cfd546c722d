"""``fnn sweep SPEC.toml``: train every configuration of a space with every seed, and rank them.

A trial is a pure function of (settings, seed, data location) that trains a normal run folder under ``trials/``
(pictures off) and returns a record; the executor only schedules it: a local process pool whose workers each
get ``--threads-per-worker`` BLAS threads (so workers x threads stays within the cores). The sweep folder holds
``sweep.toml`` (the spec, copied), ``trials.csv`` (one row per configuration and seed: the swept settings,
validation and test metrics, seconds, status, error), ``summary.csv`` (mean and standard deviation over seeds,
best first) and ``best.toml`` (loadable by ``fnn train --config``). A failed or diverged trial is recorded and the
sweep goes on; ``--resume SWEEP_DIR`` runs only the trials without a finished row and ends with the same table.

With ``--scheduler ADDRESS`` (an existing Dask cluster) or ``--local-cluster N`` (a ``distributed.LocalCluster``
of N worker processes) the very same trial function runs through a ``distributed.Client``; each worker resolves
its own data folder and parse cache. Not here yet (issue 12): successive halving, the pictures and
``sweep.html``, the throughput measurements and the preset searches.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from functional_nn.app.runs import atomic_write_text
from functional_nn.app.settings import UsageError
from functional_nn.app.sweep.spec import Spec, describe, read_spec, trial_settings

STATUSES = ("ok", "diverged", "failed")
FIELDS = ("trial", "config", "seed", "status", "val_accuracy", "val_loss", "test_accuracy", "test_loss",
          "seconds", "data_sha256", "error")


def _limit_threads(threads: int) -> None:
    """Worker initializer: this process's BLAS uses ``threads`` threads (threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:                    # without threadpoolctl the environment set before the start holds
        pass


def run_trial(settings: dict, out_dir: str) -> dict:
    """Train one trial into ``out_dir`` (a normal run folder) and return its record; never raises."""
    from functional_nn.app.output import Output
    from functional_nn.app.train import train_command
    from functional_nn.app.train import absolute_paths
    from pipelines.datasets import default_data_dir
    t0 = time.perf_counter()
    record = {"status": "failed", "error": ""}
    if settings["data_dir"] is None:             # this worker's own data folder and parse cache
        settings = {**settings, "data_dir": str(default_data_dir())}
    settings = absolute_paths(settings)
    try:
        quiet = Output(log="text", quiet=True, stdout=io.StringIO(), stderr=io.StringIO())
        status = train_command(settings, {}, out_dir=out_dir, resume=None, overwrite=True, given={}, plots=False,
                               output=quiet)
        record["status"] = {0: "ok", 1: "diverged"}.get(status, "failed")
        if status not in (0, 1):
            record["error"] = f"exit status {status}"
    except Exception as e:                             # noqa: BLE001 - a trial's fault is recorded, not raised
        record["error"] = " ".join(f"{type(e).__name__}: {e}".split())[:500]
    record["seconds"] = round(time.perf_counter() - t0, 3)
    run = Path(out_dir)
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        record["test_accuracy"], record["test_loss"] = metrics["test_accuracy"], metrics["test_loss"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        from functional_nn.app.runs import read_history
        rows = read_history(run / "history.csv").rows()
        last = rows[-1] if rows else {}
        record["val_accuracy"], record["val_loss"] = last.get("val_accuracy"), last.get("val_loss")
    except (OSError, ValueError):
        pass
    try:
        from functional_nn import checkpoint as ckpt
        record["data_sha256"] = json.dumps(ckpt.load(run / ("model.npz" if (run / "model.npz").exists()
                                                            else "last.npz")).meta.get("dataset_sha256"),
                                           sort_keys=True)
    except (OSError, ValueError):
        pass
    return record


CLUSTER_HINT = ("--scheduler and --local-cluster need the cluster extra (Dask distributed): "
                "python -m pip install 'functional-nn[cluster]'")


@contextlib.contextmanager
def _executor(args, workers: int):
    """(submit, completed) of the local process pool, or of a ``distributed.Client`` (``--scheduler ADDRESS`` or
    ``--local-cluster N``): the same trial function runs through either."""
    if args.scheduler or args.local_cluster:
        try:
            import distributed
        except ImportError:
            raise UsageError(CLUSTER_HINT) from None
        if args.local_cluster:
            cluster = distributed.LocalCluster(n_workers=args.local_cluster, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            client = distributed.Client(cluster)
        else:
            cluster = None
            try:
                client = distributed.Client(args.scheduler, timeout="30s")
            except OSError as e:
                raise UsageError(f"--scheduler {args.scheduler}: cannot connect ({e})") from None
        try:
            client.run(_limit_threads, args.threads_per_worker)

            def submit(fn, *a):
                return client.submit(fn, *a, pure=False)
            yield submit, lambda futures: distributed.as_completed(list(futures))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    import multiprocessing
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_limit_threads, initargs=(args.threads_per_worker,)) as pool:
        yield pool.submit, as_completed


def _trials(spec: Spec):
    for c, config in enumerate(spec.configs):
        for seed in spec.seeds:
            yield f"c{c:03d}-s{seed}", c, config, seed


def _read_rows(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("trial") and row.get("status") in STATUSES:
                rows[row["trial"]] = row
    return rows


def _write_table(path: Path, fields, rows) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def summarize(spec: Spec, rows: dict[str, dict]) -> list[dict]:
    """Per configuration: the mean and standard deviation of the metric over its finished seeds, best first."""
    out = []
    for c, config in enumerate(spec.configs):
        runs = [rows[t] for t, cc, _, _ in _trials(spec) if cc == c and t in rows]
        values = [_num(r.get(spec.metric)) for r in runs if r.get("status") == "ok"]
        values = [v for v in values if not math.isnan(v)]
        tests = [_num(r.get("test_accuracy")) for r in runs if r.get("status") == "ok"]
        mean = sum(values) / len(values) if values else math.nan
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out.append({"config": c, **{k: json.dumps(v) for k, v in config.items()}, "seeds": len(values),
                    f"{spec.metric}_mean": mean, f"{spec.metric}_std": std,
                    "test_accuracy_mean": sum(tests) / len(tests) if tests else math.nan})
    def rank(r):
        m = r[f"{spec.metric}_mean"]
        return (math.isnan(m), 0.0 if math.isnan(m) else (-m if spec.mode == "max" else m), r["config"])
    return sorted(out, key=rank)


def _toml_value(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def best_toml(spec: Spec, best: dict) -> str:
    settings = {**spec.base, **spec.configs[best["config"]]}
    lines = [f"# The best configuration of the sweep {spec.path} ({spec.metric} "
             f"{best[f'{spec.metric}_mean']:.6g} mean over {best['seeds']} seed(s)); fnn train --config this file",
             "[train]"]
    lines += [f"{k.replace('_', '-')} = {_toml_value(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


def sweep_command(args) -> int:
    """``fnn sweep SPEC.toml [--out DIR | --resume DIR] [--workers N] [--threads-per-worker T] [--dry-run]``."""
    if args.resume:
        out = Path(args.resume)
        if not (out / "sweep.toml").is_file():
            raise UsageError(f"--resume {out}: no sweep.toml there (not a sweep folder)")
        spec = read_spec(out / "sweep.toml")
    else:
        if args.spec is None:
            raise UsageError("give SPEC.toml (or --resume SWEEP_DIR)")
        spec = read_spec(args.spec)
        out = Path(args.out) if args.out else Path("sweeps") / time.strftime("%Y%m%d-%H%M%S")
    if args.local_cluster is not None and args.local_cluster < 1:
        raise UsageError(f"--local-cluster must be at least 1, got {args.local_cluster}")
    if args.scheduler or args.local_cluster:
        try:
            import distributed  # noqa: F401 - checked before the sweep folder is made
        except ImportError:
            raise UsageError(CLUSTER_HINT) from None
    cores = os.cpu_count() or 1
    workers = args.workers or max(1, cores // args.threads_per_worker)
    if workers < 1 or args.threads_per_worker < 1:
        raise UsageError("--workers and --threads-per-worker must be at least 1")
    trials = list(_trials(spec))
    if args.dry_run:
        for name, _, config, seed in trials:
            print(f"{name}: {describe(config)}, seed={seed}")
        print(f"fnn sweep: {len(spec.configs)} configuration(s) x {len(spec.seeds)} seed(s) = {len(trials)} "
              f"trials, {workers} worker(s) x {args.threads_per_worker} thread(s); nothing run", file=sys.stderr)
        return 0
    if not args.resume:
        try:
            out.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise UsageError(f"--out {out}: exists; a sweep folder is never overwritten "
                             f"(--resume {out} continues it)") from None
        shutil.copyfile(spec.path, out / "sweep.toml")
    rows = _read_rows(out / "trials.csv")
    todo = [t for t in trials if t[0] not in rows]
    print(f"fnn sweep: {out}: {len(trials)} trials, {len(todo)} to run, {workers} worker(s) x "
          f"{args.threads_per_worker} thread(s)", file=sys.stderr, flush=True)
    config_cols = sorted(spec.space)

    def row_of(name, c, config, seed, record):
        return {"trial": name, "config": c, "seed": seed, **{k: json.dumps(config[k]) for k in config_cols},
                **{k: record.get(k, "") for k in FIELDS if k not in ("trial", "config", "seed")}}

    def save():
        ordered = [rows[t[0]] for t in trials if t[0] in rows]
        _write_table(out / "trials.csv", ("trial", "config", "seed", *config_cols, *FIELDS[3:]), ordered)
    env_threads = {k: str(args.threads_per_worker) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                   "MKL_NUM_THREADS")}
    saved_env = {k: os.environ.get(k) for k in env_threads}
    os.environ.update(env_threads)              # for the workers' BLAS as they start (threadpoolctl may be absent)
    try:
        with _executor(args, workers) as (submit, completed):
            futures = {}
            for name, c, config, seed in todo:
                settings = trial_settings(spec, config, seed)
                for key in ("train", "test", "data_dir"):     # paths named in the spec: absolute, as fnn train
                    if settings[key] is not None:
                        settings[key] = os.path.abspath(settings[key])
                futures[submit(run_trial, settings, str((out / "trials" / name).resolve()))] = (name, c, config, seed)
            for future in completed(futures):
                name, c, config, seed = futures[future]
                try:
                    record = future.result()
                except Exception as e:                      # noqa: BLE001 - a lost worker: recorded as failed
                    record = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:500]}
                rows[name] = row_of(name, c, config, seed, record)
                save()
                metric = record.get(spec.metric)
                print(f"fnn sweep: {name} {record['status']} {spec.metric} "
                      f"{'-' if metric in (None, '') else format(float(metric), '.4f')} "
                      f"({record.get('seconds', 0):.1f} s) {describe(config)}", file=sys.stderr, flush=True)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    save()
    shas = {r.get("data_sha256") for r in rows.values() if r.get("data_sha256")}
    if len(shas) > 1:
        raise UsageError(f"{out}: the trials read different data (SHA-256s differ across trials)")
    summary = summarize(spec, rows)
    _write_table(out / "summary.csv", list(summary[0]), summary)
    best = summary[0]
    if not math.isnan(best[f"{spec.metric}_mean"]):
        atomic_write_text(out / "best.toml", best_toml(spec, best))
    print(f"rank  config  {spec.metric} mean (std)  test_accuracy  settings")
    for rank, r in enumerate(summary, 1):
        print(f"{rank:>4}  {r['config']:>6}  {r[f'{spec.metric}_mean']:.4f} ({r[f'{spec.metric}_std']:.4f})"
              f"  {r['test_accuracy_mean']:.4f}  {describe(spec.configs[r['config']])}")
    failed = sum(1 for r in rows.values() if r["status"] != "ok")
    print(f"fnn sweep: {out}: {len(rows)} trials, {failed} not ok; best: {out / 'best.toml'}", file=sys.stderr)
    return 0
