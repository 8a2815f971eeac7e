"""A new training run into the folder of a finished one: refused unless asked for, and then the old run's
results (model and evaluation files, written by this package) go with it, nothing else."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from monai_gradprom.config.checks import ConfigError, as_bool

__all__ = ["FINAL_CHECKPOINT", "RUN_RESULT_FILES", "run_result_files", "prepare_fresh_run"]

logger = logging.getLogger("monai_gradprom.config")

#: a finished run's final training checkpoint; its presence marks the folder as holding a finished run
FINAL_CHECKPOINT = "model_final.pt"
#: what a training run (checkpoints) and its evaluation (metrics) write in ``output_dir``, as glob patterns;
#: the VR pretraining cache (``vr_pretrained.pt``) is not among them: it records its own settings and is
#: checked when it is used (:func:`monai_gradprom.engines.pretrain_recognizer`)
RUN_RESULT_FILES = (FINAL_CHECKPOINT, "model.pt", "checkpoint_iteration=*.pt", "checkpoint_epoch=*.pt", "metrics.json",
                    "metrics_per_image.csv")


def run_result_files(output_dir: str | os.PathLike) -> list[Path]:
    """The files of :data:`RUN_RESULT_FILES` present in ``output_dir`` (plain files only), sorted."""
    folder = Path(output_dir)
    found = {p for pattern in RUN_RESULT_FILES for p in folder.glob(pattern) if p.is_file() and not p.is_symlink()}
    return sorted(found)


def prepare_fresh_run(output_dir: str | os.PathLike, resume: Any = False, overwrite: Any = False) -> list[Path]:
    """Before a training run that does not resume: refuse a folder holding a finished run, or, with
    ``overwrite``, remove that run's results so no stale model or metrics describe the new one.

    ``resume`` (the run continues the folder's run) leaves everything to the resume step. Otherwise a
    ``model_final.pt`` in ``output_dir`` stops the run with a :class:`ConfigError` naming it (training would
    silently replace it, and its ``metrics.json`` would then describe another model); ``overwrite=True``
    removes the files of :data:`RUN_RESULT_FILES` instead (only those: user files, the TensorBoard folder and
    the VR pretraining cache stay). ``resume`` and ``overwrite`` together are refused as contradictory. Under
    DDP only rank 0 removes. Returns the removed files.
    """
    resume, overwrite = as_bool(resume, "resume"), as_bool(overwrite, "overwrite")
    if resume:
        if overwrite:
            raise ConfigError(
                "resume and overwrite are both true: resume continues the run in output_dir, overwrite replaces "
                "it; pass one of them"
            )
        return []
    final = Path(output_dir) / FINAL_CHECKPOINT
    if not final.is_file():
        return []
    if not overwrite:
        raise ConfigError(
            f"{final} exists: output_dir {str(output_dir)!r} holds a finished run, which a new run would replace. "
            "Nothing was run. Pass --overwrite true to replace it (its model and metrics files are removed), "
            "--resume true to continue it with a larger --max_epochs, or choose another --output_dir."
        )
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return []
    removed = run_result_files(output_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    logger.warning("overwrite: removed the previous run's %s from %s",
                   ", ".join(p.name for p in removed), output_dir)
    return removed
