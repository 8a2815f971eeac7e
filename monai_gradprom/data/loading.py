"""The few loading transforms MONAI lacks, shared by the loaders: mode converters for ``PILReader``, a
``LoadImaged`` whose failures name the file, an upright ITK frame, a placeholder mask for items without one.

Every loader turns its files into the same tensors: ``image`` float32 in [0, 1], ``(C, H, W)``; ``seg`` an integer
``(1, H, W)`` class map.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, PILReader
from monai.transforms import (
    AsDiscreted,
    CastToTyped,
    LoadImaged,
    MapTransform,
    Resized,
    ScaleIntensityRanged,
)

from monai_gradprom.data.checks import DataCheckError

__all__ = [
    "IGNORE_INDEX",
    "to_grayscale",
    "to_rgb",
    "NamedLoadImaged",
    "load_pil",
    "scale_8bit",
    "binarize_mask",
    "cast_seg",
    "resize",
    "UprightFramed",
    "FillMissingSegd",
]

#: The class index that PyTorch's ``CrossEntropyLoss`` ignores by default: the target of a sample whose label (or
#: a pixel whose class) is unknown, so that items with only one of two targets still collate into one batch.
IGNORE_INDEX = -100
#: Image files the 2D loaders take (lower-case suffixes; matching is case-insensitive).


def _high_bit_to_8bit(image):
    """16-bit / 32-bit / float grayscale -> 8-bit "L" by the image's own min..max (a 12-bit CT saved as 16-bit
    would be nearly black if scaled by the type's range)."""
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


def to_grayscale(image):
    """PIL converter: any mode to single-channel 8-bit "L". Alpha is dropped (scans saved as RGBA are opaque),
    palettes are expanded, colour uses ITU-R 601 luma, high-bit modes ("I;16", "I", "F") are min-max scaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_bit_to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == "L" else image.convert("L")


def to_rgb(image):
    """PIL converter: any mode to 8-bit RGB (grey replicated, alpha dropped, CMYK / palette converted)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _high_bit_to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


class NamedLoadImaged(LoadImaged):
    """``LoadImaged`` whose failures name the file: a decoder's own message ("image file is truncated", a short
    gzip stream) carries no path, and inside a ``CacheDataset`` or a ``DataLoader`` worker nothing else would tell
    which of thousands of files broke. Raises :class:`DataCheckError` (picklable, so it crosses worker
    processes) with the key, the path and the decoder's message."""

    def __call__(self, data: Mapping[Hashable, Any], reader: Any = None) -> dict[Hashable, Any]:
        if not self._loader.image_only:  # meta-dict mode: MONAI's own loop, every file of the item named
            try:
                return super().__call__(data, reader)
            except Exception as exc:  # noqa: BLE001 - re-raised with the paths
                files = ", ".join(f"{k} {data[k]}" for k in self.key_iterator(dict(data)))
                raise DataCheckError(f"cannot load {files}: {type(exc).__name__}: {exc}") from exc
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                d[key] = self._loader(d[key], reader)
            except Exception as exc:  # noqa: BLE001 - re-raised naming the one file that failed
                raise DataCheckError(f"cannot load {key} file {d[key]}: {type(exc).__name__}: {exc}") from exc
        return d


def load_pil(keys: KeysCollection, converter: Callable | None, allow_missing_keys: bool = False) -> LoadImaged:
    """:class:`NamedLoadImaged` with MONAI's ``PILReader`` in numpy order (rows first: ``reverse_indexing=False``),
    after ``converter`` fixes the mode. PIL identifies the format by content, so a JPEG saved as ``.png`` loads
    too."""
    return NamedLoadImaged(keys, reader=PILReader(converter=converter, reverse_indexing=False),
                           allow_missing_keys=allow_missing_keys)


def scale_8bit(keys: KeysCollection) -> ScaleIntensityRanged:
    """8-bit values 0..255 -> [0, 1] by the type's range (not per image): every image keeps its contrast."""
    return ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)


def binarize_mask(keys: KeysCollection, allow_missing_keys: bool = False) -> AsDiscreted:
    """A 0 / 255 mask -> {0, 1} (threshold at 128, robust to the odd anti-aliased or JPEG-ish grey value)."""
    return AsDiscreted(keys, threshold=128.0, allow_missing_keys=allow_missing_keys)


def cast_seg(keys: KeysCollection, allow_missing_keys: bool = False) -> CastToTyped:
    """Class maps as ``torch.int64``: what ``CrossEntropyLoss`` wants, and signed for :data:`IGNORE_INDEX`."""
    return CastToTyped(keys, dtype=torch.int64, allow_missing_keys=allow_missing_keys)


def resize(image_keys: Sequence[str], seg_keys: Sequence[str], spatial_size: Sequence[int] | int | None
           ) -> list[MapTransform]:
    """``Resized`` to ``spatial_size`` (``(H, W)``): images bilinear with anti-aliasing, class maps nearest
    (a class map must never be interpolated). Empty when ``spatial_size`` is ``None``."""
    if spatial_size is None:
        return []
    out: list[MapTransform] = []
    if image_keys:
        out.append(Resized(list(image_keys), spatial_size, mode="bilinear", anti_aliasing=True,
                           allow_missing_keys=True))
    if seg_keys:
        out.append(Resized(list(seg_keys), spatial_size, mode="nearest", allow_missing_keys=True))
    return out


class UprightFramed(MapTransform):
    """A channel-first 2D frame in ITK index order, ``(C, x, y[, 1])`` -> ``(C, rows, columns)`` as displayed.

    ITK (MHD) and ITK-written NIfTI store a frame with x (along a row) as the first index, so MONAI's
    ``ITKReader`` / ``NibabelReader`` return it transposed relative to the picture, MHD with an extra singleton z
    axis. Dropping trailing singleton axes and swapping x / y gives the same upright array for both files; the
    affine's first two columns are swapped with the axes, so it still maps indices to the same positions.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            while image.ndim > 3 and image.shape[-1] == 1:
                image = image[..., 0]
            if image.ndim != 3:
                source = getattr(image, "meta", {}).get("filename_or_obj", "an in-memory array")
                raise DataCheckError(f"{key} file {source}: expected a 2D frame (C, x, y[, 1]), got shape "
                                     f"{tuple(d[key].shape)} (a volume or a sequence?)")
            image = image.transpose(1, 2).contiguous()
            if isinstance(image, MetaTensor):
                affine = image.affine.clone()
                affine[:, [0, 1]] = affine[:, [1, 0]]
                image.affine = affine
            d[key] = image
        return d


class FillMissingSegd(MapTransform):
    """Give an item without a mask a class map of :data:`IGNORE_INDEX` the size of its image, so that items
    with and without masks collate into one batch and a segmentation loss with ``ignore_index`` skips them."""

    def __init__(self, keys: KeysCollection, reference_key: str = "image") -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.reference_key = reference_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            if d.get(key) is None:
                reference = d[self.reference_key]
                fill = torch.full((1, *reference.shape[1:]), IGNORE_INDEX, dtype=torch.int64)
                # a MetaTensor like its neighbours in the batch (MONAI's collate needs all or none)
                d[key] = MetaTensor(fill, meta=copy.deepcopy(reference.meta)) if isinstance(
                    reference, MetaTensor) else fill
        return d
