"""Reading a supported image into [0, 1] and writing a result back in its format: the dispatch over formats."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from monai_gradprom.io.base import INTENSITY_MODES, SUPPORTED_SUFFIXES, EnhanceInput, NotAnImageError, image_format
from monai_gradprom.io.dicom import read_dicom, write_dicom
from monai_gradprom.io.itk_image import itk_values, read_itk, write_itk
from monai_gradprom.io.nifti import nifti_values, read_nifti, write_nifti
from monai_gradprom.io.raster import open_raster, read_raster, write_raster

__all__ = ["read_image", "write_like", "read_values"]

_READERS: dict[str, Callable[..., EnhanceInput]] = {
    "png": lambda path, intensity: read_raster(path, "png", intensity),
    "jpeg": lambda path, intensity: read_raster(path, "jpeg", intensity),
    "nifti": read_nifti,
    "itk": read_itk,
    "dicom": read_dicom,
}
_WRITERS: dict[str, Callable[[np.ndarray, EnhanceInput, Path], None]] = {
    "png": write_raster,
    "jpeg": write_raster,
    "nifti": write_nifti,
    "itk": write_itk,
    "dicom": write_dicom,
}


def read_image(path: str | os.PathLike, intensity: str = "auto") -> EnhanceInput:
    """Read a supported image into [0, 1] with what is needed to write the result back (see
    :mod:`monai_gradprom.io`).

    Raises a ValueError naming the path for an unsupported or undecodable file, :class:`NotAnImageError` (a
    ValueError too) for a DICOM file without pixel data.
    """
    if intensity not in INTENSITY_MODES:
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {intensity!r}")
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise ValueError(f"unsupported image file: {path} (supported: {', '.join(SUPPORTED_SUFFIXES)} and DICOM)")
    try:
        return _READERS[fmt](path, intensity)
    except NotAnImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's path
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


def write_like(array: np.ndarray, source: EnhanceInput, out_path: str | os.PathLike) -> Path:
    """Write ``array`` (``(C, *spatial)`` in [0, 1], possibly upscaled) in ``source``'s format and metadata.

    Atomic: the file(s) are written into a hidden staging folder next to ``out_path`` (so that every library
    sees the real suffix, ``.nii.gz`` or ``.mhd``, and picks the right encoder), flushed to disk, then renamed
    into place, companions first (an MHD's ``.raw`` before its header). A failure leaves any previous output
    intact and no partial file behind. (:func:`monai_gradprom.utils.atomic_write` does the same for one file
    but names it ``*.tmp``, which the suffix-driven writers cannot use.)
    """
    out = Path(out_path)
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != source.array.ndim or array.shape[0] != source.array.shape[0]:
        raise ValueError(f"cannot write {out}: result of shape {array.shape} does not match the source's "
                         f"channels and dimensions {source.array.shape}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _WRITERS[source.format](array, source, staging / out.name)
        written = sorted(staging.iterdir(), key=lambda p: p.name == out.name)  # the named file last
        for file in written:
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        for file in written:
            os.replace(file, out.parent / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def read_values(path: str | os.PathLike) -> np.ndarray:
    """The values a file stores, decoded by its reader without any intensity mapping (the data checks look for
    NaN / Inf and class indices in them): ITK formats in numpy order ``(z, y, x[, c])``, NIfTI in its ``(i, j,
    k)`` order with ``scl_slope`` / ``scl_inter`` applied, PNG / JPEG as Pillow decodes them (mode kept), DICOM
    its stored ``pixel_array``. Raises the reader's own error; a ValueError for an unsupported file."""
    fmt = image_format(path)
    if fmt == "itk":
        return itk_values(path)
    if fmt == "nifti":
        return nifti_values(path)
    if fmt in ("png", "jpeg"):
        with open_raster(path) as image:
            return np.asarray(image)
    if fmt == "dicom":
        from monai.data import PydicomReader

        return PydicomReader().read(str(path), force=Path(path).suffix.lower() == ".dcm").pixel_array
    raise ValueError(f"unsupported image file: {path} (supported: {', '.join(SUPPORTED_SUFFIXES)} and DICOM)")
