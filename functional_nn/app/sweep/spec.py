"""The sweep file (TOML): ``[train]`` base settings, ``[sweep]`` how to search, ``[space]`` what to vary.

Every key and value is validated before anything runs, and every trial's settings are checked exactly as
``fnn train`` checks its own (one line naming the key or the trial, exit 2). A trial is a configuration and a
seed; configurations come from the grid of the space's choices (``method = "grid"``) or are drawn from it with a
seeded generator (``"random"``: lists are chosen from, ``{low, high, log}`` ranges sampled, ints staying ints).
``"halving"`` takes its configurations as random search does (with ``trials``) or as a grid (without), and stops
the worst trials early: asynchronous successive halving, with rungs at ``min_epochs * eta**k`` epochs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from functional_nn.app.settings import MAX_SEED, UsageError, _KINDS, check, coerce_settings, load_toml, resolve

METRICS = {"val_accuracy": "max", "val_loss": "min", "test_accuracy": "max", "test_loss": "min"}
SWEEP_KEYS = ("method", "trials", "seeds", "metric", "mode", "sample_seed", "min_epochs", "eta")
METHODS = ("grid", "random", "halving")
MAX_TRIALS = 10_000


@attrs.frozen
class Spec:
    base: dict                       # the [train] table, as fnn train --config reads it
    method: str
    seeds: tuple[int, ...]
    metric: str
    mode: str
    space: dict                      # setting -> ("choices", [values]) or ("range", low, high, log, is_int)
    trials: int | None
    sample_seed: int
    configs: tuple[dict, ...]        # the configurations (the swept values), in trial order
    path: str
    min_epochs: int = 1              # halving: the first rung (epochs)
    eta: int = 3                     # halving: rungs at min_epochs * eta**k; 1/eta of a rung's trials go on

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs after which a halving trial of ``epochs`` epochs may be stopped (none for other methods).

        >>> Spec(base={}, method="halving", seeds=(0,), metric="val_accuracy", mode="max", space={}, trials=None,
        ...      sample_seed=0, configs=(), path="s.toml", min_epochs=1, eta=3).rungs(20)
        (1, 3, 9)
        """
        if self.method != "halving":
            return ()
        out, r = [], self.min_epochs
        while r < epochs:
            out.append(r)
            r *= self.eta
        return tuple(out)


def _range(key: str, value: Mapping, where: str):
    extra = sorted(set(value) - {"low", "high", "log"})
    if extra:
        raise UsageError(f"{where}: unknown range field {extra[0]!r} (a range is {{ low, high, log }})")
    if "low" not in value or "high" not in value:
        raise UsageError(f"{where}: a range needs low and high")
    low, high, log = value["low"], value["high"], value.get("log", False)
    kind = _KINDS[key].rstrip("?")
    if kind not in ("int", "float") or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in (low, high)):
        raise UsageError(f"{where}: a range {{ low, high }} needs numbers and a numeric setting")
    if not isinstance(log, bool):
        raise UsageError(f"{where}: log must be true or false, got {log!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UsageError(f"{where}: low must be less than high (finite numbers), got {low!r} and {high!r}")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range needs low > 0, got {low!r}")
    is_int = kind == "int"
    if is_int and not (isinstance(low, int) and isinstance(high, int)):
        raise UsageError(f"{where}: {key} is an integer setting: low and high must be integers")
    return ("range", low, high, log, is_int)


def _int_in(value, low: int, high: int) -> bool:
    """An integer (not a bool) in [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def read_spec(path: str | Path) -> Spec:
    """Read and validate a sweep file; UsageError (one line naming the file and the key) for any fault."""
    what = f"{path}"
    raw = load_toml(path, what)
    unknown = sorted(set(raw) - {"train", "sweep", "space"})
    if unknown:
        raise UsageError(f"{what}: unknown table [{unknown[0]}] (a sweep file has [train], [sweep] and [space])")
    for table in ("train", "sweep", "space"):
        if not isinstance(raw.get(table, {}), dict):
            raise UsageError(f"{what}: {table} must be a table ([{table}])")
    base = coerce_settings(raw.get("train", {}), where=f"{what}: [train]")
    sweep = {str(k).replace("-", "_"): v for k, v in raw.get("sweep", {}).items()}
    bad = sorted(set(sweep) - set(SWEEP_KEYS))
    if bad:
        raise UsageError(f"{what}: [sweep]: unknown key {bad[0]!r} (known: {', '.join(SWEEP_KEYS)})")
    method = sweep.get("method", "grid")
    if method not in METHODS:
        raise UsageError(f"{what}: [sweep] method: must be grid, random or halving, got {method!r}")
    seeds = sweep.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or len(set(map(repr, seeds))) != len(seeds)
            or not all(_int_in(s, 0, MAX_SEED) for s in seeds)):
        raise UsageError(f"{what}: [sweep] seeds: expected a list of different integers >= 0, got {seeds!r}")
    metric = sweep.get("metric", "val_accuracy")
    if metric not in METRICS:
        raise UsageError(f"{what}: [sweep] metric: must be one of {', '.join(METRICS)}, got {metric!r}")
    mode = sweep.get("mode", METRICS[metric])
    if mode not in ("max", "min"):
        raise UsageError(f"{what}: [sweep] mode: must be max or min, got {mode!r}")
    min_epochs, eta = sweep.get("min_epochs", 1), sweep.get("eta", 3)
    if method == "halving":
        if not _int_in(min_epochs, 1, 10**6):
            raise UsageError(f"{what}: [sweep] min_epochs: expected an integer >= 1, got {min_epochs!r}")
        if not _int_in(eta, 2, 100):
            raise UsageError(f"{what}: [sweep] eta: expected an integer 2..100, got {eta!r}")
        if not metric.startswith("val_"):
            raise UsageError(f"{what}: [sweep] metric: halving compares trials each epoch, so it needs "
                             f"val_accuracy or val_loss, got {metric!r}")
    elif "min_epochs" in sweep or "eta" in sweep:
        raise UsageError(f"{what}: [sweep] {'min_epochs' if 'min_epochs' in sweep else 'eta'}: only for "
                         f"method = \"halving\"")
    trials = sweep.get("trials")
    if method == "halving" and trials is not None:
        if not _int_in(trials, 1, MAX_TRIALS):
            raise UsageError(f"{what}: [sweep] trials: expected 1..{MAX_TRIALS}, got {trials!r}")
    elif method == "random":
        if not _int_in(trials, 1, MAX_TRIALS):
            raise UsageError(f"{what}: [sweep] trials: random search needs trials = 1..{MAX_TRIALS}, got {trials!r}")
    elif trials is not None:
        raise UsageError(f"{what}: [sweep] trials: only for method = \"random\" (a grid has all its points)")
    sample_seed = sweep.get("sample_seed", 0)
    if not _int_in(sample_seed, 0, MAX_SEED):
        raise UsageError(f"{what}: [sweep] sample_seed: expected an integer >= 0, got {sample_seed!r}")
    space = {}
    for key, value in raw.get("space", {}).items():
        name = str(key).replace("-", "_")
        where = f"{what}: [space] {key}"
        if name not in _KINDS or name == "preset":
            raise UsageError(f"{where}: not a setting of fnn train")
        if name == "seed":
            raise UsageError(f"{where}: seeds are set in [sweep] seeds")
        if isinstance(value, dict):
            space[name] = _range(name, value, where)
        elif isinstance(value, list):
            if not value:
                raise UsageError(f"{where}: an empty list of choices")
            space[name] = ("choices", [coerce_settings({key: v}, where=f"{what}: [space]")[name] for v in value])
        else:
            raise UsageError(f"{where}: expected a list of choices or a range {{ low, high, log }}, got {value!r}")
    if not space:
        raise UsageError(f"{what}: [space] is empty: nothing to sweep")
    sampled = method == "random" or (method == "halving" and trials is not None)
    if not sampled and any(v[0] == "range" for v in space.values()):
        name = next(k for k, v in space.items() if v[0] == "range")
        raise UsageError(f"{what}: [space] {name}: a range needs method = \"random\" (or \"halving\" with "
                         "trials); a grid takes lists")
    configs = _configs(space, "random" if sampled else "grid", trials, sample_seed)
    if len(configs) * len(seeds) > MAX_TRIALS:
        raise UsageError(f"{what}: {len(configs)} configurations x {len(seeds)} seeds: more than {MAX_TRIALS} trials")
    spec = Spec(base=base, method=method, seeds=tuple(seeds), metric=metric, mode=mode, space=space, trials=trials,
                sample_seed=sample_seed, configs=tuple(configs), path=str(path), min_epochs=min_epochs, eta=eta)
    for config in configs:
        settings = trial_settings(spec, config, seeds[0], where=what)   # every trial checked as fnn train checks
        if method == "halving" and not settings["validation_fraction"] > 0:
            raise UsageError(f"{what}: halving compares validation metrics: the trial {describe(config)} has "
                             "validation-fraction = 0")
    return spec


def _configs(space: dict, method: str, trials: int | None, sample_seed: int) -> list[dict]:
    keys = sorted(space)
    if method == "grid":
        return [dict(zip(keys, values)) for values in itertools.product(*(space[k][1] for k in keys))]
    rng = np.random.default_rng(sample_seed)
    configs = []
    for _ in range(trials):
        config = {}
        for k in keys:
            kind = space[k]
            if kind[0] == "choices":
                config[k] = kind[1][int(rng.integers(len(kind[1])))]
            else:
                _, low, high, log, is_int = kind
                u = rng.random()
                value = (math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if log
                         else low + u * (high - low))
                config[k] = min(high, max(low, round(value))) if is_int else float(value)
        configs.append(config)
    return configs


def trial_settings(spec: Spec, config: Mapping, seed: int, *, where: str | None = None) -> dict:
    """The full settings of one trial (defaults < preset < [train] < the configuration < the seed), checked as
    fnn train checks them."""
    settings, _ = resolve({**config, "seed": seed}, spec.base)
    try:
        check(settings)
    except UsageError as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in config.items())
        raise UsageError(f"{where or spec.path}: the trial {shown}: {e}") from None
    return settings


def describe(config: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


__all__ = ["METRICS", "Spec", "describe", "read_spec", "trial_settings"]
