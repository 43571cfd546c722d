"""Crafted run folders, model files and settings: every one ends in exit 2 with one line naming the file, never a
traceback (issue 11, classes 1 and 4). Each case copies one small trained run, damages one file in one way and
runs one command on it; the table is the contract, and cases differ in kind, not only in value."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from functional_nn import checkpoint as ckpt
from functional_nn.app import resources
from functional_nn.app.cli import main
from functional_nn.app.settings import DEFAULTS, UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]
CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run (2 epochs, validation split, so best.npz exists) on the committed 40-row fixture."""
    run = tmp_path_factory.mktemp("faults") / "run"
    status = main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(run), "--hidden", "8",
                   "--epochs", "2", "--batch-size", "8", "--validation-fraction", "0.25", "--no-plots"])
    assert status == 0
    return run


# ------------------------------------------------------------------------------------------- the damage

def rewrite_meta(path: Path, change) -> None:
    """Save the checkpoint at ``path`` again with ``change(meta)`` applied (a well-formed file, wrong content)."""
    c = ckpt.load(path)
    meta = json.loads(json.dumps(c.meta))
    change(meta)
    ckpt.save(path, c.params, meta, opt_state=c.opt_state)


def replace_header_text(path: Path, edit) -> None:
    """Replace the checkpoint's raw JSON header by ``edit(text)`` (for what json.dumps cannot write)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["__checkpoint__"] = np.array(edit(str(arrays["__checkpoint__"][()])))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def huge_npy_header(path: Path) -> None:
    """params/0 claims 10^12 float32 elements; the file stays a few kB."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    members["params/0.npy"] = buf.getvalue() + b"\0" * 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def set_key(key, value):
    return lambda m: m.__setitem__(key, value)


def edit_json(name, change):
    def damage(run: Path):
        path = run / name
        obj = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps(change(obj)), encoding="utf-8")
    return damage


def write(name, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def model(change):
    return lambda run: rewrite_meta(run / "model.npz", change)


def last(change):
    return lambda run: rewrite_meta(run / "last.npz", change)


def fifo(name):
    def damage(run: Path):
        (run / name).unlink()
        os.mkfifo(run / name)
    return damage


def unfinished(damage):
    """The run as if killed mid-training (no model.npz or metrics.json), then ``damage``."""
    def both(run: Path):
        (run / "model.npz").unlink()
        (run / "metrics.json").unlink()
        damage(run)
    return both


DEEP = "[" * 100_000 + "]" * 100_000

# (id, damage, command, text the one-line error must contain). Commands: evaluate, predict, report, resume.
CASES = [
    # model.npz: well-formed JSON, wrong content
    ("empty sizes", model(set_key("sizes", [])), "evaluate", "model.npz: sizes"),
    ("string normalization", model(set_key("normalization", "standardize")), "evaluate", "model.npz: normalization"),
    ("class count", model(set_key("classes", ["a", "b", "c"])), "predict", "model.npz: classes"),
    ("sizes disagree", model(set_key("sizes", [784, 99, 10])), "evaluate", "model.npz: sizes"),
    ("complex dtype", model(set_key("dtype", "complex64")), "predict", "model.npz: dtype"),
    ("mean wrong length", model(set_key("normalization", {"kind": "standardize", "mean": [0.0] * 3, "std": [1.0] * 3})),
     "evaluate",
     "model.npz: normalization"),
    ("image shape", model(set_key("image_shape", [7, 7])), "predict", "model.npz: image_shape"),
    ("nested meta", lambda run: replace_header_text(run / "model.npz", lambda t: t.replace('"meta": {', '"meta": {"x": '
                                                                                            + DEEP + ", ", 1)),
     "evaluate", "model.npz"),
    ("huge npy header", lambda run: huge_npy_header(run / "model.npz"), "evaluate", "model.npz"),
    ("model fifo", fifo("model.npz"), "evaluate", "model.npz"),
    ("model is text", write("model.npz", b"sizes,activation\n"), "predict", "model.npz"),
    # config.json
    ("config list", write("config.json", b"[1, 2, 3]"), "report", "config.json"),
    ("config path is a number", edit_json("config.json", lambda c: {**c, "train": 5}), "report", "config.json: train"),
    ("config lr -1 on resume", unfinished(edit_json("config.json", lambda c: {**c, "lr": -1})), "resume",
     "config.json: lr"),
    ("config unknown key", edit_json("config.json", lambda c: {**c, "learning_rate": 1}), "report", "config.json"),
    ("config missing key", edit_json("config.json", lambda c: {k: v for k, v in c.items() if k != "epochs"}),
     "report", "config.json: epochs"),
    ("config deep", write("config.json", DEEP.encode()), "report", "config.json"),
    ("config not UTF-8", write("config.json", b'{"lr": "\xff\xfe"}'), "report", "config.json"),
    ("config huge width on resume", unfinished(edit_json("config.json", lambda c: {**c, "hidden": [100_000_000]})),
     "resume", "config.json: hidden"),
    # history.csv, metrics.json
    ("history without columns", write("history.csv", b"foo,bar\n1,2\n"), "report", "history.csv"),
    ("history NaN epoch", write("history.csv", b"epoch,loss,accuracy\nnan,1,0.5\n"), "report", "history.csv"),
    ("history short on resume", unfinished(write("history.csv", b"epoch,loss,accuracy\n")), "resume", "history.csv"),
    ("metrics list", write("metrics.json", b"[]"), "report", "metrics.json"),
    ("metrics accuracy string", edit_json("metrics.json", lambda m: {**m, "test_accuracy": "high"}), "report",
     "metrics.json: test_accuracy"),
    # last.npz on resume
    ("progress past the end", unfinished(last(lambda m: m["progress"].update(epoch=99, step=99))), "resume",
     "last.npz"),
    ("progress negative batch", unfinished(last(lambda m: m["progress"].update(batch=-1))), "resume", "last.npz"),
    ("progress missing", unfinished(last(lambda m: m.pop("progress"))), "resume", "last.npz: progress"),
    ("last sizes disagree", unfinished(last(set_key("sizes", [784, 3, 10]))), "resume", "last.npz: sizes"),
]


def command(kind: str, run: Path) -> list[str]:
    return {"evaluate": ["evaluate", str(run), "--test", str(CSV)],
            "predict": ["predict", str(run), str(CSV)],
            "report": ["report", str(run), "--test", str(CSV), "--out", str(run.parent / "report")],
            "resume": ["train", "--resume", str(run), "--no-plots"]}[kind]


@pytest.mark.parametrize("damage, kind, wanted", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_crafted_run_folder_exits_2_with_one_line(trained, tmp_path, capsys, damage, kind, wanted):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    damage(run)
    capsys.readouterr()
    status = main(command(kind, run))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    assert wanted in errors[0] and str(run) in errors[0], errors[0]


def test_a_resume_with_a_bad_setting_leaves_the_run_folder_as_it_was(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    unfinished(edit_json("config.json", lambda c: {**c, "lr": -1}))(run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(command("resume", run)) == 2
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


# ------------------------------------------------------------------------------------ settings and preflight

@pytest.mark.parametrize("argv, wanted", [
    (["--hidden", "100000000"], "--hidden widths must be integers from 1 to"),
    (["--warmup-epochs", "1e308"], "--warmup-epochs must be <= "),
    (["--epochs", "10000000000"], "--epochs must be an integer from 1 to"),
    (["--lr", "1e309"], "--lr must be a finite number"),
    (["--seed", str(2**70)], "--seed must be an integer from 0 to"),
    (["--config", "/dev/zero"], "--config /dev/zero is not a regular file"),
])
def test_settings_out_of_bounds_exit_2_naming_the_flag(tmp_path, capsys, argv, wanted):
    status = main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and wanted in err[0], err
    assert not (tmp_path / "r").exists()


def test_config_fifo_and_non_utf8_toml_are_refused(tmp_path, capsys):
    fifo_path = tmp_path / "c.toml"
    os.mkfifo(fifo_path)                                  # opening it for reading would block forever
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'activation = "r\xe9lu"\n')
    for path, wanted in ((fifo_path, "is not a regular file"), (bad, "not UTF-8 text")):
        assert main(["train", "--config", str(path), "--train", str(CSV), "--test", str(CSV)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and wanted in err[0], err


def test_a_network_larger_than_memory_is_refused_before_allocating(tmp_path, capsys):
    status = main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(tmp_path / "r"),
                   "--hidden", "3000000", "--no-plots"])
    err = capsys.readouterr().err.strip().splitlines()
    if resources.available_bytes() is None:
        pytest.skip("this system does not say how much memory is available")
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("fnn train: error: --hidden 3000000: the run needs about ") and "available" in err[0]
    assert not (tmp_path / "r").exists()


SETTINGS = {**DEFAULTS, "batch_size": 128, "optimizer": "adam", "validation_fraction": 0.1}


def test_preflight_names_the_flag_that_dominates():
    sizes = [784, 4096, 10]
    params, acts = resources.training_bytes(SETTINGS, sizes, rows=60000, eval_batch=1000)
    with pytest.raises(UsageError, match=r"^--hidden 4096: the run needs about "):
        resources.check_training_memory(SETTINGS, sizes, {}, rows=60000, eval_batch=1000, available=params)
    wide_batch = {**SETTINGS, "batch_size": 1 << 20}
    params, acts = resources.training_bytes(wide_batch, [784, 10], rows=1 << 21, eval_batch=1000)
    assert acts > params
    with pytest.raises(UsageError, match=r"^cfg.toml: batch-size 1048576: .*choose a smaller --batch-size$"):
        resources.check_training_memory(wide_batch, [784, 10], {"batch_size": "cfg.toml: batch-size"},
                                        rows=1 << 21, eval_batch=1000, available=acts)
    resources.check_training_memory(SETTINGS, sizes, {}, rows=60000, eval_batch=1000, available=10 * (params + acts))


def test_preflight_refuses_nothing_where_the_system_does_not_say(monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda: None)
    resources.check_training_memory(SETTINGS, [784, 1 << 24, 10], {}, rows=60000, eval_batch=1000)


def test_preflight_estimate_grows_with_width_batch_and_optimizer_state():
    base = resources.training_bytes(SETTINGS, [784, 128, 10], rows=60000, eval_batch=1000)
    wider = resources.training_bytes(SETTINGS, [784, 256, 10], rows=60000, eval_batch=1000)
    sgd = resources.training_bytes({**SETTINGS, "optimizer": "sgd"}, [784, 128, 10], rows=60000, eval_batch=1000)
    assert wider[0] > base[0] and wider[1] > base[1] and sgd[0] < base[0] and sgd[1] == base[1]
    assert resources.parameter_count([784, 128, 10]) == 784 * 128 + 128 + 128 * 10 + 10
    few_rows = resources.training_bytes(SETTINGS, [784, 128, 10], rows=10, eval_batch=1000)
    assert few_rows[1] < base[1]                        # a batch is never larger than the training set


def test_available_memory_reads_meminfo_and_cgroup_limits(tmp_path, monkeypatch):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:  1000 kB\nMemAvailable:  500 kB\n", encoding="ascii")
    assert resources._meminfo_available(str(info)) == 500 * 1024
    info.write_text("MemTotal: 1000 kB\n", encoding="ascii")
    assert resources._meminfo_available(str(info)) is None
    (tmp_path / "max").write_text("max\n", encoding="ascii")
    (tmp_path / "cur").write_text("123\n", encoding="ascii")
    assert resources._read_int(str(tmp_path / "max")) is None and resources._read_int(str(tmp_path / "cur")) == 123
    assert resources._read_int(str(tmp_path / "absent")) is None


# -------------------------------------------------------------------------------- as a real process would

def test_a_crafted_model_in_a_real_process_prints_one_line_and_no_traceback(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    huge_npy_header(run / "model.npz")
    result = subprocess.run([sys.executable, "-m", "functional_nn.app.cli", "evaluate", str(run), "--test", str(CSV)],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "model.npz" in lines[0]


def test_predict_refuses_an_image_that_is_a_fifo(trained, tmp_path, capsys):
    pytest.importorskip("PIL")
    fifo_path = tmp_path / "digit.png"
    os.mkfifo(fifo_path)                                  # Pillow would block on open
    assert main(["predict", str(trained), str(fifo_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{fifo_path}: not a regular file" in err[0], err
