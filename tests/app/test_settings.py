"""Settings resolution for ``fnn train`` (functional_nn.app.settings), unit by unit rather than through the CLI.

``resolve``: defaults < preset < TOML file < flags, with ``sources`` naming where each value came from;
``read_toml``: top-level keys and a ``[train]`` table, hyphens to underscores, and one-line ``UsageError`` messages
that name the file and the key; ``check``: every range, choice and cross-setting rule, drawn with hypothesis;
``flag_name``. Files go to ``tmp_path`` only.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functional_nn.app.settings import (
    ACTIVATION_NAMES,
    DEFAULTS,
    DTYPES,
    INITS,
    MAX_BATCH,
    MAX_COUNT,
    MAX_FLOAT,
    MAX_SEED,
    MAX_WIDTH,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    UsageError,
    check,
    flag_name,
    read_toml,
    resolve,
)
from functional_nn.ops import ACTIVATIONS
from functional_nn.params import INITS as CORE_INITS
from tests.strategies import valid_settings

KEYS = sorted(DEFAULTS)


def usage_error(call, *args, **kwargs) -> str:
    """The message of the UsageError that ``call(*args, **kwargs)`` raises; it must be one line."""
    with pytest.raises(UsageError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- tables shared with the core


def test_inits_is_the_core_table():
    assert INITS is CORE_INITS


def test_activation_names_are_the_core_activations_less_the_output_layers_identity():
    assert len(set(ACTIVATION_NAMES)) == len(ACTIVATION_NAMES)
    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS) - {"identity"}


# ---------------------------------------------------------------- flag_name


@pytest.mark.parametrize("key, flag", [("lr", "--lr"), ("batch_size", "--batch-size"),
                                       ("validation_fraction", "--validation-fraction")])
def test_flag_name_examples(key, flag):
    assert flag_name(key) == flag


@pytest.mark.parametrize("key", KEYS)
def test_flag_name_round_trips_every_setting_key(key):
    flag = flag_name(key)
    assert flag.startswith("--") and "_" not in flag
    assert flag[2:].replace("-", "_") == key


# ---------------------------------------------------------------- resolve


def test_resolve_with_nothing_given_is_the_defaults_and_names_no_source():
    resolved, sources = resolve({})
    assert resolved == dict(DEFAULTS)
    assert sources == {}
    assert resolved["hidden"] is not DEFAULTS["hidden"]      # a copy: the caller may not change DEFAULTS


def test_resolve_each_layer_beats_the_one_below_and_sources_say_which():
    file_settings = {"preset": "best", "epochs": 7, "lr": 0.5, "batch_size": 64}
    flags = {"lr": 0.25}
    resolved, sources = resolve(flags, file_settings, config_path="cfg.toml")
    assert (resolved["lr"], sources["lr"]) == (0.25, "--lr")                           # flag beats file
    assert (resolved["epochs"], sources["epochs"]) == (7, "cfg.toml: epochs")          # file beats preset
    assert (resolved["batch_size"], sources["batch_size"]) == (64, "cfg.toml: batch_size")
    assert (resolved["dropout"], sources["dropout"]) == (PRESETS["best"]["dropout"], "--preset best")         # preset beats defaults
    assert (resolved["hidden"], sources["hidden"]) == ([1024, 512], "--preset best")
    assert resolved["activation"] == DEFAULTS["activation"] and "activation" not in sources
    assert resolved["preset"] == "best"
    assert set(sources) == set(PRESETS["best"]) | set(file_settings) | set(flags)


def test_resolve_preset_flag_beats_the_files_preset():
    resolved, sources = resolve({"preset": "default"}, {"preset": "best"}, config_path="c.toml")
    assert resolved["preset"] == "default"
    assert resolved["hidden"] == DEFAULTS["hidden"] and "hidden" not in sources
    assert sources["preset"] == "--preset"


@pytest.mark.parametrize("flags, file_settings, where", [
    ({"preset": "huge"}, {}, "--preset"),
    ({}, {"preset": "huge"}, "c.toml: preset"),
    ({"preset": "huge"}, {"preset": "best"}, "--preset"),
])
def test_resolve_unknown_preset_names_where_it_was_given(flags, file_settings, where):
    message = usage_error(resolve, flags, file_settings, config_path="c.toml")
    assert message.startswith(f"{where}: unknown preset 'huge'")
    assert all(name in message for name in PRESETS)


@pytest.mark.parametrize("layer", ["flags", "file"])
def test_resolve_copies_lists_and_leaves_its_arguments_alone(layer):
    given = {"flags": {"epochs": 2}, "file": {"epochs": 3}}
    given[layer]["hidden"] = [8]
    resolved, _ = resolve(given["flags"], given["file"], config_path="c.toml")
    resolved["hidden"].append(99)
    assert given[layer] == {"epochs": 2 if layer == "flags" else 3, "hidden": [8]}
    best, _ = resolve({"preset": "best"})
    assert best["hidden"] == PRESETS["best"]["hidden"] and best["hidden"] is not PRESETS["best"]["hidden"]


@pytest.mark.parametrize("flags, file_settings, dataset", [
    ({"train": "a.csv", "test": "b.csv"}, {}, None),                      # a training file replaces the default
    ({}, {"train": "a.csv", "test": "b.csv"}, None),
    ({"train": "a.csv", "dataset": "fashion"}, {}, "fashion"),            # unless a dataset is given too
    ({"train": "a.csv"}, {"dataset": "fashion"}, "fashion"),
    ({}, {}, DEFAULTS["dataset"]),
])
def test_resolve_a_train_path_clears_the_default_dataset(flags, file_settings, dataset):
    resolved, _ = resolve(flags, file_settings, config_path="c.toml")
    assert resolved["dataset"] == dataset


LAYERED_KEYS = [k for k in KEYS if k not in ("preset", "train", "dataset")]


@settings(deadline=None)
@given(layers=st.dictionaries(st.sampled_from(LAYERED_KEYS), st.sets(st.sampled_from(["file", "flag"]))),
       preset=st.sampled_from(sorted(PRESETS)))
def test_resolve_the_highest_layer_that_sets_a_key_wins(layers, preset):
    file_settings = {k: f"file:{k}" for k, where in layers.items() if "file" in where}
    flags = {k: f"flag:{k}" for k, where in layers.items() if "flag" in where}
    resolved, sources = resolve({**flags, "preset": preset}, file_settings, config_path="c.toml")
    for key in LAYERED_KEYS:
        if key in flags:
            expected = (f"flag:{key}", flag_name(key))
        elif key in file_settings:
            expected = (f"file:{key}", f"c.toml: {key}")
        elif key in PRESETS[preset]:
            expected = (PRESETS[preset][key], f"--preset {preset}")
        else:
            expected = (DEFAULTS[key], None)
        assert (resolved[key], sources.get(key)) == expected, key


# ---------------------------------------------------------------- read_toml


def write(tmp_path, text: str, name: str = "cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_toml_top_level_keys_and_a_train_table_with_hyphens(tmp_path):
    path = write(tmp_path, 'preset = "best"\nlr = 1\n\n[train]\nbatch-size = 64\nhidden = [8, 4]\n'
                           'early-stopping = true\nclip_norm = 2.5\n')
    got = read_toml(path)
    assert got == {"preset": "best", "lr": 1.0, "batch_size": 64, "hidden": [8, 4], "early_stopping": True,
                   "clip_norm": 2.5}
    assert type(got["lr"]) is float                     # an integer where a number is expected becomes a float


def test_read_toml_a_top_level_train_string_is_the_training_file(tmp_path):
    assert read_toml(write(tmp_path, 'train = "a.csv"\ntest = "b.csv"\n')) == {"train": "a.csv", "test": "b.csv"}


def test_read_toml_accepts_a_str_path_and_an_empty_file(tmp_path):
    assert read_toml(str(write(tmp_path, ""))) == {}


@pytest.mark.parametrize("text, key", [("bogus-key = 1\n", "bogus-key"), ("[train]\nlearning_rate = 0.1\n",
                                                                          "learning_rate")])
def test_read_toml_unknown_key_names_the_file_and_the_key(tmp_path, text, key):
    path = write(tmp_path, text)
    message = usage_error(read_toml, path)
    assert message.startswith(f"{path}: unknown setting '{key}' (known: ")
    assert "batch_size" in message


@pytest.mark.parametrize("text, key, wanted", [
    ('epochs = "ten"\n', "epochs", "an integer"),
    ("epochs = true\n", "epochs", "an integer"),                  # a bool is not an int here
    ("epochs = 2.0\n", "epochs", "an integer"),
    ('lr = "fast"\n', "lr", "a number"),
    ("lr = false\n", "lr", "a number"),
    ("activation = 3\n", "activation", "a string (at most 4096 characters, no NUL)"),
    ("train = 3\n", "train", "a string (at most 4096 characters, no NUL) or null"),
    ('early-stopping = "yes"\n', "early-stopping", "true or false"),
    ("hidden = 128\n", "hidden", "a list of at most 64 integers"),
    ("hidden = [128, 1.5]\n", "hidden", "a list of at most 64 integers"),
    ("hidden = [true]\n", "hidden", "a list of at most 64 integers"),
    ("[train]\nbatch-size = 0.5\n", "batch-size", "an integer"),
])
def test_read_toml_wrong_type_names_the_file_and_the_key(tmp_path, text, key, wanted):
    path = write(tmp_path, text)
    message = usage_error(read_toml, path)
    assert message.startswith(f"{path}: {key}: expected {wanted}, got ")


def test_read_toml_bad_toml_names_the_flag_and_the_file(tmp_path):
    path = write(tmp_path, "lr = = 0.1\n")
    assert usage_error(read_toml, path).startswith(f"--config {path}: not valid TOML: ")


def test_read_toml_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    assert usage_error(read_toml, path) == f"--config {path} is missing"


def test_read_toml_unreadable_path(tmp_path):
    assert usage_error(read_toml, tmp_path) == f"--config {tmp_path} is a folder"


# ---------------------------------------------------------------- check

# (key, low, low_open, high, high_open): a finite number between low and high, each bound open or closed.
NUMBER_RULES = [
    ("lr", 0.0, True, MAX_FLOAT, False),
    ("momentum", 0.0, False, 1.0, True),
    ("beta1", 0.0, False, 1.0, True),
    ("beta2", 0.0, False, 1.0, True),
    ("weight_decay", 0.0, False, MAX_FLOAT, False),
    ("l2", 0.0, False, MAX_FLOAT, False),
    ("dropout", 0.0, False, 1.0, True),
    ("validation_fraction", 0.0, False, 1.0, True),
    ("warmup_epochs", 0.0, False, MAX_COUNT, False),
    ("clip_norm", 0.0, True, MAX_FLOAT, False),                  # or None: no clipping
]
INTEGER_RULES = [("batch_size", 1, MAX_BATCH), ("epochs", 1, MAX_COUNT), ("patience", 1, MAX_COUNT),
                 ("seed", 0, MAX_SEED), ("augment_shift", 0, 8)]
CHOICES = {"optimizer": OPTIMIZERS, "activation": ACTIVATION_NAMES, "init": INITS, "lr_schedule": SCHEDULES,
           "dtype": DTYPES, "normalize": NORMALIZATIONS}


@st.composite
def bad_numbers(draw):
    """(key, value) with value outside the key's range: NaN, an infinity, below its low or at/above its high."""
    key, low, low_open, high, high_open = draw(st.sampled_from(NUMBER_RULES))
    below = st.floats(max_value=low, exclude_max=not low_open, allow_nan=False)        # includes -inf
    above = st.floats(min_value=high, exclude_min=not high_open, allow_nan=False)      # includes +inf
    return key, draw(below | above | st.just(math.nan))


@settings(deadline=None)
@given(valid_settings())
def test_check_accepts_every_valid_settings(s):
    check(s)
    check(s, {key: f"c.toml: {key}" for key in s})


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_check_accepts_the_defaults_under_every_preset(preset):
    check(*resolve({"preset": preset}))


@settings(deadline=None)
@given(valid_settings(), bad_numbers())
def test_check_rejects_an_out_of_range_number_naming_its_flag(s, bad):
    key, value = bad
    message = usage_error(check, {**s, key: value})
    assert message.startswith(f"{flag_name(key)} must be ")
    assert message.endswith(f", got {value!r}")


@settings(deadline=None)
@given(valid_settings(), bad_numbers())
def test_check_names_the_file_key_when_the_value_came_from_a_file(s, bad):
    key, value = bad
    message = usage_error(check, {**s, key: value}, {key: f"cfg.toml: {key}"})
    assert message.startswith(f"cfg.toml: {key} must be ")


@settings(deadline=None)
@given(valid_settings(), st.sampled_from(INTEGER_RULES), st.data())
def test_check_rejects_an_out_of_range_integer_naming_its_flag(s, rule, data):
    key, low, high = rule
    value = data.draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))
    message = usage_error(check, {**s, key: value})
    assert message.startswith(f"{flag_name(key)} must be ")
    assert message.endswith(f", got {value!r}")


@settings(deadline=None)
@given(valid_settings(), st.sampled_from(sorted(CHOICES)), st.text(st.characters(exclude_characters="\0"), max_size=8))
def test_check_rejects_an_unknown_choice_naming_its_flag(s, key, value):
    choices = CHOICES[key]
    if value in choices:
        return
    message = usage_error(check, {**s, key: value})
    assert message == f"{flag_name(key)} must be one of {', '.join(choices)}, got {value!r}"


@settings(deadline=None)
@given(valid_settings(), st.lists(st.integers(1, 64), max_size=3),
       st.integers(max_value=0) | st.integers(min_value=MAX_WIDTH + 1), st.data())
def test_check_rejects_a_hidden_width_out_of_range(s, widths, bad, data):
    hidden = list(widths)
    hidden.insert(data.draw(st.integers(0, len(hidden))), bad)
    assert (usage_error(check, {**s, "hidden": hidden})
            == f"--hidden widths must be integers from 1 to {MAX_WIDTH}, got {hidden!r}")


@pytest.mark.parametrize("key, value, message", [
    ("lr", 0.0, "--lr must be a finite number > 0, got 0.0"),
    ("lr", math.inf, "--lr must be a finite number, got inf"),
    ("momentum", 1.0, "--momentum must be < 1, got 1.0"),
    ("beta2", -0.5, "--beta2 must be a finite number >= 0, got -0.5"),
    ("dropout", math.nan, "--dropout must be a finite number, got nan"),
    ("warmup_epochs", -1.0, "--warmup-epochs must be a finite number >= 0, got -1.0"),
    ("clip_norm", 0.0, "--clip-norm must be a finite number > 0, got 0.0"),
    ("batch_size", 0, f"--batch-size must be an integer from 1 to {MAX_BATCH}, got 0"),
    ("seed", -1, f"--seed must be an integer from 0 to {MAX_SEED}, got -1"),
    ("augment_shift", 9, "--augment-shift must be an integer from 0 to 8, got 9"),
    ("warmup_epochs", 1e308, f"--warmup-epochs must be <= {MAX_COUNT:g}, got 1e+308"),
    ("hidden", [100_000_000], f"--hidden widths must be integers from 1 to {MAX_WIDTH}, got [100000000]"),
    ("optimizer", "lbfgs", "--optimizer must be one of sgd, momentum, nesterov, adam, adamw, rmsprop, got 'lbfgs'"),
    ("activation", "identity", "--activation must be one of relu, leaky_relu, tanh, sigmoid, got 'identity'"),
])
def test_check_messages(key, value, message):
    assert usage_error(check, {**DEFAULTS, key: value}) == message


@settings(deadline=None)
@given(valid_settings(), st.floats(0, MAX_FLOAT, exclude_min=True))
def test_check_weight_decay_needs_adamw(s, decay):
    s = {**s, "optimizer": "adam", "momentum": DEFAULTS["momentum"], "weight_decay": decay}
    message = usage_error(check, s, {"weight_decay": "cfg.toml: weight-decay"})
    assert message.startswith("cfg.toml: weight-decay applies to --optimizer adamw only (the optimizer is adam;")


def test_check_names_a_too_long_list_with_a_shortened_value():
    message = usage_error(check, {**DEFAULTS, "hidden": [1] * 10_000})
    assert message.startswith("--hidden: expected a list of at most 64 integers, got [1, 1, ")
    assert message.endswith("...") and len(message) < 200


def test_check_early_stopping_needs_a_validation_split():
    s = {**DEFAULTS, "early_stopping": True, "validation_fraction": 0.0}
    assert usage_error(check, s) == "--early-stopping needs a validation split (--validation-fraction > 0)"


@pytest.mark.parametrize("dataset, train, test, message", [
    (None, None, "b.csv", "--test needs --train or --dataset"),
    (None, "a.csv", None, "--train needs --test PATH (the held-out test set)"),
    ("mnist", "a.csv", None, "--train needs --test PATH (the held-out test set)"),
    (None, None, None, "give --dataset NAME or --train PATH --test PATH"),
])
def test_check_data_source_rules(dataset, train, test, message):
    assert usage_error(check, {**DEFAULTS, "dataset": dataset, "train": train, "test": test}) == message


def test_check_does_not_touch_its_arguments():
    s, sources = dict(DEFAULTS), {"lr": "--lr"}
    check(s, sources)
    assert s == dict(DEFAULTS) and sources == {"lr": "--lr"}


def test_messages_quote_values_with_repr():
    assert re.search(r"got 'x y'$", usage_error(check, {**DEFAULTS, "dtype": "x y"}))


def test_example_config_holds_every_setting_with_its_default():
    """configs/example.toml names every setting (those whose default is None commented out, TOML has no null)
    and resolves to exactly the defaults."""
    path = Path(__file__).resolve().parents[2] / "configs" / "example.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in DEFAULTS.items():
        name = key.replace("_", "-")
        written = re.search(rf"^(# )?{re.escape(name)} = ", text, re.MULTILINE)
        assert written, f"{name} is missing from {path}"
        assert (written.group(1) is not None) == (value is None), name
    settings, _ = resolve({}, read_toml(path))
    assert settings == DEFAULTS


@pytest.mark.parametrize("key, value, optimizer, message", [
    ("momentum", 0.5, "adam", "--momentum applies to --optimizer momentum or nesterov only (the optimizer is adam)"),
    ("beta1", 0.5, "sgd", "--beta1 applies to --optimizer adam or adamw only (the optimizer is sgd)"),
    ("beta2", 0.9, "nesterov", "--beta2 applies to --optimizer adam or adamw only (the optimizer is nesterov)"),
    ("weight_decay", 0.1, "rmsprop", "--weight-decay applies to --optimizer adamw only (the optimizer is rmsprop; "
                                     "use --l2 for an L2 penalty)"),
    ("patience", 5, "adam", "--patience applies with --early-stopping only (it is off)"),
])
def test_an_option_the_run_would_ignore_is_refused_naming_both(key, value, optimizer, message):
    assert usage_error(check, {**DEFAULTS, "optimizer": optimizer, key: value}) == message
    check({**DEFAULTS, "optimizer": optimizer})              # the defaults themselves are never refused


@pytest.mark.parametrize("optimizer, key, value", [("momentum", "momentum", 0.5), ("nesterov", "momentum", 0.5),
                                                   ("adam", "beta1", 0.5), ("adamw", "weight_decay", 0.1)])
def test_an_option_the_optimizer_uses_is_accepted(optimizer, key, value):
    check({**DEFAULTS, "optimizer": optimizer, key: value})
