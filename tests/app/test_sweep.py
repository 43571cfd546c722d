"""fnn sweep (issue 12, items 1-4 in part): the sweep file's validation, the trials, the local pool, the tables,
best.toml, resume, a diverging trial recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functional_nn.app.cli import main
from functional_nn.app.settings import UsageError
from functional_nn.app.sweep.spec import read_spec
from tests.app.interrupt import REPO_ROOT

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"
BASE = f'[train]\ntrain = "{CSV}"\ntest = "{CSV}"\nepochs = 1\nbatch-size = 8\nhidden = [8]\n'


def write(tmp_path, text: str, name="s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    (BASE + "[sweep]\nmethod = \"grid\"\nbogus = 1\n[space]\nlr = [0.1]\n", "[sweep]: unknown key 'bogus'"),
    (BASE + "[space]\n", "[space] is empty"),
    (BASE + "[space]\nlearning-rate = [0.1]\n", "[space] learning-rate: not a setting of fnn train"),
    (BASE + "[space]\nlr = []\n", "[space] lr: an empty list of choices"),
    (BASE + "[space]\nlr = [\"fast\"]\n", "lr: expected a number, got 'fast'"),
    (BASE + "[sweep]\nmethod = \"random\"\ntrials = 2\n[space]\nlr = { low = 1, high = 0.1 }\n",
     "low must be less than high"),
    (BASE + "[sweep]\nmethod = \"random\"\ntrials = 2\n[space]\nlr = { low = 0, high = 1, log = true }\n",
     "a log range needs low > 0"),
    (BASE + "[sweep]\nmethod = \"random\"\ntrials = 2\n[space]\nepochs = { low = 1.5, high = 3 }\n",
     "epochs is an integer setting"),
    (BASE + "[sweep]\nmethod = \"grid\"\n[space]\nlr = { low = 0.1, high = 1 }\n", "a range needs method = \"random\""),
    (BASE + "[sweep]\nmethod = \"random\"\n[space]\nlr = [0.1]\n", "random search needs trials"),
    (BASE + "[sweep]\nseeds = [0, 0]\n[space]\nlr = [0.1]\n", "seeds: expected a list of different integers"),
    (BASE + "[sweep]\nmetric = \"f1\"\n[space]\nlr = [0.1]\n", "metric: must be one of"),
    (BASE + "[space]\nlr = [-1.0]\n", "the trial lr=-1.0: --lr must be a finite number > 0"),
    (BASE + "[space]\nseed = [1, 2]\n", "seeds are set in [sweep] seeds"),
    (BASE + "[other]\nx = 1\n[space]\nlr = [0.1]\n", "unknown table [other]"),
    (BASE.replace("epochs = 1", "epochs = \"one\"") + "[space]\nlr = [0.1]\n", "[train]: epochs: expected an integer"),
    (BASE + "[space]\nlr = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML: nested too deeply"),
    (BASE + "[space\nlr = [0.1]\n", "not valid TOML"),
])
def test_a_bad_sweep_file_exits_2_with_one_line_naming_the_key(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(path) in err[0], err
    assert not (tmp_path / "out").exists()


@settings(deadline=None, max_examples=40)
@given(low=st.floats(1e-4, 1.0), span=st.floats(1.5, 100.0), ilow=st.integers(1, 50), ispan=st.integers(1, 200),
       log=st.booleans(), seed=st.integers(0, 2**32), trials=st.integers(1, 20))
def test_random_configurations_stay_in_their_ranges_ints_stay_ints_and_repeat(tmp_path_factory, low, span, ilow,
                                                                             ispan, log, seed, trials):
    text = (BASE + f"[sweep]\nmethod = \"random\"\ntrials = {trials}\nsample_seed = {seed}\n[space]\n"
            f"lr = {{ low = {low!r}, high = {low * span!r}, log = {str(log).lower()} }}\n"
            f"batch-size = {{ low = {ilow}, high = {ilow + ispan} }}\nactivation = [\"relu\", \"tanh\"]\n")
    path = write(tmp_path_factory.mktemp("r"), text)
    spec = read_spec(path)
    assert len(spec.configs) == trials and read_spec(path).configs == spec.configs
    for c in spec.configs:
        assert low <= c["lr"] <= low * span and isinstance(c["lr"], float)
        assert ilow <= c["batch_size"] <= ilow + ispan and isinstance(c["batch_size"], int)
        assert c["activation"] in ("relu", "tanh")


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_tiny_sweep_through_the_local_pool_then_resume_gives_the_same_table(tmp_path, capsys):
    spec = write(tmp_path, BASE + "[sweep]\nseeds = [0, 1]\n[space]\nlr = [0.001, 0.01, 1e30]\n"
                                  "optimizer = [\"sgd\"]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2"]) == 0
    table = rows(out / "trials.csv")
    assert [r["trial"] for r in table] == ["c000-s0", "c000-s1", "c001-s0", "c001-s1", "c002-s0", "c002-s1"]
    assert [r["status"] for r in table[:4]] == ["ok"] * 4 and {r["status"] for r in table[4:]} == {"diverged"}
    assert all((out / "trials" / r["trial"] / "config.json").is_file() for r in table)
    summary = rows(out / "summary.csv")
    assert len(summary) == 3 and summary[-1]["config"] == "2"                 # the diverged one last
    capsys.readouterr()
    assert main(["train", "--config", str(out / "best.toml"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["lr"] == json.loads(summary[0]["lr"])
    # an interrupted sweep: its last rows lost; --resume runs only those and ends with the same table
    kept = table[:3]
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(kept)
    assert main(["sweep", "--resume", str(out)]) == 0
    again = rows(out / "trials.csv")
    drop = ("seconds", "error")
    assert [{k: v for k, v in r.items() if k not in drop} for r in again] == \
           [{k: v for k, v in r.items() if k not in drop} for r in table]
    assert main(["sweep", str(spec), "--out", str(out)]) == 2                 # never overwritten


@pytest.mark.parametrize("metric, columns", [("val_accuracy", ["val_accuracy", "test_accuracy"]),
                                             ("test_accuracy", ["test_accuracy"])])
def test_the_printed_ranking_shows_the_metric_and_the_test_accuracy_once_each(tmp_path, capsys, metric, columns):
    spec = write(tmp_path, BASE + f'[sweep]\nmetric = "{metric}"\n[space]\nlr = [0.001, 0.01]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1", "--no-plots"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("rank"))
    assert header == "rank  config  " + "  ".join(f"{c} mean (std)" for c in columns) + "  seeds  settings"
    summary = rows(tmp_path / "out" / "summary.csv")
    first = lines[lines.index(header) + 1].split()
    assert first[2:2 + 2 * len(columns):2] == [f"{float(summary[0][f'{c}_mean']):.4f}" for c in columns]


def test_dry_run_lists_the_trials(tmp_path, capsys):
    spec = write(tmp_path, BASE + "[sweep]\nseeds = [3, 4]\n[space]\nlr = [0.1, 0.2]\nhidden = [[4], [8, 4]]\n")
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 8 and "hidden=[8, 4], lr=0.2, seed=4" in captured.out
    assert "2 x 2 seed(s) = 8 trials" not in captured.err and "= 8 trials" in captured.err


def test_the_example_sweep_file_is_valid():
    spec = read_spec(REPO_ROOT / "configs" / "sweep-example.toml")
    assert spec.method == "random" and len(spec.configs) == 8 and spec.seeds == (0, 1, 2)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO_ROOT / "configs" / "sweeps").glob("*.toml")))
def test_the_committed_sweeps_are_valid(name):
    spec = read_spec(REPO_ROOT / "configs" / "sweeps" / name)
    assert spec.configs and spec.seeds


def test_spec_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="is missing"):
        read_spec(tmp_path / "none.toml")


def test_a_local_dask_cluster_gives_the_same_table_as_the_local_pool(tmp_path):
    pytest.importorskip("distributed", reason="needs the cluster extra: pip install 'functional-nn[cluster]'")
    spec = write(tmp_path, BASE + "[sweep]\nseeds = [0, 1]\n[space]\nlr = [0.001, 0.01]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "pool"), "--workers", "2"]) == 0
    assert main(["sweep", str(spec), "--out", str(tmp_path / "dask"), "--local-cluster", "2"]) == 0
    metrics = ("trial", "status", "val_accuracy", "val_loss", "test_accuracy", "test_loss", "data_sha256")
    pool, dask = rows(tmp_path / "pool" / "trials.csv"), rows(tmp_path / "dask" / "trials.csv")
    assert [{k: r[k] for k in metrics} for r in pool] == [{k: r[k] for k in metrics} for r in dask]
    assert all(r["status"] == "ok" for r in dask)


def test_without_distributed_the_cluster_flags_say_how_to_install_it(tmp_path, capsys, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_distributed)
    spec = write(tmp_path, BASE + "[space]\nlr = [0.01]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "pip install 'functional-nn[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


HALVING = (BASE.replace("epochs = 1", "epochs = 9") + "validation-fraction = 0.25\n"
           "[sweep]\nmethod = \"halving\"\nmin-epochs = 1\neta = 3\nseeds = [0]\n"
           "[space]\nlr = [0.0001, 0.001, 0.003, 0.01, 0.03, 0.1]\n")


@pytest.mark.parametrize("text, message", [
    (BASE + "[sweep]\nmethod = \"grid\"\neta = 3\n[space]\nlr = [0.1]\n", "eta: only for method = \"halving\""),
    (HALVING.replace("eta = 3", "eta = 1"), "eta: expected an integer 2..100"),
    (HALVING.replace("min-epochs = 1", "min-epochs = 0"), "min_epochs: expected an integer >= 1"),
    (HALVING.replace("seeds = [0]", "seeds = [0]\nmetric = \"test_accuracy\""), "halving compares trials each epoch"),
    (HALVING.replace("validation-fraction = 0.25", "validation-fraction = 0.0"), "has validation-fraction = 0"),
    (HALVING.replace("lr = [0.0001, 0.001, 0.003, 0.01, 0.03, 0.1]", "lr = { low = 0.001, high = 0.1 }"),
     "a range needs method"),
])
def test_a_bad_halving_file_exits_2_with_one_line(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@settings(deadline=None, max_examples=300)
@given(values=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=30), eta=st.integers(2, 5),
       mode=st.sampled_from(["max", "min"]), i=st.integers(0, 29))
def test_at_a_rung_at_most_the_best_share_goes_on_and_the_best_always_does(values, eta, mode, i):
    from functional_nn.app.sweep.trial import promotable
    value = values[i % len(values)]
    keep = max(1, len(values) // eta)
    better = sum((v > value) if mode == "max" else (v < value) for v in values)
    assert promotable(value, values, eta, mode) == (better < keep)
    best = max(values) if mode == "max" else min(values)
    assert promotable(best, values, eta, mode)
    assert not promotable(float("nan"), values + [float("nan")], eta, mode)


def test_halving_stops_the_worst_trials_at_the_rungs_and_resumes_to_the_same_table(tmp_path, capsys):
    spec, out = write(tmp_path, HALVING), tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-plots"]) == 0
    table = rows(out / "trials.csv")
    stopped = [r for r in table if r["status"] == "stopped"]
    finished = [r for r in table if r["status"] == "ok"]
    assert stopped and finished and len(stopped) + len(finished) == 6
    assert {int(r["epochs_run"]) for r in stopped} <= {1, 3} and {int(r["epochs_run"]) for r in finished} == {9}
    assert all("stopped at epoch" in r["error"] for r in stopped)
    assert all(not (out / "trials" / r["trial"] / "model.npz").exists() for r in stopped)
    # with one worker the decisions are the ASHA rule applied in trial order
    from functional_nn.app.sweep.trial import promotable, read_rung
    rung_text = (out / "rungs.jsonl").read_text()
    for epoch in (1, 3):
        seen = []
        for r in table:
            values = read_rung(rung_text, epoch)
            if r["trial"] not in values:
                continue
            seen.append(values[r["trial"]])
            goes_on = promotable(values[r["trial"]], seen, 3, "max")
            assert goes_on == (int(r["epochs_run"]) > epoch), (r, seen)
    summary = rows(out / "summary.csv")
    assert [s["config"] for s in summary[-len(stopped):]] == sorted(s["config"] for s in summary[-len(stopped):])
    assert all(s["val_accuracy_mean"] == "nan" for s in summary[-len(stopped):])
    assert {int(s["stopped"]) for s in summary} == {0, 1}
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as f:      # the last two rows lost
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table[:4])
    assert main(["sweep", "--resume", str(out), "--no-plots"]) == 0
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows(out / "trials.csv")] == \
           [{k: v for k, v in r.items() if k not in drop} for r in table]


def test_the_sweep_draws_its_pictures_and_page_and_logs_json_lines(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="pictures need the plot extra")
    from PIL import Image
    from functional_nn.app.sweep.report import metric_size, ranking_size
    spec = write(tmp_path, BASE + "[sweep]\nseeds = [0, 1]\n[space]\nlr = [0.001, 0.01, 1e30]\n"
                                  "epochs = [1, 2]\n")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--log", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["sweep"] + ["trial"] * 12 + ["ranking", "done"]
    trials = [e for e in events if e["event"] == "trial"]
    assert {e["trial"] for e in trials} == {r["trial"] for r in rows(out / "trials.csv")}
    assert all(isinstance(e["settings"]["lr"], float) for e in trials)
    ranking = events[-2]["ranking"]
    assert ranking[-1]["val_accuracy_mean"] is None and [r["rank"] for r in ranking] == list(range(1, 7))
    read = read_spec(out / "sweep.toml")
    summary = rows(out / "summary.csv")
    sizes = {"metric.png": metric_size(read), "ranking.png": ranking_size(summary)}
    for name, size in sizes.items():
        with Image.open(out / "pictures" / name) as im:
            assert im.size == size
    page = (out / "sweep.html").read_text(encoding="utf-8")
    assert page.count("<img ") == 2 and "data:image/png;base64," in page
    assert all(r["trial"] in page for r in rows(out / "trials.csv")) and "lr = [0.001, 0.01, 1e30]" in page
    assert main(["sweep", str(spec), "--out", str(tmp_path / "bare"), "--no-plots", "--quiet"]) == 0
    assert not (tmp_path / "bare" / "pictures").exists() and (tmp_path / "bare" / "sweep.html").is_file()
    quiet = capsys.readouterr().out.splitlines()
    assert quiet[0].startswith("rank  config") and len(quiet) == 7


def test_a_trial_whose_worker_was_lost_leaves_the_page_totals_numbers(tmp_path):
    from functional_nn.app.sweep import tables
    from functional_nn.app.sweep.report import render_html
    spec = read_spec(write(tmp_path, BASE + "[sweep]\nseeds = [0, 1]\n[space]\nlr = [0.01]\n"))
    (name0, c, config, _), (name1, *_) = tables.trials(spec)
    rows = {name0: tables.trial_row(spec, name0, c, config, 0, {"status": "ok", "seconds": 1.25,
                                                                   "val_accuracy": 0.5, "test_accuracy": 0.5}),
            name1: tables.trial_row(spec, name1, c, config, 1, {"status": "failed", "error": "worker lost"})}
    summary = tables.summarize(spec, rows)
    assert tables.total_seconds(rows.values()) == 1.25 and summary[0]["seconds"] == 1.25
    page = render_html(spec, tmp_path, rows, summary, {}, seconds=2.0, ran=2, note=None)
    assert "<td>training time of all trials</td><td>1.2 s</td>" in page and "nan" not in page.lower()


def test_a_data_fault_is_one_line_before_any_folder_or_trial(tmp_path, capsys):
    spec = write(tmp_path, BASE.replace(str(CSV), str(tmp_path / "missing.csv"), 1) + "[space]\nlr = [0.01]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.csv" in err[-1], err
    assert not (tmp_path / "out").exists()
