"""The benchmark's results: summaries of samples, ratios, the report document and its text table.

Pure functions over plain dicts and lists (no I/O, no clock); imports the standard library and the bench's
``configs``. The report is what ``--json`` prints.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from functional_nn.app.bench.configs import CONTENDERS

RATIOS = (("ours/floor", "ours", "floor"), ("ours/fed", "ours", "fed"), ("ours/torch", "ours", "torch"))


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median, min, max and the samples themselves.

    >>> summarize([3.0, 1.0, 2.0])
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'samples': [3.0, 1.0, 2.0]}
    """
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def ratio(num: Mapping | None, den: Mapping | None) -> dict[str, Any] | None:
    """Ratios of the medians and of the minima, and the per-round (paired) ratios, which drift affects least.

    On a shared machine the minimum is the run least disturbed by others; the median is what was typical.

    >>> ratio(summarize([2.0, 4.0]), summarize([1.0, 1.0]))["paired_max"], ratio(None, summarize([1.0]))
    (4.0, None)
    """
    if not num or not den:
        return None
    paired = [a / b for a, b in zip(num["samples"], den["samples"])]
    return {"of_medians": num["median"] / den["median"], "of_mins": num["min"] / den["min"],
            "paired_median": statistics.median(paired), "paired_min": min(paired), "paired_max": max(paired)}


def config_report(cfg: Mapping, samples: Mapping[str, list[float]]) -> dict[str, Any]:
    """One configuration's entry: its settings, what each contender is, timings (None: skipped) and ratios."""
    timings = {c: (summarize(samples[c]) if samples[c] else None) for c in CONTENDERS}
    return {
        "sizes": list(cfg["sizes"]),
        "activation": cfg["activation"],
        "optimizer": cfg["optimizer"],
        "lr": cfg["lr"],
        "impl": dict(cfg["impl"]),
        "timings": timings,
        "ratios": {name: ratio(timings[a], timings[b]) for name, a, b in RATIOS},
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as the text table ``bench`` prints without ``--json``."""
    m, s = report["machine"], report["settings"]
    blas = m["blas"]
    env = " ".join(f"{k}={v}" for k, v in m["env"].items() if v is not None) or "no OPENBLAS_*/OMP_* variables"
    lines = [
        "functional-nn benchmark: one process, alternating rounds",
        f"machine : {m['processor']}, {m['cpus']} CPUs, {m['platform']}",
        f"python {m['python']}, numpy {m['numpy']}, BLAS {blas['name']} {blas['version']}"
        f" ({blas.get('architecture') or '?'}, {blas.get('threading_layer') or '?'}), {blas['threads']} threads"
        f" [{blas['source']}]",
        f"env     : {env}",
        f"malloc  : {m['malloc']}",
        f"load avg: {' '.join(f'{v:.2f}' for v in m['load_before'])} (before)"
        f" -> {' '.join(f'{v:.2f}' for v in report['load_after'])} (after)",
        f"data    : {s['data']} ({s['rows']} rows), batch {s['batch_size']}, {s['steps']} steps/epoch,"
        f" {s['rounds']} round(s){' [--quick]' if s['quick'] else ''}",
        "",
    ]
    for key, cfg in report["configs"].items():
        lines += _config_lines(key, cfg)
    lines += _data_lines(report["data"])
    lines.append("")
    lines += _train_lines(report["train"])
    lines += _serve_lines(report.get("serve", {"skipped": "not measured"}))
    lines += _time_to_lines(report.get("time_to"), report["train"])
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def _config_lines(key: str, cfg: Mapping[str, Any]) -> list[str]:
    sizes = "-".join(str(v) for v in cfg["sizes"])
    lines = [f"config ({key}) {sizes} {cfg['activation']}, {cfg['optimizer']} lr {cfg['lr']:g}: seconds per epoch",
             f"  {'':9s} {'median':>8s} {'min':>8s} {'max':>8s} {'/floor':>7s} {'/torch':>7s}  what"]
    t = cfg["timings"]
    for name in CONTENDERS:
        row = t.get(name)
        if row is None:
            lines.append(f"  {name:9s} {'-':>8s} {'-':>8s} {'-':>8s} {'-':>7s} {'-':>7s}  {cfg['impl'][name]}")
            continue
        vs_floor = row["median"] / t["floor"]["median"]
        vs_torch = f"{row['median'] / t['torch']['median']:7.2f}" if t.get("torch") else f"{'-':>7s}"
        lines.append(f"  {name:9s} {row['median']:8.3f} {row['min']:8.3f} {row['max']:8.3f}"
                     f" {vs_floor:7.2f} {vs_torch}  {cfg['impl'][name]}")
    for name, _, _ in RATIOS:
        r = cfg["ratios"].get(name)
        if r:
            lines.append(f"  {name}: {r['of_medians']:.2f} of medians, {r['of_mins']:.2f} of minima,"
                         f" per round {r['paired_min']:.2f}-{r['paired_max']:.2f} (median {r['paired_median']:.2f})")
    return [*lines, ""]


def _data_lines(d: Mapping[str, Any]) -> list[str]:
    if d.get("skipped"):
        return [f"data: skipped ({d['skipped']})"]
    lines = [f"data: {d['path']} ({d['megabytes']:.1f} MB), seconds"]
    for name, label in (("first_parse", f"first parse: {d['reader']}"), ("loadtxt", "np.loadtxt(dtype=uint8)"),
                        ("cached_reload", "cached reload")):
        row = d[name]
        lines.append(f"  {label[:52]:52s} {row['median']:8.3f} {row['min']:8.3f} {row['max']:8.3f}")
    return lines


def _serve_lines(sv: Mapping[str, Any]) -> list[str]:
    if sv.get("skipped"):
        return [f"fnn serve round trip: skipped ({sv['skipped']})"]
    return [f"fnn serve round trip (280x280 PNG -> 28x28 -> 784-256-128-10): median {1000 * sv['median']:.2f} ms,"
            f" min {1000 * sv['min']:.2f}, max {1000 * sv['max']:.2f} ({len(sv['samples'])} drawings)"]


def _time_to_lines(tt: Mapping[str, Any] | None, tr: Mapping[str, Any]) -> list[str]:
    if tt is None:
        return []
    if tt.get("skipped"):
        return [f"time to accuracy: skipped ({tt['skipped']})"]
    reached = (f"reached {tt['target']:.4f} after epoch {tt['epochs']}" if tt["reached"]
               else f"did not reach {tt['target']:.4f} in {tt['epochs']} epochs")
    last = tt["history"][-1]["test_accuracy"]
    ours = (f"; the whole fnn train command above: {tr['seconds']:.1f} s wall" if not tr.get("skipped") else "")
    return [f"{tt['impl']}, fnn's default configuration: {reached} (test accuracy {last:.4f}), "
            f"{tt['train_seconds']:.1f} s of training (data loading and evaluation not counted){ours}"]


def _train_lines(tr: Mapping[str, Any]) -> list[str]:
    if tr.get("skipped"):
        return [f"fnn train: skipped ({tr['skipped']})"]
    acc = tr.get("test_accuracy")
    acc = f"{acc:.4f}" if isinstance(acc, float) else "?"
    cached = "data cached" if tr.get("data_cached") else "data cache not checked"
    return [f"{tr['command']} ({cached}): peak RSS {tr['peak_rss_mb']:.0f} MB, wall {tr['seconds']:.1f} s"
            f" for {tr.get('epochs', '?')} epochs, test accuracy {acc} (exit {tr['returncode']})"]
