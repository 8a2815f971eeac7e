"""What every format shares: which files are images, the record of a read image, the intensity mapping and the
grid of a zoomed result."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SUPPORTED_SUFFIXES",
    "INTENSITY_MODES",
    "DERIVATION",
    "NotAnImageError",
    "EnhanceInput",
    "is_dicom",
    "image_format",
]

SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")
INTENSITY_MODES = ("auto", "dtype", "minmax")
DERIVATION = "Enhanced by monai_gradprom (task-driven image quality enhancement)"


class NotAnImageError(ValueError):
    """A file of a supported format that holds no image (a DICOMDIR, a structured report, an RT plan...).

    A folder walk skips these with a warning instead of failing: they are normal members of DICOM exports."""


@dataclass
class EnhanceInput:
    """A source image as the enhancer sees it, plus everything needed to write the result back.

    ``array``: float32, channel-first ``(C, H, W[, D, ...])`` in [0, 1]. ``dtype``: the (native byte order)
    type the values are written back in. ``low`` / ``high``: the stored values mapped to 0 / 1 (``invert``:
    mapped to 1 / 0 instead, for DICOM MONOCHROME1). ``meta``: the format's own metadata.
    """

    path: Path
    format: str
    array: np.ndarray
    dtype: np.dtype
    low: float
    high: float
    invert: bool = False
    intensity: str = "auto"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_stored(self, array: np.ndarray) -> np.ndarray:
        """The inverse of the read mapping: [0, 1] -> stored values in ``dtype`` (rounded and clipped)."""
        unit = np.clip(np.asarray(array, dtype=np.float64), 0.0, 1.0)
        if self.invert:
            unit = 1.0 - unit
        values = unit * (self.high - self.low) + self.low
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        return values.astype(self.dtype)


def is_dicom(path: str | os.PathLike) -> bool:
    """DICOM by suffix or by the ``DICM`` magic at byte 128 (DICOM files from scanners often have no suffix)."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def image_format(path: str | os.PathLike) -> str | None:
    """``png``, ``jpeg``, ``dicom``, ``nifti`` or ``itk``; None when the file is not a supported image."""
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".png"):
        return "png"
    if name.endswith((".jpg", ".jpeg")):
        return "jpeg"
    if name.endswith((".mhd", ".mha", ".nrrd")):
        return "itk"
    if is_dicom(path):
        return "dicom"
    return None


# -- intensity mapping --------------------------------------------------------------------------------------------
def value_range(values: np.ndarray, intensity: str, type_range: tuple[float, float] | None) -> tuple[float, float]:
    """``(low, high)`` for :func:`to_unit`; ``type_range`` is None where the type has no useful range (floats)."""
    if intensity == "dtype" and type_range is not None:
        return type_range
    return float(values.min()), float(values.max())


def auto_mode(intensity: str, dtype: np.dtype) -> str:
    """``"auto"`` resolved for data of ``dtype``: ``"dtype"`` for 8-bit data, ``"minmax"`` otherwise."""
    return ("dtype" if np.dtype(dtype).itemsize == 1 else "minmax") if intensity == "auto" else intensity


def to_unit(values: np.ndarray, low: float, high: float, invert: bool = False) -> np.ndarray:
    """Stored values -> float32 in [0, 1] (``low`` -> 0, ``high`` -> 1, or the reverse with ``invert``)."""
    unit = (values.astype(np.float64) - low) / (high - low if high > low else 1.0)
    unit = np.clip(unit, 0.0, 1.0)
    return (1.0 - unit if invert else unit).astype(np.float32)


def integer_range(dtype: np.dtype) -> tuple[float, float] | None:
    """The full range of an integer type; None for floats."""
    if not np.issubdtype(dtype, np.integer):
        return None
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)


# -- the grid of a zoomed result ----------------------------------------------------------------------------------
def zoom_of(array: np.ndarray, source: EnhanceInput) -> np.ndarray:
    """Per spatial axis of ``array``: output size / input size (2.0 along the plane of a x2 result)."""
    return np.array([a / b for a, b in zip(array.shape[1:], source.array.shape[1:])], dtype=np.float64)


def zoomed_grid(origin: np.ndarray, axes: np.ndarray, zoom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-centre grid of a ``zoom``-times finer image covering the same extent.

    ``axes``: one column per array axis, the physical step between neighbouring voxels (direction x spacing).
    The first voxel's centre moves by ``(1 / zoom - 1) / 2`` of an old step (a quarter voxel back for x2), as in
    area-aligned up-sampling (``align_corners=False``), which is how the training pipeline degrades images.
    """
    new_axes = axes / zoom[None, :]
    new_origin = origin + axes @ ((1.0 / zoom - 1.0) / 2.0)
    return new_origin, new_axes
