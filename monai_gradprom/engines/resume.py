"""Resuming a GradPromTrainer exactly from the newest checkpoint in a run's output folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from ignite.handlers import Checkpoint

__all__ = ["latest_checkpoint", "resume_from_checkpoint", "resume_from_latest"]

logger = logging.getLogger(__name__)


def latest_checkpoint(output_dir: str | os.PathLike, pattern: str = "checkpoint_*.pt") -> Path | None:
    """The newest training checkpoint in ``output_dir`` (checkpoints are written atomically, so the newest
    complete one is the one with the latest modification time), or None."""
    files = [p for p in Path(output_dir).glob(pattern) if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None


def resume_from_checkpoint(trainer, path: str | os.PathLike) -> Path:
    """Load networks, optimizers, scaler, RNG states and the engine's iteration from ``path`` *before*
    ``trainer.run()``, so that Ignite continues from the saved iteration (mid-epoch included).

    (MONAI's CheckpointLoader loads at STARTED, after Ignite has decided where the epoch begins, which is right
    for epoch boundaries only.)
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=trainer.state.device, weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    objects = trainer.checkpoint_dict()
    missing = sorted(set(objects) - set(checkpoint))
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing} needed to resume this run")
    try:
        Checkpoint.load_objects(to_load=objects, checkpoint=checkpoint, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} does not match this run's networks or optimizers: {exc}") from exc
    logger.info("resuming from %s at iteration %d", path, trainer.state.iteration)
    return path


def resume_from_latest(trainer, output_dir: str | os.PathLike) -> Path | None:
    """Resume from the newest checkpoint in ``output_dir``; start afresh (and say so) when there is none."""
    path = latest_checkpoint(output_dir)
    if path is None:
        logger.info("no checkpoint in %s: starting a new run", output_dir)
        return None
    return resume_from_checkpoint(trainer, path)
