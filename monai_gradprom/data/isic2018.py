"""ISIC 2018 (skin lesions): lesion segmentation (Task 1) and diagnosis (Task 3) data lists, from the folders as
the challenge distributes them.

Layout (each folder is one download, unzipped side by side under ``root``; a folder may sit up to two levels
deeper, as some unzip tools nest it in a folder of the same name)::

    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg   (+ LICENSE.txt, ATTRIBUTION.txt: ignored)
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png   (8-bit, 0 background, 255 lesion)
    ISIC2018_Task1-2_Validation_Input/ + ISIC2018_Task1_Validation_GroundTruth/    (optional)
    ISIC2018_Task1-2_Test_Input/       + ISIC2018_Task1_Test_GroundTruth/          (optional)
    ISIC2018_Task3_Training_Input/ISIC_0024306.jpg
    ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv
        image,MEL,NV,BCC,AKIEC,BKL,DF,VASC     one-hot rows of "1.0" / "0.0", ids without ".jpg"
    ISIC2018_Task3_Validation_Input/ + ISIC2018_Task3_Validation_GroundTruth/...csv (optional; Test alike)

Splits: the challenge's training set has no official validation part, so it is split 80 / 20 with ``seed``
(stratified by diagnosis for classification), as the GradProm paper does; the official validation set (and,
with ``test_sets=("validation", "test")``, the official test set) becomes ``"test"``. When none of those was
downloaded (the common download: Task 1 training data only), ``"test"`` is the seeded 20 % held-out part of the
training set, as in the paper's 80 / 20 protocol: the same images as ``"validation"``, never trained on (logged).
``test_sets=()`` asks for no test data: ``"test"`` is then empty, and evaluating it fails with a clear error.

Targets: ``seg`` the mask path (loaded as {0, 1}); ``label`` the Task 3 class index in :data:`CLASSES` order.
``task="both"`` takes the union of the two tasks' images: where an image has both a mask and a diagnosis both
are used; an image with only one gets ``label = IGNORE_INDEX`` (-100) or no ``seg`` key, which
:func:`loading_transforms` fills with an ``IGNORE_INDEX`` mask, so one batch can mix them and losses with
``ignore_index=-100`` skip the missing target. (In the real 2018 release the two tasks' images do not overlap.)
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from monai.transforms import EnsureChannelFirstd, MapTransform

from monai_gradprom.data.common import (
    IGNORE_INDEX,
    DataCheckError,
    Datalists,
    FillMissingSegd,
    ProblemLog,
    binarize_mask,
    cast_seg,
    finalize_datalists,
    find_dir,
    list_images,
    load_pil,
    random_split,
    require_root,
    resize,
    scale_8bit,
    to_grayscale,
    to_rgb,
)

__all__ = ["CLASSES", "TASKS", "load_datalists", "loading_transforms", "read_task3_csv"]

logger = logging.getLogger(__name__)

#: Task 3 diagnoses, in the CSV's column order: the class index of ``label``.
CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
TASKS = ("segmentation", "classification", "both")
_SETS = {"training": "Training", "validation": "Validation", "test": "Test"}
_MAX_DEPTH = 2


def _folders(root: Path, official: str) -> dict[str, Path | None]:
    """The four folders of one official set (``Training`` / ``Validation`` / ``Test``), ``None`` where absent."""
    return {
        "t1_input": find_dir(root, f"ISIC2018_Task1-2_{official}_Input", _MAX_DEPTH),
        "t1_gt": find_dir(root, f"ISIC2018_Task1_{official}_GroundTruth", _MAX_DEPTH),
        "t3_input": find_dir(root, f"ISIC2018_Task3_{official}_Input", _MAX_DEPTH),
        "t3_gt": find_dir(root, f"ISIC2018_Task3_{official}_GroundTruth", _MAX_DEPTH),
    }


def read_task3_csv(path: Path) -> dict[str, int]:
    """``{image id: class index}`` from a Task 3 ground-truth CSV (one-hot float rows).

    Raises :class:`DataCheckError` naming the file for a wrong header or a row that is not one-hot.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Task 3 ground-truth CSV not found: {path}")
    labels = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:1] != ["image"] or any(c not in header for c in CLASSES):
            raise DataCheckError(f"expected the header image,{','.join(CLASSES)}, got {','.join(header)}: {path}")
        columns = [header.index(c) for c in CLASSES]
        for line, row in enumerate(reader, start=2):
            if not row or not row[0].strip():
                continue
            try:
                values = [float(row[c]) for c in columns]
            except (IndexError, ValueError) as exc:
                raise DataCheckError(f"row {line} is not a one-hot row ({exc}): {path}") from exc
            hot = [i for i, v in enumerate(values) if v >= 0.5]
            if len(hot) != 1:
                raise DataCheckError(f"row {line} ({row[0]}) is not one-hot: {path}")
            labels[row[0].strip()] = hot[0]
    return labels


def _segmentation_items(folders: dict[str, Path | None], root: Path, official: str) -> dict[str, dict]:
    """``{id: item}`` for every ``ISIC_*.jpg`` of the set's Task 1 input, with the expected mask path (a missing
    mask is reported by the checks, naming it)."""
    if folders["t1_input"] is None:
        return {}
    gt = folders["t1_gt"]
    if gt is None:
        raise FileNotFoundError(
            f"Task 1 masks not found: {root / f'ISIC2018_Task1_{official}_GroundTruth'} (the images are in "
            f"{folders['t1_input']})"
        )
    items = {}
    for image in list_images(folders["t1_input"], prefix="ISIC_", suffixes=(".jpg", ".jpeg")):
        items[image.stem] = {"image": str(image), "seg": str(gt / f"{image.stem}_segmentation.png"),
                             "id": image.stem}
    return items


def _classification_items(folders: dict[str, Path | None], root: Path, official: str) -> dict[str, dict]:
    """``{id: item}`` for every CSV row and every ``ISIC_*.jpg`` (a row without an image and an image without a
    row are both reported by the checks)."""
    if folders["t3_input"] is None:
        return {}
    name = f"ISIC2018_Task3_{official}_GroundTruth"
    gt = folders["t3_gt"]
    csv_path = (gt if gt is not None else root / name) / f"{name}.csv"
    labels = read_task3_csv(csv_path)
    images = {p.stem: p for p in list_images(folders["t3_input"], prefix="ISIC_", suffixes=(".jpg", ".jpeg"))}
    items = {}
    for image_id in sorted(set(labels) | set(images)):
        path = images.get(image_id, folders["t3_input"] / f"{image_id}.jpg")
        items[image_id] = {"image": str(path), "label": labels.get(image_id), "id": image_id}
    return items


def _set_items(root: Path, official: str, task: str) -> list[dict] | None:
    """The items of one official set for ``task``, or ``None`` when the set was not downloaded."""
    folders = _folders(root, official)
    seg = _segmentation_items(folders, root, official) if task != "classification" else {}
    cls = _classification_items(folders, root, official) if task != "segmentation" else {}
    if task == "segmentation" and folders["t1_input"] is None:
        return None
    if task == "classification" and folders["t3_input"] is None:
        return None
    if task == "both" and folders["t1_input"] is None and folders["t3_input"] is None:
        return None
    if task != "both":
        return list((seg or cls).values())
    merged = []
    for image_id in sorted(set(seg) | set(cls)):
        item = dict(cls.get(image_id, {}))
        item.update(seg.get(image_id, {}))  # Task 1's copy of the image where both tasks have it
        if item.get("label") is None:
            item["label"] = IGNORE_INDEX if image_id not in cls else None
        merged.append(item)
    return merged


def load_datalists(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    task: str = "segmentation",
    test_sets: Sequence[str] = ("validation",),
    check: bool = True,
    deep: bool = False,
    on_error: str = "raise",
) -> Datalists:
    """Training / validation / test data lists of ISIC 2018 (see the module docstring for layout and rules).

    Args:
        root: folder holding the unzipped ``ISIC2018_*`` folders.
        seed, val_fraction: the seeded split of the official training set into training / validation.
        task: ``"segmentation"`` (Task 1: ``seg``), ``"classification"`` (Task 3: ``label``) or ``"both"``.
        test_sets: official sets that form ``"test"``: ``"validation"`` and / or ``"test"``, where downloaded; when
            none of them was downloaded, ``"test"`` is the held-out ``val_fraction`` of the training set.
        check, deep, on_error: see :func:`monai_gradprom.data.common.check_datalist`; ``on_error="skip"`` drops
            bad items and lists them in the result's ``skipped``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    unknown = set(test_sets) - {"validation", "test"}
    if unknown:
        raise ValueError(f"test_sets may hold 'validation' and 'test', got {sorted(unknown)}")
    root = require_root(root)
    problems = ProblemLog(on_error)
    training = _set_items(root, "Training", task)
    if training is None:
        wanted = "ISIC2018_Task3_Training_Input" if task == "classification" else "ISIC2018_Task1-2_Training_Input"
        raise FileNotFoundError(f"ISIC 2018 training images not found: {root / wanted}")
    stratify = "label" if task != "segmentation" else None
    train, val = random_split(training, (1.0 - val_fraction, val_fraction), seed, stratify_key=stratify)
    test: list[dict] = []
    present = []
    for name in test_sets:
        items = _set_items(root, _SETS[name], task)
        if items is not None:
            test += items
            present.append(name)
    held_out = bool(test_sets) and not present
    keys = {"segmentation": ("image", "seg"), "classification": ("image", "label"), "both": ("image", "label")}[task]
    optional = ("seg",) if task == "both" else ()
    lists = finalize_datalists(
        {"training": train, "validation": val, "test": test}, source=root, keys=keys, optional_keys=optional,
        check=check, deep=deep, problems=problems, allow_empty=() if present else ("test",),
        values={"seg": (0, 255), "label": (*range(len(CLASSES)), IGNORE_INDEX)},  # masks as distributed: 0 / 255
    )
    if held_out:  # copied after the checks, so a bad item is checked (and reported) once
        lists["test"] = [dict(item) for item in lists["validation"]]
        logger.warning(
            "no official ISIC 2018 %s set under %s: 'test' is the seeded %g%% held-out part of the training set "
            "(seed %d, %d images, the same as 'validation', never trained on)",
            "/".join(test_sets), root, 100 * val_fraction, seed, len(lists["test"]),
        )
    return lists


def loading_transforms(keys: Sequence[str] = ("image", "seg"), spatial_size: Sequence[int] | None = None
                       ) -> list[MapTransform]:
    """Item -> ``image`` float32 RGB ``(3, H, W)`` in [0, 1], ``seg`` int64 ``(1, H, W)`` in {0, 1} (an item of
    ``task="both"`` without a mask gets an all-``IGNORE_INDEX`` map); ``label`` untouched. ``spatial_size``
    resizes both (masks by nearest neighbour)."""
    image_keys = [k for k in keys if k == "image"]
    seg_keys = [k for k in keys if k == "seg"]
    transforms: list[MapTransform] = []
    if image_keys:
        transforms += [load_pil(image_keys, to_rgb), EnsureChannelFirstd(image_keys), scale_8bit(image_keys)]
    if seg_keys:
        transforms += [
            load_pil(seg_keys, to_grayscale, allow_missing_keys=True),
            EnsureChannelFirstd(seg_keys, allow_missing_keys=True),
            binarize_mask(seg_keys, allow_missing_keys=True),
        ]
    transforms += resize(image_keys, seg_keys, spatial_size)
    if seg_keys:
        transforms += [cast_seg(seg_keys, allow_missing_keys=True)]
        if image_keys:
            transforms += [FillMissingSegd(seg_keys)]
    return transforms
