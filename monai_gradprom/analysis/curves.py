"""Training curves read back from TensorBoard event files (loss_ip, loss_vr, cos, gate, gate_rate, ...).

The bundles' TensorBoardStatsHandler writes training scalars and validation metrics into one log directory
from two writers, i.e. two event files. Each file is read by its own ``EventAccumulator``: one accumulator over
the directory would treat the second file's earlier steps as a restart and purge data ("orphaned" steps).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai_gradprom.workflow import pyplot, save_figure, write_csv

__all__ = ["read_scalars", "plot_training_curves", "DEFAULT_CURVE_TAGS", "smooth"]

DEFAULT_CURVE_TAGS = ("loss_ip", "loss_vr", "cos", "gate", "gate_rate")


def _event_files(logdir: Path) -> list[Path]:
    if logdir.is_file():
        return [logdir]
    if not logdir.is_dir():
        raise FileNotFoundError(f"TensorBoard log directory not found: {logdir}")
    files = sorted(p for p in logdir.rglob("*") if p.is_file() and "tfevents" in p.name)
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files (events.out.tfevents.*) under {logdir}")
    return files


def read_scalars(
    logdir: str | os.PathLike, tags: Sequence[str] | None = None
) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` sorted by step, for every scalar tag (or those in ``tags``) in the event
    files of ``logdir`` (searched recursively; a single event file also works). All points are kept (no
    TensorBoard reservoir sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    merged: dict[str, list[tuple[int, float, float]]] = {}
    for path in _event_files(Path(logdir)):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0}, purge_orphaned_data=False)
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            if tags is not None and tag not in tags:
                continue
            merged.setdefault(tag, []).extend((e.step, e.wall_time, e.value) for e in acc.Scalars(tag))
    return {tag: [(int(s), float(v)) for s, _, v in sorted(points)] for tag, points in merged.items()}


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's exponential moving average with bias correction (``weight`` 0 = raw values)."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm if norm > 0 else v)
    return out


def plot_training_curves(
    runs: Mapping[str, str | os.PathLike],
    path: str | os.PathLike,
    tags: Sequence[str] = DEFAULT_CURVE_TAGS,
    smoothing: float = 0.6,
    csv_path: str | os.PathLike | None = None,
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """One panel per tag, one line per run (``{name: tensorboard log dir}``), smoothed as TensorBoard does
    (the raw values faintly behind). Tags no run logged are left out (``plain`` has no ``cos``); a tag given
    explicitly that no run has is an error naming the log directories. Returns the raw scalars per run;
    ``csv_path`` also writes them as rows ``run, tag, step, value``."""
    if not runs:
        raise ValueError("no runs given")
    scalars = {name: read_scalars(logdir, tags) for name, logdir in runs.items()}
    # a tag a run logged only as NaN (gate_rate of plain, which has no gate) is a tag it does not have
    scalars = {name: {t: p for t, p in s.items() if any(math.isfinite(v) for _, v in p)} for name, s in scalars.items()}
    present = [t for t in tags if any(t in s for s in scalars.values())]
    if not present:
        raise KeyError(f"none of the tags {list(tags)} was logged in {[str(p) for p in runs.values()]}")
    plt = pyplot()
    cols = min(len(present), 3)
    rows = (len(present) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, tag in zip(axes.flat, present):
        for i, (name, runs_scalars) in enumerate(scalars.items()):
            if tag not in runs_scalars:
                continue
            steps, values = zip(*runs_scalars[tag])
            color = colors[i % len(colors)]
            if smoothing > 0 and len(values) > 2:
                ax.plot(steps, values, color=color, alpha=0.2, linewidth=0.8)
                ax.plot(steps, smooth(values, smoothing), color=color, label=name, linewidth=1.5)
            else:
                ax.plot(steps, values, color=color, label=name, marker="o" if len(values) < 20 else None, ms=3)
        ax.set_title(tag)
        ax.set_xlabel("epoch" if tag in ("gate_rate",) else "step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
    if csv_path is not None:
        rows_out = [
            (name, tag, step, value)
            for name, s in scalars.items()
            for tag, points in s.items()
            for step, value in points
        ]
        write_csv(csv_path, ("run", "tag", "step", "value"), rows_out)
    return scalars
