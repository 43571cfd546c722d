"""Run folders (functional_nn.app.runs): atomic writes, JSON files, run folder names and clean-up, history.csv."""

import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functional_nn.app import runs, schema
from functional_nn.app.runs import RunFileError, history_text, read_history
from tests.strategies import history_rows


# ------------------------------------------------------------------------------------------------------ text

def test_atomic_write_text_keeps_the_newlines_and_leaves_no_temp_file(tmp_path):
    runs.atomic_write_text(tmp_path / "b.txt", "x\r\ny\n")          # text: UTF-8, newlines as given
    assert (tmp_path / "b.txt").read_bytes() == b"x\r\ny\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]


# ------------------------------------------------------------------------------------------------------ JSON

def test_write_json_read_json_round_trip(tmp_path):
    obj = {"hidden": [16, 8], "lr": 0.001, "name": "caf\u00e9", "test": None, "nested": {"a": True}}
    runs.write_json(tmp_path / "config.json", obj)
    assert schema.read_json_file(tmp_path / "config.json") == obj
    assert (tmp_path / "config.json").read_text(encoding="utf-8").endswith("}\n")


def test_read_json_names_the_file_when_it_is_not_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"lr": 0.1,', encoding="utf-8")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON") as info:
        schema.read_json_file(path)
    assert str(info.value).startswith(f"{path}: ")


# --------------------------------------------------------------------------------------- run folder names

def test_make_run_dir_claims_a_timestamp_made_unique_with_a_suffix(tmp_path):
    now = 1_700_000_000.0
    made = [runs.make_run_dir(tmp_path / "runs", now=now) for _ in range(3)]
    first = made[0].name
    assert len(first) == len("YYYYmmdd-HHMMSS") and all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert [p.name for p in made] == [first, f"{first}-2", f"{first}-3"]


def test_make_run_dir_never_gives_two_threads_the_same_folder(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: runs.make_run_dir(tmp_path, now=1_700_000_000.0), range(40)))
    assert len(set(made)) == 40


def test_remove_stale_temps_removes_only_this_programs_temporaries(tmp_path):
    ours = [".last.npz.abc123.tmp", ".config.json.x.tmp", ".history.csv.q.tmp", ".model.npz.zz.tmp"]
    theirs = [".notes.txt.a.tmp", "last.npz", "x.tmp", ".last.npz.keep", "data.csv"]
    for name in ours + theirs:
        (tmp_path / name).write_text("x")
    (tmp_path / ".best.npz.d.tmp").mkdir()                       # a folder with such a name is not ours
    assert sorted(runs.remove_stale_temps(tmp_path)) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*theirs, ".best.npz.d.tmp"])
    assert runs.user_files(tmp_path) == sorted(theirs)        # by name: what a new run may ignore


def test_clear_run_files_removes_only_what_a_run_writes(tmp_path):
    for name in (*runs.RUN_FILES, "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "curves.png").write_bytes(b"png")
    (tmp_path / "data").mkdir()
    assert runs.is_complete(tmp_path)
    runs.clear_run_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt"]
    assert not runs.is_complete(tmp_path)
    runs.clear_run_files(tmp_path)                               # nothing left to remove: no error


# ------------------------------------------------------------------------------------------------ history.csv

def _expected(rows):
    """What the reader gives back: every field, None for None and NaN (both written as an empty cell)."""
    return [{k: None if row.get(k) is None or (isinstance(row[k], float) and math.isnan(row[k])) else row[k]
             for k in runs.HISTORY_FIELDS} for row in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=history_rows())
def test_history_text_then_read_history_gives_the_rows_back(tmp_path, rows):
    path = tmp_path / "history.csv"
    runs.atomic_write_text(path, history_text(rows))
    history = read_history(path)
    assert len(history) == len(rows)
    assert history.rows() == _expected(rows)
    assert history_text(history.rows()) == history_text(rows)    # and writing them again changes nothing
    assert all(getattr(history, k).dtype == np.float64 for k in runs.HISTORY_FIELDS)


def test_history_columns_are_read_only_and_a_header_alone_is_no_epochs(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(history_text([{"epoch": 1, "loss": 0.5, "accuracy": 0.75, "val_loss": 0.6}]))
    history = read_history(path)
    assert history.has_validation
    with pytest.raises(ValueError):
        history.loss[0] = 1.0
    path.write_text(history_text([]))
    empty = read_history(path)
    assert len(empty) == 0 and empty.rows() == [] and not empty.has_validation


def test_extra_columns_are_ignored_and_optional_ones_may_be_absent(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,loss,note\n1,0.5,2.0,warm-up\n\n2,0.75,1.0,\n")
    assert read_history(path).rows() == [
        {"epoch": 1, "loss": 2.0, "accuracy": 0.5, "val_loss": None, "val_accuracy": None, "lr": None,
         "seconds": None},
        {"epoch": 2, "loss": 1.0, "accuracy": 0.75, "val_loss": None, "val_accuracy": None, "lr": None,
         "seconds": None}]


BAD_HISTORY = {
    "empty": ("", "history.csv is empty"),
    "no loss column": ("epoch,accuracy\n1,0.5\n", "history.csv: header lacks column(s) loss"),
    "no epoch or accuracy": ("loss\n0.5\n", "history.csv: header lacks column(s) epoch, accuracy"),
    "not a number": ("epoch,loss,accuracy\n1,abc,0.5\n", "history.csv:2: loss is not a number: 'abc'"),
    "empty required cell": ("epoch,loss,accuracy\n1,0.5,0.5\n2,,0.5\n", "history.csv:3: loss is empty"),
    "infinite loss": ("epoch,loss,accuracy\n1,inf,0.5\n", "history.csv:2: loss is not finite: 'inf'"),
    "short row": ("epoch,loss,accuracy\n1,0.5\n", "history.csv:2: expected 3 fields, got 2"),
    "epochs repeat": ("epoch,loss,accuracy\n1,0.5,0.5\n1,0.4,0.6\n", "history.csv: epoch must be whole numbers"),
    "epochs decrease": ("epoch,loss,accuracy\n2,0.5,0.5\n1,0.4,0.6\n", "history.csv: epoch must be whole numbers"),
    "epoch 0": ("epoch,loss,accuracy\n0,0.5,0.5\n", "history.csv: epoch must be whole numbers from 1"),
    "epoch 1.5": ("epoch,loss,accuracy\n1.5,0.5,0.5\n", "history.csv: epoch must be whole numbers"),
    "accuracy in percent": ("epoch,loss,accuracy\n1,0.5,75\n", "history.csv: accuracy must be a fraction in [0, 1]"),
    "val_accuracy > 1": ("epoch,loss,accuracy,val_accuracy\n1,0.5,0.5,2\n",
                         "history.csv: val_accuracy must be a fraction in [0, 1]"),
}


@pytest.mark.parametrize("case", sorted(BAD_HISTORY))
def test_read_history_errors_are_one_line_naming_the_file(tmp_path, case):
    text, expected = BAD_HISTORY[case]
    path = tmp_path / "history.csv"
    path.write_text(text)
    with pytest.raises(RunFileError) as info:
        read_history(path)
    assert str(info.value).startswith(f"{tmp_path}: {expected}"), str(info.value)
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


def test_read_history_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(RunFileError, match=r"run: history\.csv is missing$") as info:
        read_history(tmp_path / "run" / "history.csv")
    assert str(info.value) == f"{tmp_path / 'run'}: history.csv is missing"
    assert not os.listdir(tmp_path)


# --------------------------------------------------------------------------------- training progress (last.npz)

@settings(max_examples=40, deadline=None)
@given(epoch=st.integers(0, 50), batch=st.integers(0, 40), step=st.integers(0, 10**6), best=st.booleans(),
       sums=st.tuples(st.floats(0, 1e6), st.integers(1, 10**5)), seconds=st.floats(0, 1e5))
def test_progress_meta_and_state_from_progress_are_inverse(epoch, batch, step, best, sums, seconds):
    import functional_nn as fnn
    loss_sum, rows = sums
    params = fnn.init_mlp(np.random.default_rng(0), [3, 2])
    metrics = fnn.EpochMetrics(loss_sum=loss_sum, correct=rows // 2, rows=rows)
    best_epoch = fnn.Best(value=0.25, epoch=max(epoch, 1), bad_epochs=1, params=params) if best else None
    state = fnn.TrainState(params=params, opt_state=None, epoch=epoch, step=step, batch=batch, metrics=metrics,
                           best=best_epoch)
    meta = json.loads(json.dumps(runs.progress_meta(state, seconds=seconds)))     # as last.npz stores it
    back, back_seconds = runs.state_from_progress(meta, params, None, params if best else None)
    assert (int(back.epoch), int(back.batch), int(back.step)) == (epoch, batch, step)
    assert (back.best is None) == (not best)
    if best:
        assert (float(back.best.value), int(back.best.epoch), int(back.best.bad_epochs)) == (0.25, max(epoch, 1), 1)
    if batch:                                            # a half-done epoch keeps its running sums and time
        assert (float(back.metrics.loss_sum), int(back.metrics.correct), int(back.metrics.rows)) == \
               (loss_sum, rows // 2, rows)
        assert back_seconds == seconds
    else:
        assert back.metrics is None and back_seconds == 0.0
