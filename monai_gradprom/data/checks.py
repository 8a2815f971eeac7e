"""Checking a data list's files before training starts, so a bad file fails in seconds, not hours in.

Every listed file is decoded once with the same readers inference uses (:func:`monai_gradprom.io.read_image`):
a missing, truncated or undecodable file, or one holding non-finite pixels (NaN / Inf: a float volume, which would
turn every weight trained on it into NaN), raises an error naming it, or, with ``on_error="skip"``, the item is
dropped and reported (and the report written as JSON next to the run's outputs).

The dataset loaders run the cheaper header-and-content check of :func:`monai_gradprom.data.common.check_datalist`
instead (it decodes only what can hold a bad value); this one decodes everything, in any format inference reads.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from monai_gradprom.io import read_image
from monai_gradprom.utils import atomic_write

__all__ = ["DataCheckError", "verify_datalist"]

logger = logging.getLogger(__name__)


class DataCheckError(ValueError):
    """A file of the data set is missing, cannot be decoded, or holds values no training may see."""


def _problem(path: object) -> str | None:
    if not isinstance(path, (str, os.PathLike)):
        return None  # in-memory arrays (e.g. the phantom) need no check
    path = Path(path)
    if not path.is_file():
        return "file not found"
    try:
        array = read_image(path).array
    except ValueError as exc:
        return str(exc.__cause__ or exc)
    if not np.isfinite(array).all():
        return "non-finite pixel values (NaN or Inf): fix or remove the file"
    return None


def verify_datalist(
    datalist: Sequence[dict],
    keys: Sequence[str] = ("image", "seg"),
    on_error: str = "raise",
    report_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[dict]:
    """Decode every file under ``keys`` of every item; return the list (minus bad items when skipping).

    ``on_error="raise"``: the first bad file raises :class:`DataCheckError` naming it and the reason.
    ``on_error="skip"``: bad items are dropped and listed in a warning and, if given, in ``report_path``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    kept, skipped = [], []
    for item in tqdm(datalist, desc="checking data", disable=not progress):
        problems = {key: reason for key in keys if key in item and (reason := _problem(item[key]))}
        if not problems:
            kept.append(item)
            continue
        if on_error == "raise":
            key, reason = next(iter(problems.items()))
            raise DataCheckError(f"bad {key} file {item[key]}: {reason} (pass on_error='skip' to drop such items)")
        skipped.append({"item": {k: str(v) for k, v in item.items() if k in keys}, "problems": problems})
    if skipped:
        logger.warning("skipped %d of %d items with unreadable files", len(skipped), len(datalist))
        if report_path is not None:
            text = json.dumps(skipped, indent=2)
            atomic_write(report_path, lambda tmp: Path(tmp).write_text(text))
    if not kept:
        raise DataCheckError(f"no usable item left after checking {len(datalist)} items")
    return kept
