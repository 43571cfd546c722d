"""Training settings for the ``fnn`` command: defaults, presets, TOML files, validation.

A setting's value is resolved in this order, later winning: ``DEFAULTS``, the preset (``--preset``, or
``preset = "..."`` in the TOML file), the TOML file (``--config``), then the command-line flags. Every
function here is pure except ``read_toml``, which reads one file.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from functional_nn.app.schema import RunFileError, read_text_file
from functional_nn.params import INITS
from pipelines.datasets import DATASETS


class UsageError(ValueError):
    """A bad flag, setting or argument; the message is one line that names it. The CLI exits 2."""


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
# The hidden-layer activations the command offers, in its own order (help text, error messages): the keys of
# functional_nn.ops.ACTIVATIONS less "identity", which is the output layer's (tests/app/test_settings.py checks).
ACTIVATION_NAMES = ("relu", "leaky_relu", "tanh", "sigmoid")
# INITS (he, glorot, normal) is functional_nn.params.INITS, imported above: the core is its home.
SCHEDULES = ("constant", "cosine", "step", "exponential")
NORMALIZATIONS = ("scale", "standardize")
DTYPES = ("float32", "float64")
N_CLASSES = 10                  # every dataset the command trains on has ten classes (labels 0-9)

# Every resolved setting of a training run, as written to config.json. None means "not used".
DEFAULTS = MappingProxyType({
    "dataset": "mnist",            # a named dataset (pipelines.datasets), or None with train/test paths
    "train": None,                 # path to a training CSV / IDX file (overrides dataset)
    "test": None,                  # path to a test CSV / IDX file
    "data_dir": None,              # datasets and parse caches: None = $FNN_DATA_DIR or ~/.cache/functional-nn
    "hidden": [256, 128],          # hidden layer widths
    "activation": "relu",
    "init": "he",
    "optimizer": "adam",
    "lr": 8e-3,                    # peak learning rate
    "momentum": 0.9,               # momentum / nesterov
    "beta1": 0.9,                  # adam / adamw
    "beta2": 0.999,
    "weight_decay": 0.0,           # adamw's decoupled weight decay
    "l2": 0.0,                     # L2 penalty added to the loss (any optimizer)
    "dropout": 0.0,                # inverted dropout on hidden layers
    "clip_norm": None,             # clip gradients to this global norm
    "batch_size": 256,
    "epochs": 5,
    "lr_schedule": "cosine",
    "warmup_epochs": 0.0,          # linear warm-up from 0, in epochs (may be fractional)
    "early_stopping": False,
    "patience": 3,                 # epochs without a better validation loss before stopping
    "validation_fraction": 0.1,
    "seed": 0,
    "dtype": "float32",
    "normalize": "scale",          # scale: x / 255; standardize: per-pixel mean / std of the training split
    "augment_shift": 0,            # random shifts of up to this many pixels (28x28 images only)
    "preset": "default",
})

PRESETS = MappingProxyType({
    "default": MappingProxyType({}),
    # Wider, dropout, decoupled weight decay, random shifts of up to 2 pixels, a 30-epoch cosine schedule with one
    # epoch of warm-up at batch 256 (found by fnn sweep: configs/sweeps/best.toml, then best-refine.toml; README,
    # fnn sweep). Batch 256 makes an epoch about 1.6x cheaper than 128, so 30 epochs cost what 20 did.
    "best": MappingProxyType({
        "hidden": [1024, 512],
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "dropout": 0.2,
        "epochs": 30,
        "augment_shift": 2,
        "batch_size": 256,
        "warmup_epochs": 1.0,
    }),
})

# Settings that may be given with --resume: they do not change the computation of the epochs already
# planned (epochs may grow to train further).
RESUMABLE = frozenset({"epochs", "data_dir"})
PATH_SETTINGS = ("train", "test", "data_dir")   # file and folder paths (config.json records them absolute)

# Upper bounds that keep every value within what the arithmetic can hold (the memory a configuration needs is
# checked separately, against the machine, by functional_nn.app.resources.preflight).
MAX_LAYERS = 64                 # hidden layers
MAX_WIDTH = 1 << 24             # units per hidden layer
MAX_COUNT = 1_000_000           # epochs, patience, warm-up epochs
MAX_BATCH = 1 << 24             # rows per batch
MAX_SEED = 2 ** 63 - 1
MAX_FLOAT = 1e30                # lr, l2, weight decay, clip norm
MAX_STRING = 4096               # paths and names

_KINDS = {
    "dataset": "str?", "train": "str?", "test": "str?", "data_dir": "str?", "hidden": "ints",
    "activation": "str", "init": "str", "optimizer": "str", "lr": "float", "momentum": "float",
    "beta1": "float", "beta2": "float", "weight_decay": "float", "l2": "float", "dropout": "float",
    "clip_norm": "float?", "batch_size": "int", "epochs": "int", "lr_schedule": "str",
    "warmup_epochs": "float", "early_stopping": "bool", "patience": "int", "validation_fraction": "float",
    "seed": "int", "dtype": "str", "normalize": "str", "augment_shift": "int", "preset": "str",
}


def flag_name(key: str) -> str:
    """The command-line flag for a setting key.

    >>> flag_name("batch_size")
    '--batch-size'
    """
    return "--" + key.replace("_", "-")


def load_toml(path: str | Path, what: str) -> dict:
    """Parse a TOML file read as untrusted input (a regular UTF-8 file of at most ``schema.MAX_TEXT_BYTES``);
    ``UsageError`` starting with ``what`` (the flag or file) when it cannot be read or is not valid TOML, nesting
    too deep for the parser included."""
    try:
        text = read_text_file(path, what)
    except RunFileError as e:
        raise UsageError(str(e)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{what}: not valid TOML: {e}") from None
    except RecursionError:
        raise UsageError(f"{what}: not valid TOML: nested too deeply") from None


def read_toml(path: str | Path) -> dict:
    """Read a TOML settings file into a dict of setting keys (hyphens become underscores).

    Keys may sit at the top level or in a ``[train]`` table (not both for one key). The file must be a regular
    file (a FIFO or device is refused before it is opened) of UTF-8 text, at most ``schema.MAX_TEXT_BYTES``.
    Raises ``UsageError`` naming the file (and the key) for a missing, special, oversized, non-UTF-8 or malformed
    file, an unknown key or a value of the wrong type.
    """
    path = Path(path)
    table = dict(load_toml(path, f"--config {path}"))
    if isinstance(table.get("train"), dict):
        nested = table.pop("train")
        both = [k for k in nested if k in table]
        if both:
            raise UsageError(f"{path}: '{both[0]}' is set both at the top level and in [train]; keep one")
        table.update(nested)
    return coerce_settings(table, where=str(path))


def coerce_settings(table: Mapping, *, where: str, complete: bool = False) -> dict:
    """Type-check a mapping of setting names (hyphens or underscores) to values, as read from a file.

    Args:
        table: names to values (TOML or JSON types: str, int, float, bool, list, None).
        where: the file, for error messages (``<where>: <key>: ...``).
        complete: every setting of ``DEFAULTS`` must be present (config.json), and nothing else.

    Returns:
        the settings with underscore names; floats as float, lists as new lists.

    >>> coerce_settings({"batch-size": 64, "lr": 1}, where="c.toml")
    {'batch_size': 64, 'lr': 1.0}
    >>> coerce_settings({"lr": "fast"}, where="c.toml")
    Traceback (most recent call last):
    ...
    functional_nn.app.settings.UsageError: c.toml: lr: expected a number, got 'fast'
    """
    settings = {}
    for key, value in table.items():
        name = str(key).replace("-", "_")
        if name not in _KINDS:
            raise UsageError(f"{where}: unknown setting {str(key)[:60]!r} (known: {', '.join(sorted(_KINDS))})")
        settings[name] = _coerce(value, name, f"{where}: {key}")
    if complete:
        missing = [k for k in DEFAULTS if k not in settings]
        if missing:
            raise UsageError(f"{where}: {missing[0]}: missing")
    return settings


def _coerce(value, key: str, where: str):
    """Check a file's value against the setting's type; ints are accepted where floats are expected."""
    kind = _KINDS[key]
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and optional:
        return None
    ok = {
        "str": isinstance(value, str) and len(value) <= MAX_STRING and "\0" not in value,
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "ints": isinstance(value, list) and len(value) <= MAX_LAYERS
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }[kind]
    if not ok:
        wanted = {"str": f"a string (at most {MAX_STRING} characters, no NUL)", "float": "a number",
                  "int": "an integer", "bool": "true or false",
                  "ints": f"a list of at most {MAX_LAYERS} integers"}[kind]
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise UsageError(f"{where}: expected {wanted}{' or null' if optional else ''}, got {shown}")
    if kind == "float":
        return float(value)
    if kind == "ints":
        return list(value)
    return value


def resolve(flags: Mapping, file_settings: Mapping | None = None, *, config_path: str | None = None
            ) -> tuple[dict, dict]:
    """Merge defaults, preset, file and flags into (settings, sources).

    ``flags`` holds only the flags given on the command line. ``sources`` maps each key that did not
    come from the defaults to where it came from (``"--lr"``, ``"cfg.toml: lr"`` or ``"--preset best"``),
    for error messages.

    >>> s, src = resolve({"lr": 0.1}, {"epochs": 3, "lr": 0.5}, config_path="c.toml")
    >>> s["lr"], s["epochs"], s["batch_size"], src["lr"], src["epochs"]
    (0.1, 3, 256, '--lr', 'c.toml: epochs')
    """
    file_settings = dict(file_settings or {})
    preset = flags.get("preset", file_settings.get("preset", DEFAULTS["preset"]))
    if preset not in PRESETS:
        where = "--preset" if "preset" in flags else f"{config_path}: preset"
        raise UsageError(f"{where}: unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    settings = dict(DEFAULTS)
    settings["hidden"] = list(settings["hidden"])
    sources: dict[str, str] = {}
    for key, value in PRESETS[preset].items():
        settings[key] = list(value) if isinstance(value, list) else value
        sources[key] = f"--preset {preset}"
    for key, value in file_settings.items():
        settings[key] = list(value) if isinstance(value, list) else value
        sources[key] = f"{config_path}: {key}"
    for key, value in flags.items():
        settings[key] = list(value) if isinstance(value, list) else value
        sources[key] = flag_name(key)
    settings["preset"] = preset
    if settings.get("train") is not None and "dataset" not in flags and "dataset" not in file_settings:
        settings["dataset"] = None
    return settings, sources


# Settings that only some choices use: a value other than the default with another choice is refused (the run
# would ignore it without a word).
USED_BY = {
    "momentum": ("optimizer", ("momentum", "nesterov")),
    "beta1": ("optimizer", ("adam", "adamw")),
    "beta2": ("optimizer", ("adam", "adamw")),
    "weight_decay": ("optimizer", ("adamw",)),
    "patience": ("early_stopping", (True,)),
}


def check(settings: Mapping, sources: Mapping | None = None) -> None:
    """Raise ``UsageError`` naming the flag (or file key) of the first invalid setting.

    Every setting of ``DEFAULTS`` must be present with its type (``UsageError`` otherwise, whatever the values
    came from) and within its range; every number is bounded so that no computation with it overflows.

    >>> check(dict(DEFAULTS))
    >>> check({**DEFAULTS, "lr": 0.0})
    Traceback (most recent call last):
    ...
    functional_nn.app.settings.UsageError: --lr must be a finite number > 0, got 0.0
    """
    sources = sources or {}

    def name(key):
        return sources.get(key, flag_name(key))

    for key in DEFAULTS:
        if key not in settings:
            raise UsageError(f"{name(key)}: missing")
        _coerce(settings[key], key, name(key))

    def fail(key, what):
        raise UsageError(f"{name(key)} {what}, got {settings[key]!r}")

    def number(key, low=None, high=MAX_FLOAT, *, low_open=False, high_open=False):
        v = settings[key]
        if not math.isfinite(v):
            fail(key, "must be a finite number")
        if low is not None and (v <= low if low_open else v < low):
            fail(key, f"must be a finite number {'>' if low_open else '>='} {low:g}")
        if high is not None and (v >= high if high_open else v > high):
            fail(key, f"must be {'<' if high_open else '<='} {high:g}")

    for key, choices in (("optimizer", OPTIMIZERS), ("activation", ACTIVATION_NAMES), ("init", INITS),
                         ("lr_schedule", SCHEDULES), ("dtype", DTYPES), ("normalize", NORMALIZATIONS),
                         ("preset", tuple(PRESETS))):
        if settings[key] not in choices:
            fail(key, f"must be one of {', '.join(choices)}")
    if settings["dataset"] is not None and settings["dataset"] not in DATASETS:
        fail("dataset", f"must be one of {', '.join(DATASETS)}")
    number("lr", 0, low_open=True)
    number("momentum", 0, 1, high_open=True)
    number("beta1", 0, 1, high_open=True)
    number("beta2", 0, 1, high_open=True)
    number("weight_decay", 0)
    number("l2", 0)
    number("dropout", 0, 1, high_open=True)
    number("validation_fraction", 0, 1, high_open=True)
    number("warmup_epochs", 0, MAX_COUNT)
    if settings["clip_norm"] is not None:
        number("clip_norm", 0, low_open=True)
    for key, low, high in (("batch_size", 1, MAX_BATCH), ("epochs", 1, MAX_COUNT), ("patience", 1, MAX_COUNT),
                           ("seed", 0, MAX_SEED), ("augment_shift", 0, 8)):
        if not low <= settings[key] <= high:
            fail(key, f"must be an integer from {low} to {high}")
    if any(not 1 <= w <= MAX_WIDTH for w in settings["hidden"]):
        fail("hidden", f"widths must be integers from 1 to {MAX_WIDTH}")
    for key in PATH_SETTINGS:
        if settings[key] is not None and not settings[key]:
            fail(key, "must not be empty")
    for key, users in USED_BY.items():            # a value that the run would silently ignore is refused
        if settings[key] != DEFAULTS[key] and settings[users[0]] not in users[1]:
            if users[1] == (True,):
                raise UsageError(f"{name(key)} applies with {flag_name(users[0])} only (it is off)")
            hint = "; use --l2 for an L2 penalty" if key == "weight_decay" else ""
            raise UsageError(f"{name(key)} applies to {flag_name(users[0])} {' or '.join(users[1])} only "
                             f"(the {flag_name(users[0])[2:]} is {settings[users[0]]}{hint})")
    if settings["early_stopping"] and settings["validation_fraction"] == 0:
        raise UsageError(f"{name('early_stopping')} needs a validation split (--validation-fraction > 0)")
    if settings["train"] is None and settings["test"] is not None and settings["dataset"] is None:
        raise UsageError("--test needs --train or --dataset")
    if settings["train"] is not None and settings["test"] is None:
        raise UsageError(f"{name('train')} needs --test PATH (the held-out test set)")
    if settings["train"] is None and settings["dataset"] is None:
        raise UsageError("give --dataset NAME or --train PATH --test PATH")
