"""The pieces of a bundle's model-zoo inference pipeline (``dataset`` -> ``preprocessing`` -> ``inferer`` ->
``postprocessing``) that MONAI does not provide, for callers that drive those ids themselves (MONAI Label,
Deploy-style apps). The bundle's own ``run`` enhances a folder with :class:`~monai_gradprom.inference.EnhanceDirectory`
(every format written back as it came, DICOM included).

- :class:`ImageFolderDataset`: MONAI's ``Dataset`` of ``{"image": path}`` for every supported image under a
  folder, listed when first used, so that a configuration can be loaded and checked (``check_properties``) before
  the folder exists.
- :class:`ScaleToUnitd`, :class:`MatchChannelsd`: the intensity and channel rules of the folder enhancer
  (8-bit images by their type's range, others by their min..max; grey repeated for a colour network, colour
  averaged for a grey one) on MONAI's ``LoadImaged(dtype=None)`` output.
- :class:`MatchInputGeometryd`: gives the network's output the input's metadata (affine, file name), with the
  voxel size divided by the network's zoom (a x4 super-resolver's output covers the same field of view), so that
  MONAI's ``SaveImaged`` writes it where the input lies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import Dataset, MetaTensor
from monai.transforms import MapTransform

from monai_gradprom.inference import find_images

__all__ = ["ImageFolderDataset", "MatchChannelsd", "MatchInputGeometryd", "ScaleToUnitd", "zoomed_affine"]


class ImageFolderDataset(Dataset):
    """``{"image": path}`` for every supported image under ``input_dir`` (see
    :func:`~monai_gradprom.inference.find_images`; ``exclude`` an output folder inside it), through ``transform``.
    The folder is read on first use (``len``, indexing, ``data``), not when the bundle is parsed."""

    def __init__(
        self,
        input_dir: str | os.PathLike,
        transform: Callable | Sequence[Callable] | None = None,
        exclude: str | os.PathLike | None = None,
        recursive: bool = True,
    ) -> None:
        self.input_dir, self.exclude, self.recursive = input_dir, exclude, recursive
        super().__init__(data=None, transform=transform)  # type: ignore[arg-type]

    @property
    def data(self) -> list[dict[str, str]]:  # type: ignore[override]
        if self._data is None:
            images = find_images(self.input_dir, self.recursive, exclude=self.exclude)
            self._data = [{"image": str(path)} for path in images]
        return self._data

    @data.setter
    def data(self, value: Sequence | None) -> None:
        self._data = None if value is None else list(value)


class ScaleToUnitd(MapTransform):
    """Intensities to [0, 1] as :func:`monai_gradprom.io.read_image` does with ``intensity="auto"``: a 1-byte
    integer image by its type's range (0..255), any other by its own min..max. Needs the loaded dtype
    (``LoadImaged(..., dtype=None)``); the result is float32."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if not value.dtype.is_floating_point and value.element_size() == 1:
                info = torch.iinfo(value.dtype)
                low, high = float(info.min), float(info.max)
            else:
                low, high = float(value.min()), float(value.max())
            d[key] = ((value.float() - low) / (high - low if high > low else 1.0)).clamp(0, 1)
        return d


class MatchChannelsd(MapTransform):
    """Give a channel-first image the network's ``channels``: grey repeated for a colour network, colour
    averaged to grey for a one-channel one (the folder enhancer instead enhances each colour channel alone)."""

    def __init__(self, keys: KeysCollection, channels: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.channels = int(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value, have = d[key], d[key].shape[0]
            if have == self.channels:
                continue
            if have == 1:
                d[key] = value.repeat(self.channels, *([1] * (value.ndim - 1)))
            elif self.channels == 1:
                d[key] = value.mean(0, keepdim=True)
            else:
                raise ValueError(f"{key!r} has {have} channels, the network takes {self.channels}")
        return d


def zoomed_affine(affine: torch.Tensor, zoom: Sequence[float]) -> torch.Tensor:
    """``affine`` of a grid whose voxels are ``zoom`` times smaller along each spatial axis, covering the same
    field of view: the columns are divided by the zoom, and the origin moves from the centre of the old first
    voxel to that of the new one (back by half an old voxel, forward by half a new one, along each axis)."""
    affine = torch.as_tensor(affine, dtype=torch.float64).clone()
    dims = len(zoom)
    scale = torch.as_tensor([float(z) for z in zoom], dtype=torch.float64)
    old_columns = affine[:-1, :dims].clone()
    affine[:-1, :dims] = old_columns / scale
    affine[:-1, -1] += old_columns @ ((1.0 / scale - 1.0) / 2)
    return affine


class MatchInputGeometryd(MapTransform):
    """Copy ``reference_key``'s metadata onto each of ``keys`` (the network's output), with the affine scaled by
    the zoom between their spatial shapes (see :func:`zoomed_affine`); the output values are clamped to [0, 1]."""

    def __init__(self, keys: KeysCollection, reference_key: str = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        reference = d[self.reference_key]
        if not isinstance(reference, MetaTensor):
            raise TypeError(f"{self.reference_key!r} must be a MetaTensor (MONAI's LoadImaged), got {type(reference)}")
        for key in self.key_iterator(d):
            value = torch.as_tensor(d[key]).detach().float().clamp(0, 1)
            if value.ndim != reference.ndim:
                raise ValueError(f"{key!r} has shape {tuple(value.shape)}, {self.reference_key!r} "
                                 f"{tuple(reference.shape)}: expected channel-first images of the same dimensions")
            zoom = [o / i for o, i in zip(value.shape[1:], reference.shape[1:])]
            meta = dict(reference.meta)
            affine = zoomed_affine(reference.affine, zoom).to(reference.affine.dtype)
            meta["affine"] = affine
            meta["spatial_shape"] = list(value.shape[1:])
            d[key] = MetaTensor(value.as_tensor() if isinstance(value, MetaTensor) else value, affine=affine, meta=meta)
        return d
