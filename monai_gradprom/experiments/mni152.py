"""MNI152 brain slices as a data source of the comparison: real images that ship inside nilearn (no download).

nilearn's MNI152 2009a T1 template with its grey / white matter probability maps, resampled to 1.5 mm, cut into
crops of axial and coronal slices from disjoint bands of slice positions (train / validation / test never share
a slice or its neighbours). Each crop carries a 4-class mask ``seg`` (background, grey matter, white matter,
other tissue) and a diagnosis-like ``label``: 1 when its white-matter share of the tissue exceeds the training
median, which can only be read by telling white from grey matter - exactly what noise and blur destroy.

``python -m monai_gradprom.experiments compare --bundle mni152`` (classification) or ``--bundle mni152_seg``
runs the comparison on it, through the demo bundle's networks with :data:`SOURCES`' overrides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["datalists", "SOURCES", "load_mni", "segmentation_labels", "band_split", "sample_crops"]


def _block_resample(volume: np.ndarray, mm: float) -> np.ndarray:
    """Resample a 1 mm volume to ``mm`` mm with linear interpolation after a box pre-filter (no aliasing)."""
    import torch
    import torch.nn.functional as F

    if mm == 1.0:
        return volume.astype(np.float32)
    x = torch.as_tensor(volume, dtype=torch.float32)[None, None]
    size = [max(1, int(round(s / mm))) for s in volume.shape]
    return F.interpolate(x, size=size, mode="area" if mm > 1 else "trilinear")[0, 0].numpy()


def load_mni(mm: float = 1.5) -> dict[str, np.ndarray]:
    """The MNI152 2009a T1 template and its GM / WM probability maps (shipped in nilearn), at ``mm`` mm."""
    from nilearn import datasets

    out = {}
    for key, loader in (("t1", datasets.load_mni152_template), ("gm", datasets.load_mni152_gm_template),
                        ("wm", datasets.load_mni152_wm_template)):
        image = loader(resolution=1)
        data = np.asarray(image.get_fdata(), dtype=np.float32)
        out[key] = _block_resample(data, mm)
    t1 = out["t1"]
    out["t1"] = np.clip(t1 / max(float(t1.max()), 1e-6), 0.0, 1.0)
    return out


HEAD_THRESHOLD = 0.05  # T1 (scaled to [0, 1]) above this is inside the head; the template is skull-stripped
TISSUE_THRESHOLD = 0.5


def segmentation_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """The 4-class mask: 0 background (T1 <= 0.05, outside the template's head/brain mask), 1 grey matter
    (GM probability >= 0.5 and > WM probability), 2 white matter (WM probability >= 0.5 and >= GM probability),
    3 other tissue (inside the mask but neither: CSF, ventricles, deep nuclei of low GM/WM probability)."""
    labels = np.zeros(t1.shape, dtype=np.int64)
    inside = t1 > HEAD_THRESHOLD
    labels[inside] = 3
    labels[inside & (gm >= TISSUE_THRESHOLD) & (gm > wm)] = 1
    labels[inside & (wm >= TISSUE_THRESHOLD) & (wm >= gm)] = 2
    return labels


def band_split(n: int, lo: int, hi: int, train: int = 10, gap: int = 4, test: int = 4) -> tuple[list[int], list[int]]:
    """Slice indices in ``[lo, hi)`` split into repeating bands: ``train`` slices for training, a ``gap``,
    ``test`` slices for testing, another ``gap``. No test slice lies within ``gap`` slices of a training one."""
    period = train + gap + test + gap
    train_idx, test_idx = [], []
    for i in range(max(lo, 0), min(hi, n)):
        phase = (i - lo) % period
        if phase < train:
            train_idx.append(i)
        elif train + gap <= phase < train + gap + test:
            test_idx.append(i)
    return train_idx, test_idx


def _slices(volume: np.ndarray, axis: int, indices: Iterable[int]) -> list[np.ndarray]:
    return [np.take(volume, i, axis=axis) for i in indices]


def _tissue_range(inside: np.ndarray, axis: int, min_fraction: float = 0.15) -> tuple[int, int]:
    """First / last index along ``axis`` whose slice is at least ``min_fraction`` of the largest slice's tissue."""
    other = tuple(a for a in range(3) if a != axis)
    area = inside.sum(axis=other)
    keep = np.nonzero(area >= min_fraction * area.max())[0]
    return int(keep[0]), int(keep[-1]) + 1


def mni_slices(mni: Mapping[str, np.ndarray]) -> dict[str, list[dict[str, Any]]]:
    """Axial (axis 2) and coronal (axis 1) slices of the template, split by :func:`band_split` on each axis.

    Returns ``{"train": [...], "test": [...]}`` of ``{"image": (H, W) float32, "seg": (H, W) int64, "plane",
    "index"}``.
    """
    labels = segmentation_labels(mni["t1"], mni["gm"], mni["wm"])
    inside = labels > 0
    out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for plane, axis in (("axial", 2), ("coronal", 1)):
        lo, hi = _tissue_range(inside, axis)
        train_idx, test_idx = band_split(mni["t1"].shape[axis], lo, hi)
        for part, indices in (("train", train_idx), ("test", test_idx)):
            for i, image, seg in zip(indices, _slices(mni["t1"], axis, indices), _slices(labels, axis, indices)):
                out[part].append({"image": image.astype(np.float32), "seg": seg, "plane": plane, "index": int(i)})
    return out


def sample_crops(
    slices: Sequence[Mapping[str, Any]], count: int, size: int, seed: int, min_tissue: float = 0.5,
    max_tries: int = 200,
) -> list[dict[str, Any]]:
    """``count`` random ``size`` x ``size`` crops whose tissue (non-background) share is at least ``min_tissue``;
    slices drawn uniformly. Each crop: ``image`` (1, size, size) float32, ``seg`` (1, size, size) int64."""
    rng = np.random.RandomState(seed)
    crops = []
    usable = [s for s in slices if min(s["image"].shape) >= size]
    if not usable:
        raise ValueError(f"no slice is at least {size} pixels on each side")
    while len(crops) < count:
        s = usable[rng.randint(len(usable))]
        h, w = s["image"].shape
        for _ in range(max_tries):
            y, x = rng.randint(h - size + 1), rng.randint(w - size + 1)
            seg = s["seg"][y:y + size, x:x + size]
            if (seg > 0).mean() >= min_tissue:
                crops.append({"image": s["image"][None, y:y + size, x:x + size].copy(), "seg": seg[None].copy(),
                              "plane": s["plane"], "index": s["index"], "yx": (int(y), int(x))})
                break
    return crops


def wm_share(seg: np.ndarray) -> float:
    """White-matter share of a crop's tissue: WM pixels / non-background pixels."""
    tissue = (seg > 0).sum()
    return float((seg == 2).sum() / tissue) if tissue else 0.0


def add_diagnosis_labels(crops: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """The image-level label: 1 when the crop's white-matter share of its tissue exceeds ``threshold`` (the median
    over the training crops), else 0. Recognisable only by telling WM from GM, which noise and blur blur."""
    for c in crops:
        c["label"] = int(wm_share(c["seg"]) > threshold)
    return crops



def _split_slices(slices: Sequence[Mapping[str, Any]]) -> tuple[list, list]:
    """Every other band of held-out slices for validation, the rest for test (disjoint slices)."""
    bands: dict[tuple[str, int], list] = {}
    for s in slices:
        bands.setdefault((s["plane"], s["index"] // 18), []).append(s)
    validation, test = [], []
    for i, key in enumerate(sorted(bands)):
        (validation if i % 2 else test).extend(bands[key])
    return validation, test


def datalists(crop: int = 48, num_train: int = 1536, num_val: int = 96, num_test: int = 256, mm: float = 1.5,
              seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``{"training", "validation", "test"}`` datalists of crops (``image`` (1, crop, crop) float32 in [0, 1],
    ``seg`` (1, crop, crop) int64, ``label`` int). The crops depend on ``seed``; the slice bands do not."""
    mni = load_mni(mm)
    parts = mni_slices(mni)
    held_val, held_test = _split_slices(parts["test"])
    train = sample_crops(parts["train"], num_train, crop, seed=seed * 3 + 1)
    val = sample_crops(held_val, num_val, crop, seed=seed * 3 + 2)
    test = sample_crops(held_test, num_test, crop, seed=seed * 3 + 3)
    threshold = float(np.median([wm_share(c["seg"]) for c in train]))
    out = {}
    for split, crops in (("training", train), ("validation", val), ("test", test)):
        add_diagnosis_labels(crops, threshold)
        out[split] = [{"image": c["image"], "seg": c["seg"], "label": c["label"]} for c in crops]
    return out


_LOAD = [{"_target_": "EnsureTyped", "keys": ["image", "seg"], "track_meta": False}]
# bundle overrides that turn the demo bundle into the MNI152 comparison (keys of bundles/demo/train.json)
SOURCES: dict[str, dict[str, Any]] = {
    "mni152": {
        "datalists": "$monai_gradprom.experiments.mni152.datalists(crop=@image_size, num_train=@num_train, "
                     "num_val=@num_val, num_test=@num_test)",
        "load_transforms": _LOAD, "degradation": "gaussian:0.2", "image_size": 48,
    },
    "mni152_seg": {
        "datalists": "$monai_gradprom.experiments.mni152.datalists(crop=@image_size, num_train=@num_train, "
                     "num_val=@num_val, num_test=@num_test)",
        "load_transforms": _LOAD, "degradation": "gaussian:0.2", "image_size": 64, "vr_target_key": "seg",
        "num_classes": 4, "vr_network_def": {"_target_": "monai_gradprom.networks.build_recognizer",
                                             "task": "segmentation", "arch": "@vr_arch", "spatial_dims": 2,
                                             "in_channels": 1, "num_classes": 4},
    },
}
