"""DICOM: the dataset read with MONAI's ``PydicomReader``; pixels and the derived series written by hand.

Only the reader's ``read`` (``pydicom.dcmread``) is used: ``get_data`` applies Rescale Slope / Intercept and
reorders the axes into an RAS affine, and drops the dataset, while enhancement needs the *stored* values and
every tag to write a derived image back. Writing it (new UIDs, DERIVED image type, pixel spacing, image
position and ultrasound regions of a super-resolved result) is hand-written: no reader or writer in MONAI
produces a DICOM series.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from monai.data import PydicomReader

from monai_gradprom.io.base import (
    DERIVATION,
    EnhanceInput,
    NotAnImageError,
    auto_mode,
    integer_range,
    to_unit,
    value_range,
    zoom_of,
    zoomed_grid,
)

__all__ = ["read_dicom", "write_dicom"]


def _palette_keywords() -> list[str]:
    """The Image Pixel module's palette tags, meaningless once a PALETTE COLOR image is written as RGB."""
    from pydicom.datadict import keyword_dict

    return [k for k in keyword_dict if "PaletteColorLookupTable" in k and not k.endswith("Sequence")]


def read_dicom(path: Path, intensity: str) -> EnhanceInput:
    from pydicom.pixels import apply_color_lut

    dataset = PydicomReader().read(str(path), force=path.suffix.lower() == ".dcm")
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
        type_range = integer_range(dtype)
    low, high = value_range(stored, auto_mode(intensity, dtype), type_range)
    invert = photometric == "MONOCHROME1"
    array = to_unit(stored, low, high, invert)
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
        origin, _ = zoomed_grid(np.array([float(v) for v in dataset.ImagePositionPatient]), steps.T,
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


def write_dicom(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
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
    zoom_rows, zoom_cols = (float(z) for z in zoom_of(array, source)[:2])
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
