"""The sweep's pictures and ``sweep.html`` (in the style of the run report).

- ``pictures/metric.png``: the metric against each swept setting; each finished trial (each seed) a point, each
  configuration's mean with its standard deviation as an error bar; trials stopped by halving as grey crosses.
- ``pictures/ranking.png``: the configurations, best first (at most 20), mean and standard deviation.
- ``sweep.html``: results, the ranking and trial tables, the pictures inline, the sweep file.

Pictures need the plot extra (matplotlib, Pillow); without it the page is written without them and a note says
how to install it. Imports matplotlib lazily (``Figure`` + Agg: no pyplot, no global backend).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from functional_nn.app.report.figures import PLOT_EXTRA_HINT, have_plotting, new_figure, png_bytes, rc_params
from functional_nn.app.report.page import CSS, html_table
from functional_nn.app.runs import atomic_write_bytes, atomic_write_text
from functional_nn.app.sweep import tables
from functional_nn.app.sweep.spec import Spec, describe

MAX_RANKED = 20
_POINT, _MEAN, _STOPPED = "tab:blue", "black", "#8c959f"


def _numeric(values: Sequence) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def metric_size(spec: Spec) -> tuple[int, int]:
    n = len(spec.space)
    cols = min(3, n)
    return 360 * cols + 40, 300 * math.ceil(n / cols) + 40


def draw_metric(spec: Spec, rows: Mapping[str, Mapping], summary: Sequence[Mapping]) -> bytes:
    """The metric against each swept setting (one panel per setting)."""
    import matplotlib
    names = sorted(spec.space)
    cols = min(3, len(names))
    means = {r["config"]: (r[f"{spec.metric}_mean"], r[f"{spec.metric}_std"]) for r in summary}
    with matplotlib.rc_context(rc_params()):
        fig = new_figure(metric_size(spec))
        fig.suptitle(f"{spec.metric} against each swept setting ({spec.method}, seeds {list(spec.seeds)})")
        for i, name in enumerate(names):
            ax = fig.add_subplot(math.ceil(len(names) / cols), cols, i + 1)
            values = [config[name] for config in spec.configs]
            numeric = _numeric(values)
            if numeric:
                position = {j: float(v) for j, v in enumerate(values)}
                kind = spec.space[name]
                positive = all(v > 0 for v in position.values())
                if positive and ((kind[0] == "range" and kind[3]) or
                                 (max(position.values()) / min(position.values()) >= 30)):
                    ax.set_xscale("log")
            else:
                labels = sorted({_label(v) for v in values})
                position = {j: float(labels.index(_label(v))) for j, v in enumerate(values)}
                ax.set_xticks(range(len(labels)), [_short(s, 18) for s in labels],
                              rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
            for name_, c, _config, _seed in tables.trials(spec):
                row = rows.get(name_)
                if row is None:
                    continue
                y = tables.number(row.get(spec.metric))
                if math.isnan(y):
                    continue
                if row.get("status") == "ok":
                    ax.plot(position[c], y, "o", color=_POINT, alpha=0.45, markersize=4)
                elif row.get("status") == "stopped":
                    ax.plot(position[c], y, "x", color=_STOPPED, markersize=5)
            for c, (mean, std) in means.items():
                if not math.isnan(mean):
                    ax.errorbar(position[c], mean, yerr=std, fmt="_", color=_MEAN, markersize=12, capsize=3)
            ax.set_xlabel(name)
            ax.set_ylabel(spec.metric)
        return png_bytes(fig)


def _compact(config: Mapping) -> str:
    """A configuration for a picture's label: floats to 3 significant digits.

    >>> _compact({"lr": 0.004880302370595, "hidden": [256, 128], "optimizer": "adam"})
    'lr=0.00488, hidden=[256, 128], optimizer=adam'
    """
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={_label(v)}" for k, v in config.items())


def _label(value) -> str:
    return value if isinstance(value, str) else repr(value)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def ranking_size(summary: Sequence[Mapping]) -> tuple[int, int]:
    shown = min(MAX_RANKED, len(summary))
    return 1000, 80 + 26 * max(shown, 2)


def draw_ranking(spec: Spec, summary: Sequence[Mapping]) -> bytes:
    """The configurations best first: the metric's mean over seeds with its standard deviation."""
    import matplotlib
    ranked = [r for r in summary if not math.isnan(r[f"{spec.metric}_mean"])][:MAX_RANKED]
    with matplotlib.rc_context(rc_params()):
        fig = new_figure(ranking_size(summary))
        ax = fig.add_subplot()
        ys = list(range(len(ranked)))[::-1]
        means = [r[f"{spec.metric}_mean"] for r in ranked]
        stds = [r[f"{spec.metric}_std"] for r in ranked]
        ax.barh(ys, means, xerr=stds, color=_POINT, alpha=0.8, capsize=3)
        ax.set_yticks(ys, [_short(f"#{r['config']}: {_compact(spec.configs[r['config']])}", 80) for r in ranked])
        if means:
            lo = min(m - s for m, s in zip(means, stds))
            hi = max(m + s for m, s in zip(means, stds))
            pad = max(hi - lo, 1e-4) * 0.15
            ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel(f"{spec.metric}: mean over seeds, error bar ±1 standard deviation")
        ax.set_title(f"Ranking by {spec.metric} ({'higher' if spec.mode == 'max' else 'lower'} is better)")
        return png_bytes(fig)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}" if abs(value) >= 1e4 or abs(value) < 1e-3 else \
            f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


def render_html(spec: Spec, out: Path, rows: Mapping[str, Mapping], summary: Sequence[Mapping],
                pictures: Mapping[str, tuple[bytes, tuple[int, int], str]], *, seconds: float, ran: int,
                note: str | None) -> str:
    statuses = [r["status"] for r in rows.values()]
    best = summary[0] if summary and not math.isnan(summary[0][f"{spec.metric}_mean"]) else None
    results = [("sweep folder", str(out)), ("method", spec.method + (f" (min_epochs {spec.min_epochs}, eta "
                                                                       f"{spec.eta})" if spec.method == "halving"
                                                                       else "")),
               ("configurations x seeds", f"{len(spec.configs)} x {len(spec.seeds)} = {len(spec.configs) * len(spec.seeds)}"),
               ("trials: ok / stopped / diverged / failed / cancelled",
                " / ".join(str(statuses.count(s)) for s in ("ok", "stopped", "diverged", "failed", "cancelled"))),
               ("trials run by the last command", f"{ran} in {seconds:.1f} s"),
               ("training time of all trials", f"{tables.total_seconds(rows.values()):.1f} s")]
    if best is not None:
        results += [(f"best {spec.metric} (mean, std over seeds)",
                     f"{best[f'{spec.metric}_mean']:.4f} ({best[f'{spec.metric}_std']:.4f})"),
                    ("best configuration", f"#{best['config']}: {describe(spec.configs[best['config']])}"),
                    ("re-run it", f"fnn train --config {out / 'best.toml'}")]
    swept = sorted(spec.space)
    rank_header = ("rank", "config", *swept, "seeds", f"{spec.metric} mean", "std", "test acc. mean", "std",
                   "stopped", "not ok")
    rank_rows = [(str(r["rank"]), str(r["config"]), *(r[k] for k in swept), str(r["seeds"]),
                  _cell(r[f"{spec.metric}_mean"]), _cell(r[f"{spec.metric}_std"]), _cell(r["test_accuracy_mean"]),
                  _cell(r["test_accuracy_std"]), str(r["stopped"]), str(r["not_ok"])) for r in summary]
    trial_header = ("trial", *swept, "seed", "status", "epochs run", "val_accuracy", "val_loss", "test_accuracy",
                    "seconds", "error")
    trial_rows = [(r["trial"], *(r.get(k, "") for k in swept), str(r["seed"]), r["status"], str(r.get("epochs_run", "")),
                   *(_cell(tables.number(r.get(k))) for k in ("val_accuracy", "val_loss", "test_accuracy",
                                                               "seconds")), r.get("error", ""))
                  for name, *_ in tables.trials(spec) if (r := rows.get(name)) is not None]
    figures = []
    for file_name, (data, (width, height), caption) in pictures.items():
        uri = f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}"
        key = file_name.rsplit(".", 1)[0]
        figures.append(f'<figure id="fig-{key}">\n<img id="{key}" alt="{html.escape(file_name)}: '
                       f'{html.escape(caption)}" width="{width}" height="{height}" src="{uri}">\n'
                       f"<figcaption>{html.escape(file_name)}: {html.escape(caption)}</figcaption>\n</figure>")
    if note:
        figures.append(f"<p>{html.escape(note)}</p>")
    try:
        spec_text = (out / "sweep.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        spec_text = ""
    title = f"functional-nn sweep report: {out.name}"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}'
            f"</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            f"<h2>Results</h2>\n{html_table(results, ('measure', 'value'), (False, False))}\n"
            f"<h2>Ranking</h2>\n{html_table(rank_rows, rank_header, [True, True] + [False] * len(swept) + [True] * 7)}\n"
            f"<h2>Pictures</h2>\n" + "\n".join(figures) + "\n"
            f"<h2>Trials</h2>\n{html_table(trial_rows, trial_header, [False] * (len(swept) + 1) + [True, False] + [True] * 5 + [False])}\n"
            f"<h2>Sweep file</h2>\n<pre>{html.escape(spec_text)}</pre>\n</body>\n</html>\n")


def write(spec: Spec, out: Path, rows: Mapping[str, Mapping], summary: Sequence[Mapping], *, seconds: float,
          ran: int, plots: bool, output) -> None:
    """Draw the pictures (when ``plots`` and the plot extra is there) and write ``sweep.html``."""
    pictures, note = {}, None
    if plots and have_plotting():
        drawn = {"metric.png": (draw_metric(spec, rows, summary), metric_size(spec),
                                f"{spec.metric} against each swept setting: each finished trial a point, each "
                                "configuration's mean with its standard deviation over seeds; grey crosses: "
                                "trials stopped by halving (at their last epoch)."),
                 "ranking.png": (draw_ranking(spec, summary), ranking_size(summary),
                                 f"The best {MAX_RANKED} configurations at most, by the mean {spec.metric} over "
                                 "seeds; error bars: standard deviation.")}
        (out / "pictures").mkdir(exist_ok=True)
        for name, (data, _, _) in drawn.items():
            atomic_write_bytes(out / "pictures" / name, data)
        pictures = drawn
    elif plots:
        note = PLOT_EXTRA_HINT
        output.warn(f"fnn sweep: no pictures: {PLOT_EXTRA_HINT}")
    atomic_write_text(out / "sweep.html", render_html(spec, out, rows, summary, pictures, seconds=seconds, ran=ran,
                                                      note=note))


__all__ = ["draw_metric", "draw_ranking", "render_html", "write"]
