"""PNG and JPEG: opened with MONAI's ``PILReader`` (Pillow, format identified by content), written with Pillow.

Only the reader's ``read`` is used: ``get_data`` returns the pixels without the PNG / JPEG info (ICC profile,
EXIF, DPI, text chunks, palette transparency) that the written result must keep.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import PILReader

from monai_gradprom.io.base import EnhanceInput, integer_range, to_unit, value_range, zoom_of

__all__ = ["open_raster", "raster_size", "read_raster", "write_raster"]


def open_raster(path: str | os.PathLike):
    """The ``PIL.Image`` of ``path``, header read, pixels not yet decoded; close it (or use it in ``with``)."""
    return PILReader().read(Path(path))


def raster_size(path: str | os.PathLike, deep: bool = False) -> tuple[int, int]:
    """``(rows, columns)`` from the header; ``deep`` also decodes the pixels (a cut-off body fails)."""
    with open_raster(path) as image:
        if deep:
            image.load()
        return (image.height, image.width)


def read_raster(path: Path, fmt: str, intensity: str) -> EnhanceInput:
    with open_raster(path) as pil:
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
    type_range = integer_range(data.dtype)
    low, high = value_range(data, "dtype" if intensity == "auto" else intensity, type_range)
    array = to_unit(data, low, high)
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    meta = {"mode": mode, "alpha": alpha, "text": text,
            **{key: info[key] for key in ("dpi", "icc_profile", "exif") if key in info}}
    return EnhanceInput(path, fmt, array, data.dtype, low, high, intensity=intensity, meta=meta)


def write_raster(array: np.ndarray, source: EnhanceInput, out: Path) -> None:
    from PIL import Image, PngImagePlugin

    values = source.to_stored(array)
    values = values[0] if values.shape[0] == 1 else np.moveaxis(values, 0, -1)
    pil = Image.fromarray(np.ascontiguousarray(values))
    alpha = source.meta.get("alpha")
    if alpha is not None:
        if alpha.shape != values.shape[:2]:
            alpha = np.asarray(Image.fromarray(alpha).resize(values.shape[1::-1], Image.Resampling.NEAREST))
        pil.putalpha(Image.fromarray(alpha))
    zoom = zoom_of(array, source)
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
