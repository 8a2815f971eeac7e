"""Metric bars with error bars over seeds, from several ``metrics.json`` files (one per evaluated run).

A single run's number hides the seed-to-seed spread, which for small medical data sets is often as large as the
difference between strategies; this tool shows mean +- standard deviation over the runs of each group.
"""

from __future__ import annotations

import glob
import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai_gradprom.workflow import pyplot, save_figure, write_csv, write_json

__all__ = ["read_metrics", "summarize_metrics", "plot_metric_bars", "expand_groups", "group_by_field"]


def read_metrics(path: str | os.PathLike) -> dict:
    """One ``metrics.json`` as a dict; a missing or unreadable file fails naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"metrics file {path} is not valid JSON: {exc}") from exc


def expand_groups(groups: Mapping[str, str | Sequence[str]]) -> dict[str, list[Path]]:
    """``{group: glob or [paths / globs]}`` -> ``{group: [files]}``; a pattern matching nothing is an error."""
    out: dict[str, list[Path]] = {}
    for name, patterns in groups.items():
        patterns = [patterns] if isinstance(patterns, (str, os.PathLike)) else list(patterns)
        files: list[Path] = []
        for pattern in patterns:
            for part in str(pattern).split(","):
                matches = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
                if not matches:
                    raise FileNotFoundError(f"no metrics file matches {part!r} (group {name!r})")
                files.extend(Path(m) for m in matches)
        out[name] = files
    return out


def group_by_field(files: Sequence[str | os.PathLike], field: str = "strategy") -> dict[str, list[Path]]:
    """Group metrics files by one of their fields (e.g. the ``strategy`` the bundles write), in first-seen order."""
    out: dict[str, list[Path]] = {}
    for f in files:
        data = read_metrics(f)
        if field not in data:
            raise KeyError(f"metrics file {f} has no field {field!r} to group by (it has {sorted(data)})")
        out.setdefault(str(data[field]), []).append(Path(f))
    return out


def summarize_metrics(groups: Mapping[str, Sequence[str | os.PathLike]], metrics: Sequence[str]) -> dict:
    """``{group: {metric: {"mean", "std", "n", "values"}}}``; std is the sample standard deviation (0 for one
    run). A metric missing from a file is an error naming the file."""
    summary: dict[str, dict[str, dict]] = {}
    for name, files in groups.items():
        if not files:
            raise ValueError(f"group {name!r} has no metrics files")
        data = [(f, read_metrics(f)) for f in files]
        summary[name] = {}
        for metric in metrics:
            values = []
            for f, d in data:
                if metric not in d:
                    raise KeyError(f"metric {metric!r} not found in {f} (it has {sorted(d)})")
                values.append(float(d[metric]) if d[metric] is not None else math.nan)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[name][metric] = {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}
    return summary


def plot_metric_bars(
    groups: Mapping[str, Sequence[str | os.PathLike]],
    path: str | os.PathLike,
    metrics: Sequence[str] = ("psnr", "ssim", "accuracy"),
    baseline_prefix: str | None = "input_",
    json_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
) -> dict:
    """One panel per metric, one bar per group (mean, error bar = std over its files, dots = single runs).

    With ``baseline_prefix``, the unprocessed-input value (``input_<metric>``, written by the evaluator) is drawn
    as a dashed line where every file has it.
    """
    summary = summarize_metrics(groups, metrics)
    baselines: dict[str, float] = {}
    if baseline_prefix:
        for metric in metrics:
            values = [read_metrics(f).get(baseline_prefix + metric) for fs in groups.values() for f in fs]
            if values and all(v is not None for v in values):
                baselines[metric] = statistics.fmean(float(v) for v in values)
    plt = pyplot()
    names = list(summary)
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(3.0, 0.9 * len(names) + 1.4) * len(metrics), 3.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes.flat, metrics):
        means = [summary[n][metric]["mean"] for n in names]
        stds = [summary[n][metric]["std"] for n in names]
        x = range(len(names))
        ax.bar(x, means, yerr=stds, capsize=4, color=[colors[i % len(colors)] for i in x], alpha=0.8)
        for i, n in enumerate(names):
            vals = summary[n][metric]["values"]
            ax.scatter([i] * len(vals), vals, color="k", s=8, zorder=3)
        if metric in baselines:
            ax.axhline(baselines[metric], color="gray", linestyle="--", linewidth=1, label="no processing")
            ax.legend(fontsize=7, loc="lower right")
        span = [m - s for m, s in zip(means, stds)] + [m + s for m, s in zip(means, stds)]
        span = [v for v in span + [baselines.get(metric, math.nan)] if math.isfinite(v)]
        if span and max(span) > min(span) > 0:  # zoom in: differences between strategies are often small
            low, high = min(span), max(span)
            ax.set_ylim(max(0.0, low - 0.2 * (high - low)), high + 0.1 * (high - low))
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{metric} (n = {', '.join(str(summary[n][metric]['n']) for n in names)})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    payload = {"metrics": list(metrics), "groups": summary, "baselines": baselines,
               "files": {n: [str(f) for f in fs] for n, fs in groups.items()}}
    if json_path is not None:
        write_json(json_path, payload)
    if csv_path is not None:
        rows = [(n, m, s["mean"], s["std"], s["n"]) for n, ms in summary.items() for m, s in ms.items()]
        write_csv(csv_path, ("group", "metric", "mean", "std", "n"), rows)
    return payload
