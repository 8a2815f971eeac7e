"""Checking and finalising data lists: every loader fails the same way *before* training (an exception naming
the offending path) or, with ``on_error="skip"``, drops the bad item and reports it.

Sizes come from headers and contents are checked only where they can hold a bad value
(:mod:`monai_gradprom.data.content`), so checking thousands of files costs seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence

from monai_gradprom.data.checks import DataCheckError
from monai_gradprom.data.content import content_problem, describe_values, read_size

__all__ = ["SPLITS", "Datalists", "ProblemLog", "check_datalist", "finalize_datalists"]

logger = logging.getLogger("monai_gradprom.data.common")

#: The keys of every ``load_datalists`` result, in order.
SPLITS = ("training", "validation", "test")


class Datalists(dict):
    """``{"training": [...], "validation": [...], "test": [...]}``, plus :attr:`skipped`: the items dropped with
    ``on_error="skip"`` (each ``{"split", "path", "reason"}``). A plain ``dict`` to every consumer."""

    def __init__(self, splits: Mapping[str, list[dict]], skipped: Iterable[dict] = ()) -> None:
        super().__init__((name, list(splits.get(name, []))) for name in SPLITS)
        self.skipped: list[dict] = list(skipped)


class ProblemLog:
    """Raise at the first problem (``on_error="raise"``) or record it and go on (``"skip"``).

    Missing files raise :class:`FileNotFoundError`, everything else :class:`DataCheckError` (a ``ValueError``);
    the message always names the path.
    """

    def __init__(self, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.skipped: list[dict] = []

    def report(self, path: str | os.PathLike, reason: str, *, missing: bool = False, split: str = "") -> None:
        if self.on_error == "raise":
            hint = " (pass on_error='skip' to drop such items)"
            raise (FileNotFoundError if missing else DataCheckError)(f"{reason}: {path}{hint}")
        self.skipped.append({"split": split, "path": str(path), "reason": reason})

    def report_error(self, error: Exception, path: str | os.PathLike, *, split: str = "") -> None:
        """Re-raise ``error`` (its message already names ``path``) or record it."""
        if self.on_error == "raise":
            raise error
        self.skipped.append({"split": split, "path": str(path), "reason": str(error)})


def _decoded_by_content_check(path: str, allowed: Sequence[int] | None) -> bool:
    return allowed is not None or path.lower().endswith((".mhd", ".mha", ".nii", ".nii.gz"))


def _item_problem(item: dict, keys: Sequence[str], optional_keys: Sequence[str], sizes: bool,
                  deep: bool, values: Mapping[str, Sequence[int]], spatial_dims: int | None
                  ) -> tuple[str, str, bool] | None:
    """``(path, reason, missing)`` for the first problem of an item, or ``None``."""
    where = item.get("image", item.get("id", "?"))
    for key in keys:
        if item.get(key) is None:
            return str(where), f"no {key!r} for this item", key != "label"
    if "label" in values and item.get("label") is not None and item["label"] not in values["label"]:
        return str(where), f"label {item['label']!r} is not one of the classes {describe_values(values['label'])}", False
    file_keys = [k for k in (*keys, *optional_keys) if k != "label" and isinstance(item.get(k), str)]
    for key in file_keys:
        if not os.path.isfile(item[key]):
            what = "image" if key == "image" else f"{key} of image {item.get('image')}"
            return item[key], f"{what} not found", True
    if not sizes:
        return None
    found = {}
    for key in file_keys:
        try:  # files the content check decodes anyway are not decoded twice
            found[key] = read_size(item[key], deep and not _decoded_by_content_check(item[key], values.get(key)))
        except FileNotFoundError as exc:  # e.g. the .raw file of an .mhd header
            return item[key], str(exc), True
        except DataCheckError as exc:
            cause = exc.__cause__ or exc
            return item[key], f"unreadable {key} file ({type(cause).__name__}: {cause})", False
        if spatial_dims is not None and len(found[key]) != spatial_dims:
            return item[key], (f"{key} has size {found[key]}: expected a {spatial_dims}-D frame, not a volume or "
                               f"sequence"), False
    for key in file_keys:
        if key != "image" and "image" in found and found[key] != found["image"]:
            return item[key], (f"size mismatch: {key} is {found[key]} (rows, columns) but image {item['image']} is "
                               f"{found['image']}"), False
    for key in file_keys:
        reason = content_problem(item[key], values.get(key), deep=deep, what=key)
        if reason is not None:
            return item[key], reason, False
    return None


def check_datalist(
    datalist: Sequence[dict],
    keys: Sequence[str] = ("image", "seg"),
    *,
    optional_keys: Sequence[str] = (),
    sizes: bool = True,
    deep: bool = False,
    values: Mapping[str, Sequence[int]] | None = None,
    spatial_dims: int | None = 2,
    problems: ProblemLog | None = None,
    split: str = "",
) -> list[dict]:
    """Check every item before training; return the items that pass.

    Each item must have every key in ``keys`` (``"label"``: an int, other keys: an existing file); keys in
    ``optional_keys`` are checked only where present. ``values``: the allowed class indices per key (``"label"``
    the item's int, a file key its decoded pixels, e.g. ``{"seg": range(4)}``). With ``sizes`` the headers are
    read (an unreadable file is a problem), every file must have ``spatial_dims`` axes (``None``: any), every mask
    its image's size, and the content must pass :func:`content_problem` (class values, finite volumes, intact
    PNG bodies); ``deep`` decodes every file. A problem raises (the default ``ProblemLog``) or is recorded in
    ``problems`` and the item dropped.
    """
    problems = problems or ProblemLog("raise")
    values = dict(values or {})
    kept = []
    for item in datalist:
        problem = _item_problem(item, keys, optional_keys, sizes, deep, values, spatial_dims)
        if problem is None:
            kept.append(item)
        else:
            path, reason, missing = problem
            problems.report(path, reason, missing=missing, split=split)
    return kept


def finalize_datalists(
    splits: Mapping[str, list[dict]],
    *,
    source: str | os.PathLike,
    keys: Sequence[str] | Mapping[str, Sequence[str]],
    optional_keys: Sequence[str] = (),
    check: bool = True,
    deep: bool = False,
    values: Mapping[str, Sequence[int]] | None = None,
    spatial_dims: int | None = 2,
    problems: ProblemLog | None = None,
    allow_empty: Sequence[str] = (),
) -> Datalists:
    """Check every split (``check``; ``values``, ``spatial_dims``, ``deep``: see :func:`check_datalist`), refuse an
    empty one (unless named in ``allow_empty``: the data set has no such split) with a message naming ``source``,
    and log what ``on_error="skip"`` dropped. ``keys``: the required keys, or ``{split: keys}`` where splits
    differ (a test set without ground truth)."""
    problems = problems or ProblemLog("raise")
    result = {}
    for name in SPLITS:
        items = list(splits.get(name, []))
        required = keys[name] if isinstance(keys, Mapping) else keys
        if check:
            items = check_datalist(items, required, optional_keys=optional_keys, deep=deep, values=values,
                                   spatial_dims=spatial_dims, problems=problems, split=name)
        if not items and name not in allow_empty:
            dropped = sum(1 for s in problems.skipped if s["split"] == name)
            why = f" after skipping {dropped} bad item(s)" if dropped else ""
            raise DataCheckError(f"the {name!r} split is empty{why}: {source}")
        result[name] = items
    if problems.skipped:
        logger.warning("skipped %d bad item(s): %s", len(problems.skipped),
                       "; ".join(f"{s['path']} ({s['reason']})" for s in problems.skipped))
    return Datalists(result, problems.skipped)
