"""Reading any supported image into [0, 1] and writing an enhanced result back in the *same* format.

Enhancement must not cost the user their metadata: a NIfTI keeps its header and affine, an MHD its origin,
spacing and direction, a DICOM its patient / study / series tags (with a new SOP Instance UID and
``DERIVED`` image type), a PNG its mode and bit depth. When the result is larger (super-resolution) the pixel
spacing is divided by the factor in-plane.

Intensity mapping (invertible, documented per format):

- PNG / JPEG: 8-bit values / 255 (16-bit PNG: / 65535). An alpha channel is kept aside and written back.
- NIfTI / MHD / MHA / NRRD: min-max of the image's stored values to [0, 1], and back into the source dtype.
- DICOM: min-max of the stored pixel values (before rescale slope / intercept, which are kept), and back into
  the same bits; compressed sources are written uncompressed (explicit VR little endian).

Arrays are handed to the enhancer channel-first with the source's own axis order, so nothing is reoriented and
the file's geometry stays exactly as it was.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EnhanceInput", "SUPPORTED_SUFFIXES", "image_format", "read_image", "write_like", "is_dicom"]

SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")


@dataclass
class EnhanceInput:
    """A source image as the enhancer sees it, with what is needed to write the result back.

    ``array``: float32, channel-first ``(C, *spatial)`` in [0, 1]; ``spatial`` is 2D, or 3D for volumes
    (slices along the last axis). ``low`` / ``high``: the stored-value range mapped to [0, 1].
    """

    path: Path
    format: str
    array: np.ndarray
    dtype: np.dtype
    low: float
    high: float
    meta: dict[str, Any] = field(default_factory=dict)


def is_dicom(path: str | os.PathLike) -> bool:
    """DICOM by suffix or by the ``DICM`` preamble at byte 128 (many DICOM files have no suffix)."""
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


def _to_unit(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scale = high - low if high > low else 1.0
    return ((values - low) / scale).astype(np.float32), low, high


def _from_unit(array: np.ndarray, low: float, high: float, dtype: np.dtype) -> np.ndarray:
    values = np.clip(array, 0.0, 1.0).astype(np.float64) * ((high - low) if high > low else 1.0) + low
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


# -- readers ------------------------------------------------------------------------------------------------------
def _read_pil(path: Path, fmt: str) -> EnhanceInput:
    from PIL import Image

    with Image.open(path) as pil:
        pil.load()
        mode = pil.mode
        alpha = None
        if mode in ("RGBA", "LA"):
            alpha = np.asarray(pil.getchannel("A")).copy()
            pil = pil.convert("RGB" if mode == "RGBA" else "L")
        elif mode == "P":
            pil = pil.convert("RGB")
        elif mode == "1":
            pil = pil.convert("L")
        data = np.asarray(pil)
    if data.dtype == np.uint8:
        high = 255.0
    elif data.dtype in (np.uint16, np.int32) or mode.startswith("I"):
        data = data.astype(np.uint16) if mode.startswith("I;16") or data.max() <= 65535 else data
        high = 65535.0
    else:
        high = float(data.max()) or 1.0
    array = (data.astype(np.float32) / high)
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    return EnhanceInput(path, fmt, array, data.dtype, 0.0, high, {"mode": mode, "alpha": alpha})


def _read_nifti(path: Path) -> EnhanceInput:
    import nibabel as nib

    image = nib.load(str(path))
    stored = np.asanyarray(image.dataobj)
    array, low, high = _to_unit(stored)
    return EnhanceInput(path, "nifti", array[None], stored.dtype, low, high,
                        {"affine": image.affine.copy(), "header": image.header.copy(), "shape": stored.shape})


def _read_itk(path: Path) -> EnhanceInput:
    import itk

    image = itk.imread(str(path))
    stored = itk.array_from_image(image)  # (z, y, x) or (y, x); multi-component adds a trailing axis
    components = image.GetNumberOfComponentsPerPixel()
    array, low, high = _to_unit(stored)
    array = np.moveaxis(array, -1, 0) if components > 1 else array[None]
    meta = {
        "origin": tuple(image.GetOrigin()),
        "spacing": tuple(image.GetSpacing()),
        "direction": itk.array_from_matrix(image.GetDirection()).copy(),
        "components": components,
        "shape": stored.shape,
    }
    return EnhanceInput(path, "itk", array, stored.dtype, low, high, meta)


def _read_dicom(path: Path) -> EnhanceInput:
    import pydicom

    dataset = pydicom.dcmread(str(path))
    stored = dataset.pixel_array  # stored values; RGB for colour (pydicom converts YBR to RGB)
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    array, low, high = _to_unit(stored)
    if samples > 1:
        array = np.moveaxis(array, -1, 0)  # (frames?, rows, cols, 3) -> channels first
    else:
        array = array[None]
    if array.ndim == 4:  # multi-frame: (C, frames, rows, cols) -> slices along the last axis
        array = np.moveaxis(array, 1, -1)
    return EnhanceInput(path, "dicom", array, stored.dtype, low, high, {"dataset": dataset, "shape": stored.shape})


def read_image(path: str | os.PathLike) -> EnhanceInput:
    """Read a supported image into [0, 1] with its metadata; unsupported or unreadable files raise a ValueError
    that names the path."""
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise ValueError(f"unsupported image file: {path} (supported: {', '.join(SUPPORTED_SUFFIXES)} and DICOM)")
    try:
        if fmt in ("png", "jpeg"):
            return _read_pil(path, fmt)
        if fmt == "nifti":
            return _read_nifti(path)
        if fmt == "itk":
            return _read_itk(path)
        return _read_dicom(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file's path
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


# -- writers ------------------------------------------------------------------------------------------------------
def _write_pil(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    from PIL import Image

    values = np.clip(array, 0, 1) * source.high
    values = np.rint(values).astype(np.uint8 if source.high <= 255 else np.uint16)
    values = values[0] if values.shape[0] == 1 else np.moveaxis(values, 0, -1)
    mode = source.meta["mode"]
    pil = Image.fromarray(values)
    alpha = source.meta.get("alpha")
    if alpha is not None:
        if alpha.shape != values.shape[:2]:
            alpha = np.asarray(Image.fromarray(alpha).resize(values.shape[1::-1], Image.NEAREST))
        pil.putalpha(Image.fromarray(alpha))
    elif mode in ("L", "RGB") and pil.mode != mode:
        pil = pil.convert(mode)
    if source.format == "jpeg":
        pil.save(out, format="JPEG", quality=95)
    else:
        pil.save(out, format="PNG")


def _spatial_zoom(array: np.ndarray, source: EnhanceInput) -> list[float]:
    return [a / b for a, b in zip(array.shape[1:], source.array.shape[1:])]


def _write_nifti(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    import nibabel as nib

    data = _from_unit(array[0], source.low, source.high, source.dtype)
    zoom = _spatial_zoom(array, source)
    affine = source.meta["affine"].copy()
    header = source.meta["header"].copy()
    for axis, z in enumerate(zoom):
        affine[:3, axis] = affine[:3, axis] / z
    header.set_data_shape(data.shape)
    zooms = list(header.get_zooms())
    for axis, z in enumerate(zoom):
        zooms[axis] = zooms[axis] / z
    header.set_zooms(zooms)
    nib.save(nib.Nifti1Image(data, affine, header), str(out))


def _write_itk(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    import itk

    components = source.meta["components"]
    data = array if components == 1 else np.moveaxis(array, 0, -1)
    data = _from_unit(data[0] if components == 1 else data, source.low, source.high, source.dtype)
    image = itk.image_from_array(np.ascontiguousarray(data), is_vector=components > 1)
    zoom = _spatial_zoom(array, source)  # in array order (z, y, x); ITK spacing is (x, y, z)
    spacing = [s / z for s, z in zip(source.meta["spacing"], reversed(zoom))]
    image.SetSpacing(spacing)
    image.SetOrigin(source.meta["origin"])
    image.SetDirection(itk.matrix_from_array(source.meta["direction"]))
    itk.imwrite(image, str(out))


def _write_dicom(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dataset = copy.deepcopy(source.meta["dataset"])
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    data = array
    if data.ndim == 4:  # (C, rows, cols, frames) -> (C, frames, rows, cols)
        data = np.moveaxis(data, -1, 1)
    data = np.moveaxis(data, 0, -1) if samples > 1 else data[0]
    stored = _from_unit(data, source.low, source.high, source.dtype)
    rows, cols = (stored.shape[-3], stored.shape[-2]) if samples > 1 else stored.shape[-2:]
    zoom_rows, zoom_cols = rows / int(dataset.Rows), cols / int(dataset.Columns)
    if "PixelSpacing" in dataset:
        dataset.PixelSpacing = [float(dataset.PixelSpacing[0]) / zoom_rows, float(dataset.PixelSpacing[1]) / zoom_cols]
    dataset.Rows, dataset.Columns = int(rows), int(cols)
    if samples > 1:
        dataset.PhotometricInterpretation = "RGB"
        dataset.PlanarConfiguration = 0
    dataset.PixelData = np.ascontiguousarray(stored).tobytes()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    image_type = list(getattr(dataset, "ImageType", ["ORIGINAL", "PRIMARY"]))
    dataset.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
    dataset.DerivationDescription = "enhanced by monai_gradprom"
    pydicom.dcmwrite(str(out), dataset, enforce_file_format=True)


_WRITERS = {"png": _write_pil, "jpeg": _write_pil, "nifti": _write_nifti, "itk": _write_itk, "dicom": _write_dicom}


def write_like(array: np.ndarray, source: EnhanceInput, out_path: str | os.PathLike) -> Path:
    """Write ``array`` ((C, *spatial) in [0, 1], possibly upscaled) in ``source``'s format and metadata.

    The file(s) are written into a temporary folder next to ``out_path`` and renamed into place (companion
    files such as an MHD's ``.raw`` first, the header last), so a failure leaves nothing half-written.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _WRITERS[source.format](np.asarray(array, dtype=np.float32), source, staging / out.name)
        written = sorted(staging.iterdir(), key=lambda p: p.name == out.name)  # the named file last
        for file in written:
            os.replace(file, out.parent / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
