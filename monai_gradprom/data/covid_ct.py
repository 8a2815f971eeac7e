"""COVID-CT (UCSD-AI4H): CT slices from COVID-19 papers vs. non-COVID CT, as data lists for diagnosis.

Layout (the GitHub repository with its two image archives unzipped in place)::

    Images-processed/CT_COVID/*.png                      349 images, label 1
    Images-processed/CT_NonCOVID/*.jpg | *.png           397 images, label 0
    Data-split/COVID/{train,val,test}CT_COVID.txt        one bare file name per line
    Data-split/NonCOVID/{train,val,test}CT_NonCOVID.txt

The folders are searched up to three levels below ``root`` (an archive unzipped into a folder of its own name
still works). The official split is patient-level; it is used whenever ``Data-split`` is there. Without it
(``split="auto"``) or with ``split="random"`` the images are split with ``seed``, stratified by class.

Quirks handled: split files with CRLF line ends, trailing spaces and blank lines; names with ``%`` and spaces
(used verbatim: no URL decoding, no format strings); a few names whose extension in an early split file differs
from the file on disk (``.png`` listed, ``.jpeg`` stored: matched by stem, logged); ``.png`` files holding JPEG
data (PIL decodes by content); mixed modes (L, RGB, RGBA, P, 16-bit) all loaded as one grayscale channel; sizes
from about 100 to 1,600 pixels (``loading_transforms(spatial_size=...)`` resizes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from monai.transforms import EnsureChannelFirstd, MapTransform

from monai_gradprom.data.common import (
    DataCheckError,
    Datalists,
    ProblemLog,
    finalize_datalists,
    find_dir,
    list_images,
    load_pil,
    random_split,
    read_lines,
    require_dir,
    require_root,
    resize,
    scale_8bit,
    to_grayscale,
)

__all__ = ["CLASSES", "load_datalists", "loading_transforms", "resolve_name"]

logger = logging.getLogger(__name__)

#: ``label`` index -> class.
CLASSES = ("NonCOVID", "COVID")
_CLASS_DIRS = {1: ("CT_COVID", "COVID"), 0: ("CT_NonCOVID", "NonCOVID")}  # label: (image folder, split folder)
_SPLIT_FILES = {"training": "train", "validation": "val", "test": "test"}


def resolve_name(folder: Path, name: str, listing: dict[str, list[Path]] | None = None) -> Path:
    """The file ``name`` of a split list in ``folder``: verbatim if it exists, else the one file with the same
    stem and another image extension (case-insensitive), else the verbatim (missing) path for the checks to
    report."""
    path = folder / name
    if path.is_file():
        return path
    if listing is None:
        listing = _listing(folder)
    candidates = listing.get(Path(name).stem.lower(), [])
    if len(candidates) == 1:
        logger.info("split list names %s, using %s", name, candidates[0].name)
        return candidates[0]
    return path


def _listing(folder: Path) -> dict[str, list[Path]]:
    stems: dict[str, list[Path]] = {}
    for path in list_images(folder):
        stems.setdefault(path.stem.lower(), []).append(path)
    return stems


def load_datalists(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.25,
    split: str = "auto",
    check: bool = True,
    deep: bool = False,
    on_error: str = "raise",
) -> Datalists:
    """Training / validation / test data lists of COVID-CT: items ``{"image", "label", "id"}``, label 1 = COVID.

    Args:
        root: the COVID-CT repository folder (holding ``Images-processed`` and ``Data-split``).
        split: ``"official"`` (the ``Data-split`` lists, required), ``"random"`` (seeded, stratified, with
            ``val_fraction`` / ``test_fraction``), ``"auto"``: official when present.
        check, deep, on_error: see :func:`monai_gradprom.data.common.check_datalist` (a PNG cut off after its
            header is named by the default check, a damaged JPEG only with ``deep=True``).
    """
    if split not in ("auto", "official", "random"):
        raise ValueError(f"split must be 'auto', 'official' or 'random', got {split!r}")
    root = require_root(root)
    problems = ProblemLog(on_error)
    folders = {label: require_dir(root, image_dir, 3, "COVID-CT image folder")
               for label, (image_dir, _) in _CLASS_DIRS.items()}
    split_root = find_dir(root, "Data-split", 3) if split != "random" else None
    if split == "official" and split_root is None:
        raise FileNotFoundError(f"COVID-CT split lists not found: {root / 'Data-split'}")
    if split_root is not None:
        splits, source = _official(split_root, folders), split_root
    else:
        if split == "auto":
            logger.warning("no Data-split folder under %s: using a seeded random split", root)
        items = [_item(path, label) for label, folder in folders.items() for path in list_images(folder)]
        train, val, test = random_split(items, (1.0 - val_fraction - test_fraction, val_fraction, test_fraction),
                                        seed, stratify_key="label")
        splits, source = {"training": train, "validation": val, "test": test}, root
    return finalize_datalists(splits, source=source, keys=("image", "label"), check=check, deep=deep,
                              values={"label": range(len(CLASSES))}, problems=problems)


def _item(path: Path, label: int) -> dict:
    return {"image": str(path), "label": label, "id": f"{CLASSES[label]}/{path.name}"}


def _official(split_root: Path, folders: dict[int, Path]) -> dict[str, list[dict]]:
    splits: dict[str, list[dict]] = {name: [] for name in _SPLIT_FILES}
    seen: dict[str, Path] = {}
    for label, (image_dir, split_dir) in _CLASS_DIRS.items():
        listing = _listing(folders[label])
        for name, prefix in _SPLIT_FILES.items():
            list_file = split_root / split_dir / f"{prefix}{image_dir}.txt"
            for line in read_lines(list_file):
                path = resolve_name(folders[label], line, listing)
                if str(path) in seen:
                    raise DataCheckError(f"{path} is listed in both {seen[str(path)]} and {list_file}")
                seen[str(path)] = list_file
                splits[name].append(_item(path, label))
    return splits


def loading_transforms(keys: Sequence[str] = ("image",), spatial_size: Sequence[int] | None = None
                       ) -> list[MapTransform]:
    """Item -> ``image`` float32 ``(1, H, W)`` in [0, 1] whatever the file's mode; ``label`` untouched.
    ``spatial_size`` (``(H, W)``) resizes: the files' sizes differ widely, so batching needs it."""
    image_keys = [k for k in keys if k == "image"]
    if not image_keys:
        return []
    return [load_pil(image_keys, to_grayscale), EnsureChannelFirstd(image_keys), scale_8bit(image_keys),
            *resize(image_keys, [], spatial_size)]

