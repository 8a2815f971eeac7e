"""Transferability of recognition-aware processing (Liu et al., "Transferable Recognition-Aware Image
Processing", Table 2).

An IP trained with one recognizer is only useful if its outputs also help recognizers it never saw. The table
evaluates each IP's outputs on a set of recognizers trained independently on the same clean images: rows = the
processing (the recognizer IP was trained with, plus "plain processing" and "no processing"), columns = the
evaluating recognizer; entries = accuracy (classification) or mean foreground Dice (segmentation). A row of
identical recognizers has equal entries; the diagonal-like cells (IP trained with the evaluating architecture)
are the non-transfer case.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from monai_gradprom.analysis._common import iter_batches, progress
from monai_gradprom.workflow import enhance, pyplot, save_figure, write_csv, write_json

__all__ = ["TransferTable", "recognition_scores", "transfer_table", "train_recognizers", "plot_transfer_table"]

logger = logging.getLogger(__name__)


@dataclass
class TransferTable:
    """``values[i][j]``: the metric of recognizer ``columns[j]`` on the outputs of processing ``rows[i]``."""

    rows: list[str]
    columns: list[str]
    values: list[list[float]]
    metric: str
    n_images: int
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"metric": self.metric, "rows": self.rows, "columns": self.columns, "values": self.values,
                "n_images": self.n_images, **self.extra}

    def write(self, output_dir: str | os.PathLike, stem: str = "transfer") -> dict[str, Path]:
        """``<stem>.json``, ``<stem>.csv`` and ``<stem>.png`` in ``output_dir``, each written atomically."""
        output_dir = Path(output_dir)
        paths = {"json": output_dir / f"{stem}.json", "csv": output_dir / f"{stem}.csv", "png": output_dir / f"{stem}.png"}
        write_json(paths["json"], self.as_dict())
        write_csv(paths["csv"], ["processing"] + self.columns, ([r] + v for r, v in zip(self.rows, self.values)))
        plot_transfer_table(self, paths["png"])
        return paths


def recognition_scores(logits: torch.Tensor, truth: torch.Tensor, task_key: str = "label", num_classes: int = 2) -> torch.Tensor:
    """Per-image scores: 1/0 correctness for ``label``; for ``seg`` the mean Dice over foreground classes
    (MONAI ``compute_dice``, an empty class predicted empty counts 1, as the evaluator's ``ignore_empty=False``)."""
    if task_key == "label":
        return (logits.argmax(1) == truth.reshape(-1).long().to(logits.device)).float()
    if task_key == "seg":
        from monai.metrics import compute_dice

        pred = torch.nn.functional.one_hot(logits.max(1).indices, num_classes).movedim(-1, 1)
        mask = truth[:, 0] if truth.ndim == logits.ndim else truth
        true = torch.nn.functional.one_hot(mask.long().to(logits.device), num_classes).movedim(-1, 1)
        return compute_dice(pred, true, include_background=False, ignore_empty=False).mean(1)
    raise ValueError(f"no recognition score for task key {task_key!r} (known: 'label', 'seg')")


@torch.no_grad()
def transfer_table(
    enhancers: Mapping[str, nn.Module | None],
    recognizers: Mapping[str, nn.Module],
    data: Mapping[str, torch.Tensor],
    task_key: str = "label",
    num_classes: int = 2,
    batch_size: int = 16,
    show_progress: bool = True,
    clean_row: str | None = None,
) -> TransferTable:
    """Evaluate every recognizer on every enhancer's outputs.

    Args:
        enhancers: ``{row name: IP}``; ``None`` is "no processing" (the input, resized to the target's size).
        recognizers: ``{column name: recognizer}``, trained on clean images (see :func:`train_recognizers`).
        data: stacked tensors with ``image``, ``target`` and the ``task_key`` truth (see ``load_split``).
        clean_row: name of an extra last row scoring the clean targets (the recognizers' upper bound).
    """
    if not enhancers or not recognizers:
        raise ValueError("need at least one enhancer (row) and one recognizer (column)")
    for key in ("image", "target", task_key):
        if key not in data:
            raise KeyError(f"evaluation data lacks {key!r} (has {sorted(data)})")
    for net in recognizers.values():
        net.eval()
    rows = list(enhancers.items()) + ([(clean_row, "clean")] if clean_row else [])
    sums = {r: {c: 0.0 for c in recognizers} for r, _ in rows}
    n = len(data["image"])
    for row, ip in progress(rows, "transfer table rows", enable=show_progress):
        for batch in iter_batches(data, batch_size):
            if isinstance(ip, str):
                processed = batch["target"]
            else:
                processed = enhance(ip, batch["image"], batch["target"], batch_size)
            for col, recognizer in recognizers.items():
                device = next(recognizer.parameters()).device
                logits = recognizer(processed.to(device)).float()
                sums[row][col] += float(recognition_scores(logits, batch[task_key], task_key, num_classes).sum())
    values = [[sums[r][c] / n for c in recognizers] for r, _ in rows]
    metric = "accuracy" if task_key == "label" else "dice"
    return TransferTable(rows=[r for r, _ in rows], columns=list(recognizers), values=values, metric=metric, n_images=n)


def plot_transfer_table(table: TransferTable, path: str | os.PathLike) -> None:
    """The table as an annotated heatmap (rows = processing, columns = evaluating recognizer)."""
    plt = pyplot()
    values = torch.tensor(table.values)
    fig, ax = plt.subplots(figsize=(1.3 * len(table.columns) + 2.2, 0.5 * len(table.rows) + 1.4))
    image = ax.imshow(values.numpy(), cmap="viridis", aspect="auto")
    low, high = float(values.min()), float(values.max())
    for i in range(len(table.rows)):
        for j in range(len(table.columns)):
            v = float(values[i, j])
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if v < (low + high) / 2 else "black")
    ax.set_xticks(range(len(table.columns)))
    ax.set_xticklabels(table.columns, fontsize=8)
    ax.set_yticks(range(len(table.rows)))
    ax.set_yticklabels(table.rows, fontsize=8)
    ax.set_xlabel("evaluating recognizer", fontsize=8)
    ax.set_ylabel("processing (trained with)", fontsize=8)
    ax.set_title(f"{table.metric} on processed images (n = {table.n_images})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def train_recognizers(
    build: Callable[[str], nn.Module],
    archs: Sequence[str],
    data_loader: Iterable,
    epochs: int,
    output_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    learning_rate: float = 1e-3,
    task_key: str = "label",
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, nn.Module]:
    """Train one recognizer per architecture on clean images (the batches' ``target``), with
    :func:`monai_gradprom.engines.pretrain_recognizer`, saving ``<output_dir>/<arch>.pt``.

    ``build(arch)`` returns an untrained network (e.g. the bundle's ``vr_network_def`` with ``arch`` replaced).
    A checkpoint that already exists is loaded instead of retrained, so an interrupted run resumes per
    architecture. Returns ``{arch: trained network}`` in eval mode.
    """
    from monai_gradprom.engines.pretrain import pretrain_recognizer

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trained = {}
    for i, arch in enumerate(archs):
        torch.manual_seed(seed + i)
        network = build(arch).to(device)
        checkpoint = output_dir / f"{arch}.pt"
        handlers = []
        if show_progress and not checkpoint.is_file():
            from ignite.handlers import ProgressBar

            handlers.append(ProgressBar(persist=False, desc=f"train {arch}"))
        logger.info("recognizer %s: %s", arch, "loading " + str(checkpoint) if checkpoint.is_file() else "training")
        optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        pretrain_recognizer(network, data_loader, optimizer, epochs, device, task_key=task_key,
                            checkpoint=checkpoint, handlers=handlers)
        trained[arch] = network.eval()
    return trained
