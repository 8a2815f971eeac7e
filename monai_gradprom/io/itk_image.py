"""MHD (+ ``.raw``), MHA and NRRD: read with MONAI's ``ITKReader``, written back with ITK.

The pixels are taken from the ITK image that ``ITKReader.read`` returns (``itk.array_from_image``) rather than
from ``ITKReader.get_data``, which reverses the axes into an RAS affine (not the file's own geometry, needed to
write back) and costs 25 ms a frame building it, 40 times the decode.

Hand-written, because no reader offers it: :func:`metaimage_shape`, a header-only size of an MHD / MHA that also
checks that the pixel data is all there (a missing or cut-off ``.raw``), without reading it. ITK reads the
whole pixel buffer to learn the size, and reports a short ``.raw`` as "No such file or directory".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from monai.data import ITKReader

from monai_gradprom.io.base import EnhanceInput, auto_mode, integer_range, to_unit, value_range, zoom_of, zoomed_grid

__all__ = ["metaimage_header", "metaimage_shape", "itk_values", "read_itk", "write_itk"]

_MET_BYTES = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4, "MET_INT": 4,
              "MET_ULONG": 8, "MET_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _header_text(path: Path) -> tuple[bytes, int]:
    """The header bytes of an MHD / MHA and where its data starts (an MHA's pixels follow the
    ``ElementDataFile = LOCAL`` line in the same file)."""
    with open(path, "rb") as f:
        raw = f.read(65536)
    line = raw.find(b"ElementDataFile")
    end = raw.find(b"\n", line) + 1 if line >= 0 else 0
    header = raw[:end] if end > 0 else raw
    if b"\0" in header:
        raise ValueError("binary data in a MetaImage header")
    return header, end


def metaimage_header(path: str | os.PathLike) -> dict[str, str]:
    """The ``key = value`` fields of an MHD / MHA header; a ValueError when it is not one."""
    header, _ = _header_text(Path(path))
    fields = {}
    for line in header.decode("latin-1").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if "DimSize" not in fields or "ElementType" not in fields:
        raise ValueError("not a MetaImage header (no DimSize / ElementType)")
    return fields


def metaimage_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """``DimSize`` (x first, ITK index order) of an MHD / MHA, after checking from file sizes alone that its
    uncompressed pixel data is all there: :class:`FileNotFoundError` for a missing ``.raw``, a ValueError naming
    the file for a short one."""
    path = Path(path)
    fields = metaimage_header(path)
    dims = tuple(int(v) for v in fields["DimSize"].split())
    data_file = fields.get("ElementDataFile", "")
    if data_file and fields.get("CompressedData", "False").lower() != "true":
        expected = math.prod(dims) * _MET_BYTES.get(fields["ElementType"], 1) * int(
            fields.get("ElementNumberOfChannels", "1"))
        if data_file == "LOCAL":
            held = path.stat().st_size - _header_text(path)[1]
            if held < expected:
                raise ValueError(f"{path} holds {held} bytes of pixel data after its header, the header expects "
                                 f"{expected}")
        else:
            raw = path.parent / data_file
            if not raw.is_file():
                raise FileNotFoundError(f"data file of {path} not found: {raw}")
            if raw.stat().st_size != expected:
                raise ValueError(f"data file {raw} holds {raw.stat().st_size} bytes, header expects {expected}")
    return dims


def itk_values(path: str | os.PathLike) -> np.ndarray:
    """The stored values in numpy order ``(z, y, x[, components])``; an MHD / MHA is first checked by
    :func:`metaimage_shape`, so that a missing or short ``.raw`` is reported as such."""
    import itk

    if Path(path).name.lower().endswith((".mhd", ".mha")):
        metaimage_shape(path)
    return itk.array_from_image(ITKReader().read(str(path)))


def _itk_axes(dim: int) -> list[int]:
    """For each array axis, the ITK index axis it holds: ``(y, x, z, ...)`` -> ``[1, 0, 2, ...]``."""
    return [1, 0, *range(2, dim)] if dim >= 2 else [0]


def read_itk(path: Path, intensity: str) -> EnhanceInput:
    import itk

    image = ITKReader().read(str(path))
    stored = itk.array_from_image(image)  # numpy order (z, y, x[, components])
    components = image.GetNumberOfComponentsPerPixel()
    dim = image.GetImageDimension()
    dtype = stored.dtype.newbyteorder("=")
    low, high = value_range(stored, auto_mode(intensity, dtype), integer_range(dtype))
    array = to_unit(stored, low, high)
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


def write_itk(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    import itk

    components, dim = source.meta["components"], array.ndim - 1
    itk_axes = _itk_axes(dim)
    numpy_order = [1 + itk_axes.index(dim - 1 - n) for n in range(dim)]  # array axis for numpy axis (z, y, x)
    data = array.transpose(0, *numpy_order)
    data = source.to_stored(np.moveaxis(data, 0, -1) if components > 1 else data[0])
    image = itk.image_from_array(np.ascontiguousarray(data), is_vector=components > 1)
    zoom = zoom_of(array, source)[[itk_axes.index(i) for i in range(dim)]]  # in ITK index order (x, y, z)
    spacing, direction = source.meta["spacing"], source.meta["direction"]
    origin, axes = zoomed_grid(source.meta["origin"], direction * spacing[None, :], zoom)
    image.SetSpacing([float(s) for s in spacing / zoom])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    itk.imwrite(image, str(out))
