"""Reading any supported image into [0, 1] and writing an enhanced result back in the *same* format.

Enhancement must not cost the user their metadata: a NIfTI keeps its header and affine, an MHD its origin,
spacing and direction, a DICOM its patient / study tags (in a new, derived series), a PNG / JPEG its mode, bit
depth, ICC profile, EXIF and DPI. When the result is larger (super-resolution) the voxel size is divided by the
factor and the grid's origin moved so that the enhanced image covers exactly the same physical extent.

Intensity mapping (invertible; ``intensity="auto"`` by default):

- ``"dtype"``: the stored type's full range to [0, 1] (uint8: / 255, 16-bit PNG: / 65535, DICOM: the range
  of *Bits Stored*); consistent across images, so the network sees the same contrast scale in every file.
- ``"minmax"``: the image's own stored-value range (min -> 0, max -> 1); the only sensible choice for CT / MR
  numbers and floats, whose type range is far wider than the data.
- ``"auto"``: ``"dtype"`` for PNG / JPEG and for 8-bit data in any format, ``"minmax"`` otherwise.

Written values are mapped back with the same ``low`` / ``high``, rounded and clipped to the source's dtype, so an
identity network reproduces integer data exactly. DICOM values are *stored* values (before Rescale Slope /
Intercept, which are kept, so windows and HU stay valid); MONOCHROME1 is inverted so that bright means high
signal as in MONOCHROME2, and inverted back on writing; PALETTE COLOR is expanded to RGB.

Axis order: ``array`` is channel-first ``(C, H, W)`` for 2D images and ``(C, H, W, D, ...)`` for volumes, the
slice axis last so that a 2D network can enhance a volume slice by slice. PNG / JPEG / DICOM: rows, columns
(frames last). ITK (MHD / MHA / NRRD): ``(y, x, z)``. NIfTI: the file's own ``(i, j, k)`` voxel axes.
Nothing is resampled or reoriented, so the written file's geometry is exactly the source's.

The files are read with the format libraries directly (PIL, nibabel, ITK, pydicom) rather than MONAI's readers:
those reorient to RAS / reverse axes and drop the header objects (NIfTI header, DICOM dataset, PNG info) that are
needed to write the result back unchanged.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EnhanceInput",
    "NotAnImageError",
    "SUPPORTED_SUFFIXES",
    "INTENSITY_MODES",
    "image_format",
    "is_dicom",
    "read_image",
    "write_like",
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
def _value_range(values: np.ndarray, intensity: str, type_range: tuple[float, float] | None) -> tuple[float, float]:
    """``(low, high)`` for :func:`_to_unit`; ``type_range`` is None where the type has no useful range (floats)."""
    if intensity == "dtype" and type_range is not None:
        return type_range
    return float(values.min()), float(values.max())


def _auto(intensity: str, dtype: np.dtype) -> str:
    return ("dtype" if np.dtype(dtype).itemsize == 1 else "minmax") if intensity == "auto" else intensity


def _to_unit(values: np.ndarray, low: float, high: float, invert: bool = False) -> np.ndarray:
    unit = (values.astype(np.float64) - low) / (high - low if high > low else 1.0)
    unit = np.clip(unit, 0.0, 1.0)
    return (1.0 - unit if invert else unit).astype(np.float32)


def _integer_range(dtype: np.dtype) -> tuple[float, float] | None:
    if not np.issubdtype(dtype, np.integer):
        return None
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)


def _zoom(array: np.ndarray, source: EnhanceInput) -> np.ndarray:
    """Per spatial axis of ``array``: output size / input size (2.0 along the plane of a x2 result)."""
    return np.array([a / b for a, b in zip(array.shape[1:], source.array.shape[1:])], dtype=np.float64)


def _zoomed_grid(origin: np.ndarray, axes: np.ndarray, zoom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-centre grid of a ``zoom``-times finer image covering the same extent.

    ``axes``: one column per array axis, the physical step between neighbouring voxels (direction x spacing).
    The first voxel's centre moves by ``(1 / zoom - 1) / 2`` of an old step (a quarter voxel back for x2), as in
    area-aligned up-sampling (``align_corners=False``), which is how the training pipeline degrades images.
    """
    new_axes = axes / zoom[None, :]
    new_origin = origin + axes @ ((1.0 / zoom - 1.0) / 2.0)
    return new_origin, new_axes


# -- PNG / JPEG ---------------------------------------------------------------------------------------------------
def _read_pil(path: Path, fmt: str, intensity: str) -> EnhanceInput:
    from PIL import Image

    with Image.open(path) as pil:
        pil.load()
        mode, info = pil.mode, dict(pil.info)
        text = dict(getattr(pil, "text", {}) or {})
        if mode in ("P", "PA"):  # a palette cannot be kept through enhancement: expand it (with its transparency)
            pil = pil.convert("RGBA" if mode == "PA" or "transparency" in info else "RGB")
        elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            pil = pil.convert("L" if mode == "1" else "RGB")
        alpha = None
        if pil.mode in ("RGBA", "LA"):
            alpha = np.asarray(pil.getchannel("A")).copy()
            pil = pil.convert("RGB" if pil.mode == "RGBA" else "L")
        data = np.asarray(pil)
    if data.dtype == np.int32:  # 16-bit PNGs opened as "I" by some Pillow versions
        data = data.astype(np.uint16)
    type_range = _integer_range(data.dtype)
    low, high = _value_range(data, "dtype" if intensity == "auto" else intensity, type_range)
    array = _to_unit(data, low, high)
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    meta = {"mode": mode, "alpha": alpha, "text": text,
            **{key: info[key] for key in ("dpi", "icc_profile", "exif") if key in info}}
    return EnhanceInput(path, fmt, array, data.dtype, low, high, intensity=intensity, meta=meta)


def _write_pil(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    from PIL import Image, PngImagePlugin

    values = source.to_stored(array)
    values = values[0] if values.shape[0] == 1 else np.moveaxis(values, 0, -1)
    pil = Image.fromarray(np.ascontiguousarray(values))
    alpha = source.meta.get("alpha")
    if alpha is not None:
        if alpha.shape != values.shape[:2]:
            alpha = np.asarray(Image.fromarray(alpha).resize(values.shape[1::-1], Image.Resampling.NEAREST))
        pil.putalpha(Image.fromarray(alpha))
    zoom = _zoom(array, source)
    options: dict[str, Any] = {}
    if "dpi" in source.meta:  # same physical print size: more dots per inch when upscaled
        options["dpi"] = tuple(float(d) * z for d, z in zip(source.meta["dpi"], zoom[::-1]))
    for key in ("icc_profile", "exif"):
        if source.meta.get(key):
            options[key] = source.meta[key]
    if source.format == "jpeg":
        pil.save(out, format="JPEG", quality=95, **options)
        return
    if source.meta.get("text"):
        info = PngImagePlugin.PngInfo()
        for key, value in source.meta["text"].items():
            info.add_text(key, str(value))
        options["pnginfo"] = info
    pil.save(out, format="PNG", **options)


# -- NIfTI --------------------------------------------------------------------------------------------------------
def _read_nifti(path: Path, intensity: str) -> EnhanceInput:
    import nibabel as nib

    image = nib.load(str(path))
    values = np.asanyarray(image.dataobj)  # real-world values (scl_slope / scl_inter applied)
    dtype = values.dtype.newbyteorder("=")
    mode = _auto(intensity, dtype)
    low, high = _value_range(values, mode, _integer_range(dtype))
    meta = {"affine": image.affine.copy(), "header": image.header.copy(), "image_class": type(image)}
    return EnhanceInput(path, "nifti", _to_unit(values, low, high)[None], dtype, low, high, intensity=intensity,
                        meta=meta)


def _write_nifti(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    if array.shape[0] != 1:
        raise ValueError(f"a NIfTI result must have one channel, got {array.shape[0]}")
    data = source.to_stored(array[0])
    zoom = _zoom(array, source)
    header = source.meta["header"].copy()
    header.set_data_shape(data.shape)
    spatial = min(3, data.ndim)
    step = np.ones(3)
    step[:spatial] = zoom[:spatial]
    if np.any(step != 1.0):
        header.set_zooms(tuple(z / s for z, s in zip(header.get_zooms(), np.r_[step, np.ones(data.ndim)])))
        for getter, setter in ((header.get_qform, header.set_qform), (header.get_sform, header.set_sform)):
            affine, code = getter(coded=True)
            if affine is not None and code > 0:
                origin, axes = _zoomed_grid(affine[:3, 3], affine[:3, :3], step)
                new = np.eye(4)
                new[:3, :3], new[:3, 3] = axes, origin
                setter(new, code=int(code))
    affine = header.get_best_affine() if np.any(step != 1.0) else source.meta["affine"]
    source.meta["image_class"](data, affine, header).to_filename(str(out))


# -- ITK: MHD (+ .raw), MHA, NRRD ---------------------------------------------------------------------------------
def _itk_axes(dim: int) -> list[int]:
    """For each array axis, the ITK index axis it holds: ``(y, x, z, ...)`` -> ``[1, 0, 2, ...]``."""
    return [1, 0, *range(2, dim)] if dim >= 2 else [0]


def _read_itk(path: Path, intensity: str) -> EnhanceInput:
    import itk

    image = itk.imread(str(path))
    stored = itk.array_from_image(image)  # numpy order (z, y, x[, components])
    components = image.GetNumberOfComponentsPerPixel()
    dim = image.GetImageDimension()
    dtype = stored.dtype.newbyteorder("=")
    low, high = _value_range(stored, _auto(intensity, dtype), _integer_range(dtype))
    array = _to_unit(stored, low, high)
    array = np.moveaxis(array, -1, 0) if components > 1 else array[None]
    numpy_axis_of_itk = [dim - 1 - axis for axis in range(dim)]  # ITK index axis i is numpy axis dim - 1 - i
    array = array.transpose(0, *[numpy_axis_of_itk[i] + 1 for i in _itk_axes(dim)])
    meta = {
        "origin": np.array(image.GetOrigin(), dtype=np.float64),
        "spacing": np.array(image.GetSpacing(), dtype=np.float64),
        "direction": itk.array_from_matrix(image.GetDirection()).astype(np.float64),
        "components": components,
    }
    return EnhanceInput(path, "itk", np.ascontiguousarray(array), dtype, low, high, intensity=intensity, meta=meta)


def _write_itk(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    import itk

    components, dim = source.meta["components"], array.ndim - 1
    itk_axes = _itk_axes(dim)
    numpy_order = [1 + itk_axes.index(dim - 1 - n) for n in range(dim)]  # array axis for numpy axis (z, y, x)
    data = array.transpose(0, *numpy_order)
    data = source.to_stored(np.moveaxis(data, 0, -1) if components > 1 else data[0])
    image = itk.image_from_array(np.ascontiguousarray(data), is_vector=components > 1)
    zoom = _zoom(array, source)[[itk_axes.index(i) for i in range(dim)]]  # in ITK index order (x, y, z)
    spacing, direction = source.meta["spacing"], source.meta["direction"]
    origin, axes = _zoomed_grid(source.meta["origin"], direction * spacing[None, :], zoom)
    image.SetSpacing([float(s) for s in spacing / zoom])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    itk.imwrite(image, str(out))


# -- DICOM --------------------------------------------------------------------------------------------------------
def _palette_keywords() -> list[str]:
    """The Image Pixel module's palette tags, meaningless once a PALETTE COLOR image is written as RGB."""
    from pydicom.datadict import keyword_dict

    return [k for k in keyword_dict if "PaletteColorLookupTable" in k and not k.endswith("Sequence")]


def _read_dicom(path: Path, intensity: str) -> EnhanceInput:
    import pydicom
    from pydicom.pixels import apply_color_lut

    dataset = pydicom.dcmread(str(path), force=path.suffix.lower() == ".dcm")
    if "PixelData" not in dataset:
        sop_class = dataset.get("SOPClassUID") or dataset.file_meta.get("MediaStorageSOPClassUID")
        if sop_class is None:
            raise ValueError("not a DICOM dataset")
        raise NotAnImageError(f"DICOM file without pixel data: {path} ({getattr(sop_class, 'name', sop_class)})")
    stored = dataset.pixel_array  # stored values; YBR is converted to RGB
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    bits = int(dataset.get("BitsStored", stored.dtype.itemsize * 8))
    if photometric == "PALETTE COLOR":
        stored, bits = apply_color_lut(stored, dataset), None
    samples = 3 if photometric == "PALETTE COLOR" else int(dataset.get("SamplesPerPixel", 1))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    dtype = stored.dtype.newbyteorder("=")
    if bits is not None and np.issubdtype(dtype, np.integer):
        signed = np.issubdtype(dtype, np.signedinteger)
        type_range = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
    else:
        type_range = _integer_range(dtype)
    low, high = _value_range(stored, _auto(intensity, dtype), type_range)
    invert = photometric == "MONOCHROME1"
    array = _to_unit(stored, low, high, invert)
    array = np.moveaxis(array, -1, 0) if samples > 1 else array[None]  # channels first
    if frames > 1:
        array = np.moveaxis(array, 1, -1)  # (C, frames, rows, cols) -> (C, rows, cols, frames)
    meta = {"dataset": dataset, "samples": samples, "frames": frames, "bits": bits,
            "photometric": "RGB" if samples > 1 else photometric}
    return EnhanceInput(path, "dicom", np.ascontiguousarray(array), dtype, low, high, invert, intensity, meta)


def _ds(value: float):
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _update_dicom_geometry(dataset, zoom_rows: float, zoom_cols: float) -> None:
    """Pixel spacings, the first pixel's position and ultrasound regions of a ``zoom``-times finer image."""
    spacing = dataset.get("PixelSpacing")
    if "ImagePositionPatient" in dataset and "ImageOrientationPatient" in dataset and spacing is not None:
        cosines = np.array([float(v) for v in dataset.ImageOrientationPatient]).reshape(2, 3)
        steps = cosines * np.array([float(spacing[1]), float(spacing[0])])[:, None]  # along a row, down a column
        origin, _ = _zoomed_grid(np.array([float(v) for v in dataset.ImagePositionPatient]), steps.T,
                                 np.array([zoom_cols, zoom_rows]))
        dataset.ImagePositionPatient = [_ds(v) for v in origin]
    holders = [dataset]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in dataset.get(group, []):
            holders.extend(item.get("PixelMeasuresSequence", []))
    for holder in holders:
        for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
            if keyword in holder and holder[keyword].VM == 2:
                row, col = (float(v) for v in holder[keyword].value)
                setattr(holder, keyword, [_ds(row / zoom_rows), _ds(col / zoom_cols)])
    for region in dataset.get("SequenceOfUltrasoundRegions", []):
        for axis, zoom in (("X", zoom_cols), ("Y", zoom_rows)):
            if f"RegionLocationMin{axis}0" in region:
                setattr(region, f"RegionLocationMin{axis}0", int(getattr(region, f"RegionLocationMin{axis}0") * zoom))
            if f"RegionLocationMax{axis}1" in region:
                value = int(round((getattr(region, f"RegionLocationMax{axis}1") + 1) * zoom)) - 1
                setattr(region, f"RegionLocationMax{axis}1", value)
            if f"ReferencePixel{axis}0" in region:
                value = int(round((getattr(region, f"ReferencePixel{axis}0") + 0.5) * zoom - 0.5))
                setattr(region, f"ReferencePixel{axis}0", value)
            if f"PhysicalDelta{axis}" in region:
                setattr(region, f"PhysicalDelta{axis}", float(getattr(region, f"PhysicalDelta{axis}")) / zoom)


_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_binary_values(dataset) -> None:
    """Byte-swap the raw ``O*`` values of a big-endian dataset (LUT, overlay data) before writing it little
    endian: pydicom decodes numbers but leaves these byte strings as read (see ``pydicom.dcmwrite``)."""

    def swap(ds, elem) -> None:
        size = _WORD_SIZES.get(elem.VR)
        if size and elem.tag != 0x7FE00010 and isinstance(elem.value, bytes) and len(elem.value) % size == 0:
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()

    dataset.walk(swap)


def _write_dicom(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dataset = copy.deepcopy(source.meta["dataset"])
    samples, frames = source.meta["samples"], source.meta["frames"]
    data = np.moveaxis(array, -1, 1) if frames > 1 else array  # (C, rows, cols, frames) -> (C, frames, rows, cols)
    data = np.moveaxis(data, 0, -1) if samples > 1 else data[0]
    stored = source.to_stored(data)
    if stored.dtype.itemsize > 2 or not np.issubdtype(stored.dtype, np.integer):
        raise ValueError(f"only 8- and 16-bit integer DICOM pixel data can be written, the source has {stored.dtype}")
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is not None and not syntax.is_little_endian:
        _swap_binary_values(dataset)
    if syntax is None or syntax.is_compressed or not syntax.is_little_endian:
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # written uncompressed, little endian
    bits = source.meta["bits"] or stored.dtype.itemsize * 8
    dataset.set_pixel_data(stored, source.meta["photometric"], bits, generate_instance_uid=False)
    if source.meta["photometric"] == "RGB":
        for keyword in _palette_keywords():
            if keyword in dataset:
                delattr(dataset, keyword)
    zoom_rows, zoom_cols = (float(z) for z in _zoom(array, source)[:2])
    if (zoom_rows, zoom_cols) != (1.0, 1.0):
        _update_dicom_geometry(dataset, zoom_rows, zoom_cols)
    for keyword, value in (("SmallestImagePixelValue", stored.min()), ("LargestImagePixelValue", stored.max())):
        if keyword in dataset:
            setattr(dataset, keyword, int(value))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    if "SOPClassUID" in dataset:
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    if "SeriesInstanceUID" in dataset:  # derived images form their own series, one per source series
        dataset.SeriesInstanceUID = generate_uid(entropy_srcs=[str(dataset.SeriesInstanceUID), DERIVATION])
    image_type = [str(v) for v in dataset.get("ImageType", ["ORIGINAL", "PRIMARY"])]
    dataset.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    zoom_note = f", x{zoom_cols:g} super-resolution" if zoom_cols != 1 else ""
    dataset.DerivationDescription = DERIVATION + zoom_note
    pydicom.dcmwrite(str(out), dataset, enforce_file_format=True)


# -- public API ---------------------------------------------------------------------------------------------------
_READERS: dict[str, Callable[..., EnhanceInput]] = {
    "png": lambda path, intensity: _read_pil(path, "png", intensity),
    "jpeg": lambda path, intensity: _read_pil(path, "jpeg", intensity),
    "nifti": _read_nifti,
    "itk": _read_itk,
    "dicom": _read_dicom,
}
_WRITERS: dict[str, Callable[[np.ndarray, EnhanceInput, Path], None]] = {
    "png": _write_pil,
    "jpeg": _write_pil,
    "nifti": _write_nifti,
    "itk": _write_itk,
    "dicom": _write_dicom,
}


def read_image(path: str | os.PathLike, intensity: str = "auto") -> EnhanceInput:
    """Read a supported image into [0, 1] with what is needed to write the result back (see the module doc).

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
