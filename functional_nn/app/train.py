"""``fnn train``: the core's training loop, with the run folder, signals, clock and output around it.

The epochs are the core's public fold and stream functions (``fit``, ``with_validation``, ``track_best``,
``early_stopping``, ``take_epochs``) composed with ``toolz.pipe``; this module adds what is the application's:
timing, checkpoints, history, the epoch lines, the progress bar and the signal handling. All randomness derives
from the seed: ``init_mlp(default_rng(seed))``, epoch ``e`` (from 1) shuffles with
``default_rng([seed, e])``, augments with ``default_rng([seed, e, 2])``, and batch ``i`` of epoch ``e``
draws its dropout masks from ``default_rng([seed, e, i, 1])``. So a run resumed from any batch
replays exactly: ``last.npz`` records the epoch, the batch within it, the optimizer state and the
running sums of the epoch, and the resumed run ends bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import attrs
import numpy as np
import toolz

import functional_nn as fnn
from functional_nn import checkpoint as ckpt
from functional_nn.app import data as _data
from functional_nn.app import runs as _runs
from functional_nn.app.evaluate import evaluation_metrics, predict_proba_batches
from functional_nn.app.optimizer import make_optimizer, make_schedule
from functional_nn.app.output import Output, epoch_line, resume_command
from functional_nn.app.entry import SignalHandlers, Terminated
from functional_nn.app.lock import run_lock
from functional_nn.app.resources import check_training_memory
from functional_nn.app.settings import (DEFAULTS, PATH_SETTINGS, RESUMABLE, UsageError, check, flag_name, read_toml,
                                        resolve)
from pipelines import datasets as pl_datasets
from pipelines import stages
from pipelines.augment import random_shift

IMAGE_SHAPE = (28, 28)


@attrs.frozen
class Resumed:
    """A run to continue: where its training stands, the time spent in a half-done epoch, the last checkpoint's
    metadata (normalization, data SHA-256) and whether only the final files are left to write."""

    state: fnn.TrainState
    seconds: float
    meta: Mapping
    finish_only: bool = False


def versions() -> dict:
    """Versions of Python, NumPy and this package, for the model's metadata."""
    try:
        own = importlib.metadata.version("functional-nn")
    except importlib.metadata.PackageNotFoundError:
        own = "source"
    return {"python": platform.python_version(), "numpy": np.__version__, "functional_nn": own}


def epoch_stream(train, settings: Mapping, norm_stage, epoch: int):
    """Normalized training batches of epoch ``epoch`` (from 1), shuffled (and shifted) as its seed says."""
    seed, shift = settings["seed"], settings["augment_shift"]
    return toolz.pipe(
        stages.from_arrays(train.x, train.y),
        partial(stages.shuffle, rng=np.random.default_rng([seed, epoch]), buffer_rows=max(65536, len(train.y))),
        partial(random_shift, rng=np.random.default_rng([seed, epoch, 2]), max_shift=shift, image_shape=IMAGE_SHAPE)
        if shift else toolz.identity,
        partial(stages.batch, batch_size=settings["batch_size"]),
        norm_stage)


def dropout_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of the dropout masks of batch ``index`` (from 0) of ``epoch`` (from 1).

    >>> float(dropout_rng(0, 1, 0).random()) == float(np.random.default_rng([0, 1, 0, 1]).random())
    True
    """
    return np.random.default_rng([seed, epoch, index, 1])


class _Signals(SignalHandlers):
    """SIGINT / SIGTERM: the first asks the loop to stop after the current batch; a second one aborts."""

    def __init__(self, out: Output):
        self.received: int | None = None
        self.out = out

    def _handle(self, signum, frame):
        if self.received is not None:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        self.received = signum
        self.out.warn(f"fnn train: {signal.Signals(signum).name} received: finishing the batch and saving "
                      "(send it again to abort without saving)")


def train_command(settings: dict, sources: Mapping, *, out_dir: str | None, resume: str | None,
                  overwrite: bool, given: Mapping, plots: bool, output: Output,
                  on_epoch: Callable[[Mapping], None] | None = None) -> int:
    """Run ``fnn train``; returns the exit status. ``given`` holds the flags from the command line.

    ``on_epoch(row)``, when given, is called with each epoch's history row once the epoch is saved (history.csv,
    last.npz); an exception it raises stops the run there and goes up to the caller (``fnn sweep``'s successive
    halving stops trials so: the folder stays a resumable run).
    The run folder is locked (:mod:`functional_nn.app.lock`) from before its first file is read or written until
    the command returns; a second writer gets a one-line error naming the holder."""
    with contextlib.ExitStack() as held:
        return _train(settings, sources, out_dir=out_dir, resume=resume, overwrite=overwrite, given=given,
                      plots=plots, output=output, held=held, on_epoch=on_epoch)


def _refuse_used_folder(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir}: exists and is not a folder")
    if run_dir.is_dir() and _runs.user_files(run_dir) and not overwrite:
        if (run_dir / "config.json").exists():
            raise UsageError(f"--out {run_dir}: a run folder already exists there; pass "
                             f"--resume {shlex.quote(str(run_dir))} to continue it or --overwrite to replace it")
        raise UsageError(f"--out {run_dir}: the folder is not empty; pass --overwrite to write into it")


def _train(settings: dict, sources: Mapping, *, out_dir: str | None, resume: str | None, overwrite: bool,
           given: Mapping, plots: bool, output: Output, held: contextlib.ExitStack,
           on_epoch: Callable[[Mapping], None] | None = None) -> int:
    if resume is not None:
        run_dir = Path(resume)
        if run_dir.is_dir():
            held.enter_context(run_lock(run_dir, "--resume"))
            _runs.remove_stale_temps(run_dir)
        settings, resumed = _resume_state(run_dir, given)
        if resumed is None:
            return 0
        if resumed is _FRESH:                       # killed before its first checkpoint: start it again here
            resumed, overwrite = None, True
            output.note(f"fnn train: {run_dir}: no checkpoint yet (stopped before its first one); "
                        "starting the run again from the beginning")
    else:
        run_dir = Path(out_dir) if out_dir else None
        if run_dir is not None:
            _refuse_used_folder(run_dir, overwrite)
        resumed = None
        settings = absolute_paths(settings)

    train_all, test, sha, data_name = _data.load_train_test(settings, progress=output.note)
    n_features = train_all.x.shape[1]
    if settings["augment_shift"] and n_features != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        raise UsageError(f"{sources.get('augment_shift', '--augment-shift')} needs 28x28 images "
                         f"(784 features), the data has {n_features}")
    if settings["validation_fraction"] > 0:
        train, val = stages.train_val_split(train_all, seed=settings["seed"],
                                            fraction=settings["validation_fraction"])
        if len(val) == 0:
            val = None
    else:
        train, val = train_all, None
    del train_all
    if len(train.y) == 0:
        raise UsageError("--validation-fraction leaves no training rows")
    classes = _data.class_names(dataset=settings["dataset"])
    sizes = [n_features, *settings["hidden"], _data.N_CLASSES]
    dtype = np.dtype(settings["dtype"])
    check_training_memory(settings, sizes, sources, rows=len(train.y), eval_batch=_data.EVAL_BATCH)  # preflight
    if resumed is not None and resumed.meta.get("dataset_sha256") != sha:
        raise UsageError(f"--resume {run_dir}: the data differs from the run's (SHA-256 mismatch)")
    norm_meta = (resumed.meta["normalization"] if resumed is not None
                 else _data.normalization_meta(settings["normalize"], train.x))
    norm_stage = _data.normalizer(norm_meta, dtype)
    base_meta = {"sizes": sizes, "activation": settings["activation"], "normalization": norm_meta,
                 "seed": settings["seed"], "dataset": data_name, "dataset_sha256": sha,
                 "versions": versions(), "classes": classes, "dtype": settings["dtype"],
                 "image_shape": list(IMAGE_SHAPE) if n_features == 784 else None}

    bs = settings["batch_size"]
    steps_per_epoch = -(-len(train.y) // bs)
    schedule = make_schedule(settings, steps_per_epoch)
    optimizer = make_optimizer(settings, schedule)
    train_step = fnn.make_train_step(optimizer, l2=settings["l2"], dropout=settings["dropout"])
    if resumed is not None:
        _check_resumed(run_dir, resumed, sizes=sizes, dtype=dtype, optimizer=optimizer,
                       steps_per_epoch=steps_per_epoch, batch_size=bs)

    with _Signals(output) as signals:
        if resumed is None:
            if run_dir is None:
                run_dir = _runs.make_run_dir()
            elif resume is None:
                run_dir.mkdir(parents=True, exist_ok=True)
            if resume is None:
                held.enter_context(run_lock(run_dir, "--out"))
                _refuse_used_folder(run_dir, overwrite)          # again, holding the lock: another run may have
                _runs.remove_stale_temps(run_dir)                # written it since the first look
            if overwrite:
                _runs.clear_run_files(run_dir)
            _runs.write_json(run_dir / "config.json", settings)
            params = fnn.init_mlp(np.random.default_rng(settings["seed"]), sizes,
                                  activation=settings["activation"], init=settings["init"], dtype=dtype)
            start, seconds = fnn.initial_state(params, optimizer.init(params)), 0.0
            history: list[dict] = []
            _runs.atomic_write_text(run_dir / "history.csv", _runs.history_text(history))
            ckpt.save(run_dir / "last.npz", params, {**base_meta, "progress": _runs.progress_meta(start)},
                      opt_state=start.opt_state)
        else:
            start, seconds = resumed.state, resumed.seconds
            epoch, batch = int(start.epoch), int(start.batch)
            history = [r for r in _runs.read_history(run_dir / "history.csv").rows() if r["epoch"] <= epoch]
            if [r["epoch"] for r in history] != list(range(1, epoch + 1)):
                raise _runs.RunFileError(f"{run_dir}: history.csv: it records {len(history)} of the {epoch} "
                                         "epochs that last.npz has trained")
            for name in ("metrics.json", "model.npz"):
                (run_dir / name).unlink(missing_ok=True)
            _runs.write_json(run_dir / "config.json", settings)
            _runs.atomic_write_text(run_dir / "history.csv", _runs.history_text(history))
            where = (f"epoch {epoch + 1}, batch {batch + 1}/{steps_per_epoch}" if batch
                     else f"the start of epoch {epoch + 1}")
            output.note(f"fnn train: {run_dir}: training had finished; writing model.npz and metrics.json"
                        if resumed.finish_only else f"fnn train: resuming {run_dir} at {where}")

        output.event("start", None, {"run_dir": str(run_dir), "config": settings, "sizes": sizes,
                                     "steps_per_epoch": steps_per_epoch})
        output.note(f"fnn train: {'-'.join(map(str, sizes))} {settings['activation']}, {settings['optimizer']} "
                    f"lr {settings['lr']:g}, {len(train.y)} training / {0 if val is None else len(val.y)} "
                    f"validation rows, run folder {run_dir}")
        if settings["warmup_epochs"] >= settings["epochs"] and settings["lr_schedule"] != "constant":
            output.note(f"fnn train: note: --warmup-epochs {settings['warmup_epochs']:g} is not shorter than "
                        f"--epochs {settings['epochs']}: the learning rate warms up for the whole run and never "
                        f"decays (--lr-schedule {settings['lr_schedule']}); pass --warmup-epochs 0 to decay it")
        if resumed is not None and resumed.finish_only:
            return _finish(run_dir, test=test, settings=settings, norm_stage=norm_stage, classes=classes,
                           plots=plots, output=output)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # NaN / inf are checked
                status = _epochs(start, seconds, history, train=train, val=val, settings=settings,
                                 norm_stage=norm_stage, train_step=train_step, schedule=schedule,
                                 steps_per_epoch=steps_per_epoch, run_dir=run_dir, base_meta=base_meta,
                                 signals=signals, output=output, on_epoch=on_epoch)
        except fnn.Diverged as e:
            after = f"after epoch {int(e.state.epoch)}" if e.state.epoch else "the initial weights"
            message = (f"{e}; training stopped. The last good checkpoint is {run_dir / 'last.npz'} ({after}). "
                       f"Try a lower --lr (it was {settings['lr']:g})")
            # the last good weights, marked: resuming is pointless
            last = _runs.read_checkpoint(run_dir / "last.npz", "last")
            ckpt.save(run_dir / "last.npz", last.params, {**last.meta, "diverged": message}, opt_state=last.opt_state)
            output.event("diverged", None, {"message": message})
            output.warn(f"fnn train: error: {message}")
            return 1
    if status is not None:
        return status
    return _finish(run_dir, test=test, settings=settings, norm_stage=norm_stage, classes=classes,
                   plots=plots, output=output)


def train_from_args(args) -> int:
    """``fnn train``: resolve the settings (defaults < preset < --config < flags), then train (or --dry-run)."""
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    file_settings = read_toml(args.config) if args.config else {}
    if args.resume is not None:
        if args.out is not None or args.overwrite:
            raise UsageError("--resume continues a run in its own folder: drop --out / --overwrite")
        if args.dry_run:
            raise UsageError("--dry-run cannot be combined with --resume")
        settings, sources = dict(DEFAULTS), {}
        given = {**file_settings, **given}
    else:
        settings, sources = resolve(given, file_settings, config_path=args.config)
        if settings["dataset"] is not None and settings["dataset"] not in pl_datasets.DATASETS:
            raise UsageError(f"{sources.get('dataset', '--dataset')}: unknown dataset '{settings['dataset']}' "
                             f"(choose from {', '.join(pl_datasets.DATASETS)})")
        check(settings, sources)
        for key in ("train", "test"):
            if settings[key] is not None and not Path(settings[key]).is_file():
                raise UsageError(f"{sources.get(key, '--' + key)} {settings[key]}: "
                                 f"{_data.missing_file(settings[key])}")
        if settings["data_dir"] is None:                   # the user cache, recorded as resolved
            settings = {**settings, "data_dir": str(pl_datasets.default_data_dir())}
        settings = absolute_paths(settings)                 # as config.json will record them
    if args.dry_run:
        print(json.dumps(settings, indent=2))
        print(f"fnn train: dry run: nothing trained; the run folder would be "
              f"{args.out or 'a new runs/<date>-<time> folder'}", file=sys.stderr)
        return 0
    output = Output(log=args.log, quiet=args.quiet)
    return train_command(settings, sources, out_dir=args.out, resume=args.resume, overwrite=args.overwrite,
                         given=given, plots=not args.no_plots, output=output)


def absolute_paths(settings: Mapping) -> dict:
    """The settings with their file and folder paths made absolute, so that config.json works from any folder.

    >>> absolute_paths({"train": None, "test": "/d/t.csv", "data_dir": "/data", "lr": 0.1})
    {'train': None, 'test': '/d/t.csv', 'data_dir': '/data', 'lr': 0.1}
    """
    return {k: (os.path.abspath(v) if k in PATH_SETTINGS and v is not None else v)
            for k, v in settings.items()}


_FRESH = object()        # _resume_state: the run has no checkpoint yet, so it starts again from the beginning


def _resume_state(run_dir: Path, given: Mapping) -> tuple[dict, Resumed | None]:
    """(settings, Resumed) of a run to resume; None for the latter when there is nothing left to do, ``_FRESH``
    when the run was stopped before its first checkpoint."""
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"--resume {run_dir}: no config.json there (not a run folder)")
    settings = _runs.read_config(run_dir)            # checked as the command line's settings are
    recorded = absolute_paths(settings)
    bad = sorted(k for k in given if k not in RESUMABLE and k not in ("config",)
                 and absolute_paths({k: given[k]})[k] != recorded.get(k))       # the same value may be repeated
    if bad:
        raise UsageError(f"{flag_name(bad[0])} cannot be changed with --resume (the run has "
                         f"{json.dumps(settings.get(bad[0]))} in {run_dir / 'config.json'}; only "
                         f"{', '.join(sorted(map(flag_name, RESUMABLE)))} may be changed)")
    settings.update(absolute_paths({k: given[k] for k in RESUMABLE if k in given}))
    check(settings, {k: flag_name(k) if k in given else f"{run_dir / 'config.json'}: {k}" for k in settings})
    if not (run_dir / "last.npz").exists() and not _runs.is_complete(run_dir):
        return settings, _FRESH                      # killed before (or while) writing its first checkpoint
    last = _runs.read_checkpoint(run_dir / "last.npz", "last")
    progress = last.meta.get("progress")
    if last.meta.get("diverged"):
        raise UsageError(f"--resume {run_dir}: this run diverged and would diverge again with the same settings; "
                         "start a new run with a lower --lr")
    if progress is None or last.opt_state is None:
        raise UsageError(f"--resume {run_dir / 'last.npz'}: not a resumable checkpoint "
                         "(no progress or optimizer state)")
    started = progress["epoch"] + (1 if progress["batch"] else 0)
    if "epochs" in given and given["epochs"] < started:   # would finish with half-trained weights
        raise UsageError(f"--epochs {given['epochs']}: the run has already trained {progress['epoch']} epochs"
                         f"{' and part of the next' if progress['batch'] else ''}; with --resume, --epochs may "
                         f"only grow (at least {started})")
    if progress["stopped_early"] or progress["epoch"] >= settings["epochs"]:
        why = "it stopped early" if progress["stopped_early"] else f"{progress['epoch']} epochs trained"
        hint = "" if progress["stopped_early"] else (f"; pass --epochs N (more than {progress['epoch']}) "
                                                     "with --resume to train further")
        if not _runs.is_complete(run_dir):         # stopped while writing the final files: finish them
            return settings, _resumed(run_dir, last, finish_only=True)
        print(f"fnn train: {run_dir} is complete ({why}){hint}", file=sys.stderr)
        return settings, None
    return settings, _resumed(run_dir, last)


def _check_resumed(run_dir: Path, resumed: Resumed, *, sizes, dtype, optimizer, steps_per_epoch: int,
                   batch_size: int) -> None:
    """RunFileError unless the saved training state fits the run's settings and data: the network's sizes and
    dtype, the optimizer state's structure, shapes and dtypes, and where the epoch stands."""
    where = f"{run_dir}: last.npz"
    state, progress = resumed.state, resumed.meta["progress"]
    if resumed.meta["sizes"] != sizes or state.params[0].w.dtype != dtype:
        raise _runs.RunFileError(f"{where}: sizes: a {'-'.join(map(str, resumed.meta['sizes']))} "
                                 f"{state.params[0].w.dtype} network, but config.json and the data make it "
                                 f"{'-'.join(map(str, sizes))} {dtype}")
    expected, expected_def = fnn.tree_flatten(optimizer.init(state.params))
    saved, saved_def = fnn.tree_flatten(state.opt_state)
    if expected_def != saved_def or ([(np.shape(a), np.asarray(a).dtype) for a in expected]
                                     != [(np.shape(a), np.asarray(a).dtype) for a in saved]):
        raise _runs.RunFileError(f"{where}: opt_state: not the state of the optimizer that config.json names")
    if state.best is not None and state.best.params is not None and (
            [(p.w.shape, p.w.dtype) for p in state.best.params] != [(p.w.shape, p.w.dtype) for p in state.params]):
        raise _runs.RunFileError(f"{run_dir}: best.npz: its network differs from last.npz's")
    rows = progress["partial"]["rows"] if progress["partial"] else 0
    if (progress["batch"] >= steps_per_epoch or progress["step"] != progress["epoch"] * steps_per_epoch
            + progress["batch"] or rows > progress["batch"] * batch_size):
        raise _runs.RunFileError(f"{where}: progress: epoch {progress['epoch']}, batch {progress['batch']}, step "
                                 f"{progress['step']} do not fit {steps_per_epoch} batches per epoch")


def _resumed(run_dir: Path, last: ckpt.Checkpoint, *, finish_only: bool = False) -> Resumed:
    """The training state saved in last.npz, with the best epoch's weights from best.npz when it has one."""
    progress = last.meta["progress"]
    best = (_runs.read_checkpoint(run_dir / "best.npz", "best").params if progress["best_value"] is not None
            else None)
    state, seconds = _runs.state_from_progress(progress, last.params, last.opt_state, best)
    return Resumed(state=state, seconds=seconds, meta=last.meta, finish_only=finish_only)


def _epochs(state: fnn.TrainState, seconds: float, history: list[dict], *, train, val, settings, norm_stage,
            train_step, schedule, steps_per_epoch, run_dir, base_meta, signals, output,
            on_epoch=None) -> int | None:
    """Train from ``state`` to the end; returns an exit status when interrupted, else None.

    ``seconds``: time already spent in the epoch ``state`` stopped in the middle of (0 at an epoch's end).
    """
    seed, epochs = settings["seed"], settings["epochs"]
    monitor = "val_loss" if val is not None else "loss"
    patience = settings["patience"] if settings["early_stopping"] else None
    batches = partial(epoch_stream, train, settings, norm_stage)
    bar = _EpochBar.on_terminal(output, steps_per_epoch, settings["epochs"], resumed_at=state)
    if bar is not None:                       # on a terminal: count the steps, show the running loss
        batches, train_step = bar.batches(batches), bar.step(train_step)
    stages_ = [
        partial(fnn.with_validation, batches=partial(_data.eval_batches, val, norm_stage), n_classes=_data.N_CLASSES)
        if val is not None else toolz.identity,
        partial(fnn.track_best, monitor=monitor),
        partial(fnn.early_stopping, patience=patience) if patience else toolz.identity,
        partial(fnn.take_epochs, epochs),
        _timed,
    ]
    states = toolz.pipe(
        fnn.fit(train_step, state, batches,
                batch_rng=partial(dropout_rng, seed) if settings["dropout"] > 0 else None,
                stop=lambda epoch, done: signals.received is not None and done < steps_per_epoch),
        *stages_)
    for state, elapsed in states:                        # fnn.Diverged goes up to train_command
        seconds += elapsed
        if state.batch:                                  # a signal stopped the epoch after this batch
            return _interrupted(state, seconds, run_dir, base_meta, signals, output, steps_per_epoch=steps_per_epoch)
        stopped_early = bool(patience) and fnn.patience_exhausted(state, patience)
        _epoch_done(state, seconds, history, settings=settings, schedule=schedule, run_dir=run_dir,
                    base_meta=base_meta, stopped_early=stopped_early, output=output)
        seconds = 0.0
        if on_epoch is not None:
            on_epoch(history[-1])
        if stopped_early:
            output.note(f"fnn train: early stopping: {monitor} has not improved for {patience} epochs; "
                        f"keeping the weights of epoch {int(state.best.epoch)}")
            break
        if signals.received is not None and state.epoch < epochs:
            return _interrupted(state, 0.0, run_dir, base_meta, signals, output, steps_per_epoch=steps_per_epoch)
    if signals.received is not None:        # after the last batch: stop before the test and the pictures
        name = signal.Signals(signals.received).name
        output.event("interrupted", None, {"signal": name, "epoch": int(state.epoch), "batch": 0,
                                           "checkpoint": str(run_dir / "last.npz"),
                                           "resume": resume_command(run_dir)})
        output.warn(f"fnn train: stopped by {name} after the last epoch; training is saved in "
                    f"{run_dir / 'last.npz'}. Write the model, metrics and pictures with: {resume_command(run_dir)}")
        return 128 + int(signals.received)
    return None


def _epoch_done(state: fnn.TrainState, seconds: float, history: list[dict], *, settings, schedule, run_dir,
                base_meta, stopped_early: bool, output) -> None:
    """An epoch's record consumed: history row, checkpoints (best.npz when it improved, last.npz), the epoch line."""
    epoch, m = int(state.epoch), state.metrics
    row = {"epoch": epoch, "loss": m.loss, "accuracy": m.accuracy, "val_loss": m.value("val_loss"),
           "val_accuracy": m.value("val_accuracy"), "lr": float(schedule(int(state.step) - 1)),
           "seconds": round(seconds, 3)}
    history.append(row)
    progress = _runs.progress_meta(state, finished=epoch == settings["epochs"] or stopped_early,
                                   stopped_early=stopped_early)
    meta = {**base_meta, "progress": progress}
    _runs.atomic_write_text(run_dir / "history.csv", _runs.history_text(history))
    if int(state.best.epoch) == epoch:
        ckpt.save(run_dir / "best.npz", state.params, {**meta, "epoch": epoch})
    ckpt.save(run_dir / "last.npz", state.params, meta, opt_state=state.opt_state)
    output.event("epoch", epoch_line(row, settings["epochs"]), row)


def _timed(states):
    """``(state, seconds)``: each record with the wall time spent computing it (in the stages before this one)."""
    states = iter(states)
    while True:
        t0 = time.perf_counter()
        try:
            state = next(states)
        except StopIteration:
            return
        yield state, time.perf_counter() - t0


class _EpochBar:
    """A progress bar per epoch on a terminal: batches done of the epoch and its running training loss."""

    def __init__(self, output: Output, steps_per_epoch: int, epochs: int, resumed_at: fnn.TrainState):
        self.output, self.steps_per_epoch, self.epochs = output, steps_per_epoch, epochs
        self.first = (int(resumed_at.epoch) + 1, int(resumed_at.batch))   # a resumed epoch starts part done
        self.bar, self.loss_sum, self.rows = None, 0.0, 0

    @classmethod
    def on_terminal(cls, output: Output, steps_per_epoch: int, epochs: int, *, resumed_at: fnn.TrainState):
        """The bar when ``output`` would show one (text log on a terminal, not quiet); else None."""
        return cls(output, steps_per_epoch, epochs, resumed_at) if output.shows_progress() else None

    def batches(self, epoch_batches):
        """``epoch -> batches`` that opens the epoch's bar when the epoch starts and closes it at its end."""
        def batches(epoch: int):
            initial = self.first[1] if epoch == self.first[0] else 0
            self.bar = self.output.progress_bar(self.steps_per_epoch, initial, f"Epoch {epoch}/{self.epochs}")
            self.loss_sum, self.rows = 0.0, 0
            try:
                yield from epoch_batches(epoch)
            finally:
                self.bar.close()
        return batches

    def step(self, train_step):
        """``train_step`` that moves the bar on and shows the running loss every 20 batches."""
        def step(params, opt_state, x, y, rng):
            result = train_step(params, opt_state, x, y, rng)
            self.loss_sum += result[2].loss * len(y)
            self.rows += len(y)
            self.bar.update(1)
            if self.bar.n % 20 == 0:
                self.bar.set_postfix(loss=f"{self.loss_sum / self.rows:.4f}", refresh=False)
            return result
        return step


def _interrupted(state: fnn.TrainState, seconds: float, run_dir, base_meta, signals, output, *,
                 steps_per_epoch) -> int:
    progress = _runs.progress_meta(state, seconds=seconds)
    ckpt.save(run_dir / "last.npz", state.params, {**base_meta, "progress": progress}, opt_state=state.opt_state)
    name = signal.Signals(signals.received).name
    epoch, batch = int(state.epoch) + 1, int(state.batch)
    where = f"epoch {epoch}, batch {batch}/{steps_per_epoch}" if batch else f"the start of epoch {epoch}"
    output.event("interrupted", None, {"signal": name, "epoch": epoch, "batch": batch,
                                       "checkpoint": str(run_dir / "last.npz"),
                                       "resume": resume_command(run_dir)})
    output.warn(f"fnn train: stopped by {name} at {where}; saved {run_dir / 'last.npz'}. "
                f"Resume with: {resume_command(run_dir)}")
    return 128 + int(signals.received)


def _finish(run_dir, *, test, settings, norm_stage, classes, plots, output) -> int:
    """Evaluate on the test set, write model.npz then metrics.json (the run is complete), draw plots."""
    last = _runs.read_checkpoint(run_dir / "last.npz", "last")
    progress = last.meta["progress"]
    chosen = _runs.read_checkpoint(run_dir / "best.npz", "best") if progress["stopped_early"] else last
    params = chosen.params
    result = fnn.evaluate(params, _data.eval_batches(test, norm_stage), n_classes=_data.N_CLASSES)
    meta = {k: v for k, v in last.meta.items() if k != "progress"}
    meta["epoch"] = chosen.meta.get("epoch", progress["epoch"])
    ckpt.save(run_dir / "model.npz", params, meta)
    metrics = {**evaluation_metrics(result), "best_epoch": int(progress["best_epoch"]), "classes": classes,
               "epochs_run": int(progress["epoch"]), "stopped_early": bool(progress["stopped_early"])}
    _runs.write_json(run_dir / "metrics.json", metrics)
    per_class = "  ".join(f"{c}: {'-' if a is None else format(a, '.4f')}"
                          for c, a in zip(classes, metrics["per_class_accuracy"]))
    output.event("test", f"Test - loss: {metrics['test_loss']:.4f} - acc: {metrics['test_accuracy']:.4f} "
                         f"({metrics['n_test']} rows)\nPer-class accuracy: {per_class}",
                 {k: metrics[k] for k in ("test_loss", "test_accuracy", "per_class_accuracy", "n_test")})
    if output.quiet and output.log == "text":
        output.event("test", f"test accuracy {metrics['test_accuracy']:.4f} - run folder {run_dir}", {},
                     always=True)
    if plots:
        _draw_report(run_dir, test=test, params=params, norm_stage=norm_stage, classes=classes, output=output)
    output.note(f"fnn train: saved {run_dir}")
    return 0


def _draw_report(run_dir, *, test, params, norm_stage, classes, output) -> bool:
    """Draw plots/ with functional_nn.app.report when the plot extra is installed; never fails the run."""
    from functional_nn.app import report
    if not report.have_plotting():
        output.warn(f"fnn train: no plots: {report.PLOT_EXTRA_HINT}")
        return False
    if test.x.shape[1] != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        output.note(f"fnn train: no plots (they need 28x28 images, the data has {test.x.shape[1]} features)")
        return False
    probs = predict_proba_batches(params, test, norm_stage)
    try:
        report.write_report(run_dir, x_test=test.x, y_test=test.y, probs=probs,
                            first_layer_w=np.asarray(params[0].w), classes=classes, image_shape=IMAGE_SHAPE)
    except (report.ReportError, ImportError) as e:
        output.warn(f"fnn train: plots not drawn: {e}")
        return False
    output.note(f"fnn train: pictures in {run_dir / 'plots'} (open report.html)")
    return True
