"""Lizard (colon histology, 20x; Graham et al. 2021): nucleus segmentation and a derived image-level label.

Layout (the three archives as distributed, unzipped side by side under ``root``)::

    Lizard_Images1/<name>.png             RGB
    Lizard_Images2/<name>.png
    Lizard_Labels/Labels/<name>.mat       MAT v5: inst_map (H, W) instance ids; id (N, 1); class (N, 1);
                                          bbox (N, 4) as y1, y2, x1, x2; centroid (N, 2) as x, y
    Lizard_Labels/info.csv                Filename,Source,Split   (Split: the fold, 1, 2 or 3)

A common mirror nests each folder one level deeper (``lizard_images1/Lizard_Images1/...``,
``lizard_labels/Lizard_Labels/...``): the folders are searched up to three levels below ``root``. The MAT arrays
come in whatever type the writer chose (float64, int32, uint16, uint8...): they are cast on reading.

Targets:

- ``seg``: the ``.mat`` path; :class:`LoadLizardLabeld` turns it into a ``(1, H, W)`` class map: each pixel of
  the instance with id ``id[k]`` gets ``class[k]``, background 0. Seven classes, see :data:`CLASSES`.
- ``label``: "inflammatory-rich", derived from the nuclei: 1 when inflammatory nuclei (neutrophil, lymphocyte,
  plasma cell, eosinophil) make up more than ``inflammatory_threshold`` of all the image's nuclei, else 0 (an
  image without nuclei is 0). Why this label: inflammatory infiltration of the mucosa is the image-level finding
  the six nucleus classes most directly encode, and it needs the fine texture that degradation destroys. Why
  0.25: inflammatory cells are roughly a fifth of Lizard's nuclei overall (epithelial and connective nuclei
  dominate), so a quarter is near the per-image median and gives roughly balanced classes; pass
  ``inflammatory_threshold="median"`` for an exactly balanced training set (the median of the training folds'
  fractions). Each item also carries ``inflammatory_fraction`` and ``num_nuclei``.

Splits: the official folds: ``train_folds=(1, 2)``, ``test_folds=(3,)``; validation is ``val_folds`` when given,
else a seeded ``val_fraction`` of the training images (stratified by ``label``).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirstd, MapTransform

from monai_gradprom.data.common import (
    DataCheckError,
    Datalists,
    ProblemLog,
    cast_seg,
    finalize_datalists,
    list_images,
    load_pil,
    random_split,
    require_dir,
    require_root,
    resize,
    scale_8bit,
    to_rgb,
)

__all__ = [
    "CLASSES",
    "INFLAMMATORY",
    "read_label",
    "class_map",
    "inflammatory_fraction",
    "LoadLizardLabel",
    "LoadLizardLabeld",
    "load_datalists",
    "loading_transforms",
]

logger = logging.getLogger(__name__)

#: Class-map values: 0 background, then Lizard's nucleus classes 1-6.
CLASSES = ("background", "neutrophil", "epithelial", "lymphocyte", "plasma", "eosinophil", "connective")
#: The inflammatory nucleus classes: neutrophil, lymphocyte, plasma cell, eosinophil.
INFLAMMATORY = (1, 3, 4, 5)
_MAX_DEPTH = 3


def read_label(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A Lizard ``.mat`` label with fixed types: ``inst_map`` int32 (H, W); ``id``, ``class`` int64 (N,);
    ``bbox`` int64 (N, 4) (y1, y2, x1, x2); ``centroid`` float64 (N, 2) (x, y). Raises
    :class:`DataCheckError` naming the file when it cannot be read or is inconsistent."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Lizard label not found: {path}")
    try:
        mat = loadmat(str(path))
        inst_map = np.asarray(mat["inst_map"])
        for name in ("inst_map", "id", "class"):  # a NaN would become INT_MIN below, silently background
            values = np.asarray(mat[name])
            if values.dtype.kind in "fc" and not np.isfinite(values).all():
                raise DataCheckError(f"{name} holds non-finite values (NaN or Inf): {path}")
        label = {
            "inst_map": np.rint(inst_map).astype(np.int32) if inst_map.dtype.kind == "f" else inst_map.astype(np.int32),
            "id": np.rint(np.asarray(mat["id"], dtype=np.float64)).astype(np.int64).reshape(-1),
            "class": np.rint(np.asarray(mat["class"], dtype=np.float64)).astype(np.int64).reshape(-1),
            "bbox": np.rint(np.asarray(mat.get("bbox", np.zeros((0, 4))), dtype=np.float64)).astype(np.int64)
            .reshape(-1, 4),
            "centroid": np.asarray(mat.get("centroid", np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2),
        }
    except DataCheckError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a label file is reported with its path
        raise DataCheckError(f"unreadable Lizard label ({type(exc).__name__}: {exc}): {path}") from exc
    if label["inst_map"].size and label["inst_map"].min() < 0:
        raise DataCheckError(f"inst_map holds negative instance ids (min {label['inst_map'].min()}): {path}")
    if label["inst_map"].ndim != 2:
        raise DataCheckError(f"inst_map has shape {label['inst_map'].shape}, expected (H, W): {path}")
    if label["id"].shape != label["class"].shape:
        raise DataCheckError(f"{label['id'].size} ids but {label['class'].size} classes: {path}")
    if label["class"].size and (label["class"].min() < 1 or label["class"].max() > 6):
        raise DataCheckError(f"nucleus classes outside 1..6 ({np.unique(label['class']).tolist()}): {path}")
    return label


def class_map(inst_map: np.ndarray, ids: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per-pixel class (int64, (H, W)): the class of the pixel's instance; background and instances missing from
    ``ids`` are 0."""
    size = int(max(inst_map.max(initial=0), ids.max(initial=0))) + 1
    lookup = np.zeros(size, dtype=np.int64)
    lookup[ids] = classes
    lookup[0] = 0
    return lookup[np.clip(inst_map, 0, None)]


def inflammatory_fraction(classes: np.ndarray) -> float:
    """Fraction of :data:`INFLAMMATORY` nuclei among all nuclei (0 for an image without nuclei)."""
    classes = np.asarray(classes).reshape(-1)
    return float(np.isin(classes, INFLAMMATORY).mean()) if classes.size else 0.0


class LoadLizardLabel:
    """``.mat`` path -> ``(1, H, W)`` int64 class map (a MetaTensor remembering its file): MONAI's ``LoadImage``
    cannot read MAT files."""

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        label = read_label(path)
        classes = class_map(label["inst_map"], label["id"], label["class"])
        return MetaTensor(torch.from_numpy(classes[None]), meta={"filename_or_obj": str(path)})


class LoadLizardLabeld(MapTransform):
    """Dictionary form of :class:`LoadLizardLabel`."""

    def __init__(self, keys: KeysCollection = "seg", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadLizardLabel()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


def _read_info(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"Lizard info.csv not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    if rows and not {"Filename", "Split"} <= set(rows[0]):
        raise DataCheckError(f"expected the columns Filename,Source,Split, got {','.join(rows[0])}: {path}")
    return rows


def load_datalists(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    train_folds: Sequence[int] = (1, 2),
    val_folds: Sequence[int] | None = None,
    test_folds: Sequence[int] = (3,),
    inflammatory_threshold: float | str = 0.25,
    check: bool = True,
    deep: bool = False,
    on_error: str = "raise",
) -> Datalists:
    """Training / validation / test data lists of Lizard: items ``{"image", "seg", "label", "id", "source",
    "fold", "inflammatory_fraction", "num_nuclei"}`` (see the module docstring). An empty ``test_folds`` gives
    an empty ``"test"`` split on purpose. Every label is decoded while listing (:func:`read_label`: finite,
    non-negative instance ids, classes 1..6); ``check``, ``deep``, ``on_error``: see
    :func:`monai_gradprom.data.common.check_datalist`."""
    folds = {"train": set(train_folds), "val": set(val_folds or ()), "test": set(test_folds)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if folds[a] & folds[b]:
            raise ValueError(f"fold(s) {sorted(folds[a] & folds[b])} in both {a}_folds and {b}_folds")
    if not folds["train"]:
        raise ValueError("train_folds is empty")
    root = require_root(root)
    problems = ProblemLog(on_error)
    image_dirs = [require_dir(root, name, _MAX_DEPTH, "Lizard image folder")
                  for name in ("Lizard_Images1", "Lizard_Images2")]
    labels_root = require_dir(root, "Lizard_Labels", _MAX_DEPTH, "Lizard label folder")
    mat_dir = require_dir(labels_root, "Labels", 1, "Lizard label folder")
    info_path = labels_root / "info.csv"
    images = {p.stem: p for folder in image_dirs for p in list_images(folder, suffixes=(".png",))}

    items: list[dict] = []
    for row in _read_info(info_path):
        name = Path(row["Filename"]).stem if row["Filename"].lower().endswith(".png") else row["Filename"]
        try:
            fold = int(float(row["Split"]))
        except ValueError:
            problems.report(info_path, f"row {name!r} has no fold number ({row['Split']!r})")
            continue
        if fold not in folds["train"] | folds["val"] | folds["test"]:
            continue
        mat = mat_dir / f"{name}.mat"
        try:
            classes = read_label(mat)["class"]
        except (FileNotFoundError, DataCheckError) as exc:
            problems.report_error(exc, mat)
            continue
        items.append({
            "image": str(images.get(name, image_dirs[0] / f"{name}.png")), "seg": str(mat), "id": name,
            "source": row.get("Source", ""), "fold": fold, "inflammatory_fraction": inflammatory_fraction(classes),
            "num_nuclei": int(classes.size),
        })

    train = [item for item in items if item["fold"] in folds["train"]]
    threshold = _threshold(inflammatory_threshold, train)
    for item in items:
        item["label"] = int(item["inflammatory_fraction"] > threshold)
    if folds["val"]:
        val = [item for item in items if item["fold"] in folds["val"]]
    else:
        train, val = random_split(train, (1.0 - val_fraction, val_fraction), seed, stratify_key="label")
    test = [item for item in items if item["fold"] in folds["test"]]
    result = finalize_datalists({"training": train, "validation": val, "test": test}, source=info_path,
                                keys=("image", "seg", "label"), check=check, deep=deep, values={"label": (0, 1)},
                                problems=problems,
                                allow_empty=() if folds["test"] else ("test",))
    for name, split in result.items():
        positives = sum(item["label"] for item in split)
        logger.info("Lizard %s: %d images, %d inflammatory-rich (threshold %.3f)", name, len(split), positives,
                    threshold)
    return result


def _threshold(value: float | str, train: Sequence[dict]) -> float:
    if value == "median":
        fractions = [item["inflammatory_fraction"] for item in train]
        return float(np.median(fractions)) if fractions else 0.5
    if isinstance(value, str):
        raise ValueError(f"inflammatory_threshold must be a number or 'median', got {value!r}")
    return float(value)


def loading_transforms(keys: Sequence[str] = ("image", "seg"), spatial_size: Sequence[int] | None = None
                       ) -> list[MapTransform]:
    """Item -> ``image`` float32 RGB ``(3, H, W)`` in [0, 1]; ``seg`` int64 ``(1, H, W)`` class map in 0..6
    (from the ``.mat``); ``label`` untouched. ``spatial_size`` resizes both (class maps by nearest neighbour)."""
    image_keys = [k for k in keys if k == "image"]
    seg_keys = [k for k in keys if k == "seg"]
    transforms: list[MapTransform] = []
    if image_keys:
        transforms += [load_pil(image_keys, to_rgb), EnsureChannelFirstd(image_keys), scale_8bit(image_keys)]
    if seg_keys:
        transforms += [LoadLizardLabeld(seg_keys)]
    transforms += resize(image_keys, seg_keys, spatial_size)
    if seg_keys:
        transforms += [cast_seg(seg_keys)]
    return transforms
