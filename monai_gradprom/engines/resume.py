"""Resuming a GradPromTrainer exactly from the newest checkpoint in a run's output folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.handlers import Checkpoint

__all__ = ["latest_checkpoint", "resume_from_checkpoint", "resume_from_latest"]

logger = logging.getLogger(__name__)


def latest_checkpoint(
    output_dir: str | os.PathLike, pattern: str = "checkpoint_*.pt", final_filename: str | None = "model_final.pt"
) -> Path | None:
    """The newest training checkpoint in ``output_dir`` (checkpoints are written atomically, so the newest
    complete one is the one with the latest modification time), or None.

    The final checkpoint (``final_filename``) counts too: it holds the whole training state, and after a
    finished run it is the newest one (the interval checkpoints before it may be epochs older)."""
    files = [p for p in Path(output_dir).glob(pattern) if p.is_file()]
    if final_filename and (Path(output_dir) / final_filename).is_file():
        files.append(Path(output_dir) / final_filename)
    # on equal times the final checkpoint wins (it is written after the last interval one)
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name == final_filename)) if files else None


def resume_from_checkpoint(trainer, path: str | os.PathLike, config: Mapping[str, Any] | Any = None) -> Path:
    """Load networks, optimizers, scaler, RNG states and the engine's iteration from ``path`` *before*
    ``trainer.run()``, so that Ignite continues from the saved iteration (mid-epoch included).

    (MONAI's CheckpointLoader loads at STARTED, after Ignite has decided where the epoch begins, which is right
    for epoch boundaries only.)

    The trainer's own ``max_epochs`` (this run's config) replaces the one saved in the checkpoint, so a
    finished run resumed with a larger ``max_epochs`` continues to it. Ignite would restart a finished state
    from epoch 1 (and the saver would then overwrite its final checkpoint), so a checkpoint that has already
    reached this run's ``max_epochs`` is refused with a message instead. ``config``: this run's
    :class:`~monai_gradprom.config.RunConfig` (or its values); a checkpoint that records other settings is
    refused with the differences listed.
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=trainer.state.device, weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if config is not None:
        _check_recorded_config(path, checkpoint, config)
    max_epochs = trainer.state.max_epochs
    done_epochs = _epochs_done(checkpoint.get("trainer"))
    if max_epochs is not None and done_epochs is not None and done_epochs >= max_epochs:
        raise ValueError(
            f"cannot resume from {path}: that run already finished {done_epochs:g} epoch(s) and this run's "
            f"max_epochs is {max_epochs}. Nothing was trained or overwritten; pass a larger --max_epochs to "
            "continue training it, or choose another output_dir for a new run."
        )
    objects = trainer.checkpoint_dict()
    missing = sorted(set(objects) - set(checkpoint))
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing} needed to resume this run")
    try:
        Checkpoint.load_objects(to_load=objects, checkpoint=checkpoint, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} does not match this run's networks or optimizers: {exc}") from exc
    state = trainer.state
    if max_epochs is not None and state.max_epochs != max_epochs:
        logger.info("max_epochs: %s (this run) instead of %s (the checkpoint's run)", max_epochs, state.max_epochs)
        state.max_epochs = max_epochs
    logger.info("resuming from %s at iteration %d (epoch %d of %s)", path, state.iteration, state.epoch,
                state.max_epochs)
    return path


def _epochs_done(engine_state: Any) -> float | None:
    """Epochs completed in an Ignite engine's saved ``state_dict`` (fractional mid-epoch), None if unknown."""
    if not isinstance(engine_state, Mapping):
        return None
    if engine_state.get("iteration") is not None and engine_state.get("epoch_length"):
        return engine_state["iteration"] / engine_state["epoch_length"]
    return engine_state.get("epoch")


def _check_recorded_config(path: Path, checkpoint: Mapping, config: Any) -> None:
    """Refuse to continue a run with other settings than the ones its checkpoint records."""
    from monai_gradprom.config import config_differences, recorded_config

    saved = recorded_config(checkpoint)
    if saved is None:
        logger.warning("%s records no config (written before configs were recorded): settings not checked", path)
        return
    values = getattr(config, "values", config)
    differences = config_differences(saved, values)
    if differences:
        raise ValueError(
            f"cannot resume from {path}: it was trained with other settings than this run's config:\n  - "
            + "\n  - ".join(differences)
            + "\nResume with the checkpoint's settings, or choose another output_dir for a new run."
        )


def resume_from_latest(
    trainer, output_dir: str | os.PathLike, config: Mapping[str, Any] | Any = None
) -> Path | None:
    """Resume from the newest checkpoint in ``output_dir`` (the final one of a finished run included, see
    :func:`resume_from_checkpoint`); start afresh (and say so) when there is none."""
    path = latest_checkpoint(output_dir)
    if path is None:
        logger.info("no checkpoint in %s: starting a new run", output_dir)
        return None
    return resume_from_checkpoint(trainer, path, config)
