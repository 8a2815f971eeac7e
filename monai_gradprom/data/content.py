"""What a data check reads from a file: its displayed size from the header, and the pixel content where it can
hold a bad value. Files are opened through :mod:`monai_gradprom.io`, the layer inference reads with.

Sizes are compared from headers (an image's header through PIL, which does not decode; an MHD's text header; a
NIfTI's 348 bytes; ``scipy.io.whosmat`` lists a MAT file's variables without loading them), so checking thousands
of files costs seconds. On top of the headers, the default check reads what it must to keep bad data out of
training (:func:`content_problem`): class maps are decoded and their values checked against the data set's
classes, volumes (MHD / NIfTI) are decoded and checked for non-finite values, and PNG images have their chunk
checksums verified (a cut-off body fails; 20x cheaper than decoding). JPEG photos, the largest files and unable
to hold non-finite values or class labels, are only decoded with ``deep=True``, which decodes every file.

Size convention: :func:`read_size` returns the size *as displayed*, ``(rows, columns)``, whatever the format:
PIL ``(height, width)``; MHD ``DimSize = x y [1]`` -> ``(y, x)``; NIfTI written by ITK (CAMUS) ``(i, j[, 1])``
-> ``(j, i)``; a MAT label's ``inst_map`` ``(H, W)`` as stored. This matches what the loading transforms produce.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from monai_gradprom.data.checks import DataCheckError
from monai_gradprom.data.loading import to_grayscale
from monai_gradprom.io import metaimage_shape, nifti_shape, open_raster, raster_size, read_values

__all__ = ["read_size", "check_same_size", "read_pixels", "content_problem", "describe_values"]

_VOLUMES = (".mhd", ".mha", ".nii", ".nii.gz")


# -- sizes --------------------------------------------------------------------------------------------------------
def _strip_trailing_ones(shape: Sequence[int]) -> tuple[int, ...]:
    shape = list(int(s) for s in shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def _mhd_size(path: Path, deep: bool) -> tuple[int, ...]:
    dims = metaimage_shape(path)  # also checks that an uncompressed .raw is all there
    if deep:
        read_values(path)
    # DimSize is x (columns) first: displayed (rows, columns) = (y, x)
    return _strip_trailing_ones([dims[1], dims[0], *dims[2:]])


def _nifti_size(path: Path, deep: bool) -> tuple[int, ...]:
    if deep:
        read_values(path)
    shape = nifti_shape(path)
    # CAMUS's NIfTI files were written by ITK: voxel axis i runs along a row (x), j down the image (y)
    return _strip_trailing_ones([shape[1], shape[0], *shape[2:]])


def _mat_size(path: Path, deep: bool) -> tuple[int, ...]:
    """A Lizard label's ``inst_map`` (MAT files are a data set's labels, not images: no reader in MONAI)."""
    from scipy.io import loadmat, whosmat

    shapes = {name: shape for name, shape, _ in whosmat(str(path))}
    if "inst_map" not in shapes:
        raise ValueError(f"no 'inst_map' among the variables {sorted(shapes)}")
    if deep:
        loadmat(str(path))
    return tuple(int(s) for s in shapes["inst_map"])


def read_size(path: str | os.PathLike, deep: bool = False) -> tuple[int, ...]:
    """The displayed spatial size ``(rows, columns[, ...])`` of an image or label file, from its header.

    ``deep=True`` also decodes the pixel data (catches truncated files; slower). Raises
    :class:`FileNotFoundError` for a missing file and :class:`DataCheckError` naming the path for anything
    unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    name = path.name.lower()
    reader: Callable[[Path, bool], tuple[int, ...]]
    if name.endswith(".mhd") or name.endswith(".mha"):
        reader = _mhd_size
    elif name.endswith(".nii") or name.endswith(".nii.gz"):
        reader = _nifti_size
    elif name.endswith(".mat"):
        reader = _mat_size
    else:
        reader = raster_size  # identifies the format by content, not by suffix
    try:
        return reader(path, deep)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable", named with its path
        raise DataCheckError(f"unreadable file {path}: {type(exc).__name__}: {exc}") from exc


def check_same_size(image_path: str | os.PathLike, mask_path: str | os.PathLike, deep: bool = False) -> None:
    """Raise :class:`DataCheckError` naming both files when a mask's size differs from its image's."""
    image_size, mask_size = read_size(image_path, deep), read_size(mask_path, deep)
    if image_size != mask_size:
        raise DataCheckError(
            f"size mismatch: mask {mask_path} is {mask_size} (rows, columns), its image {image_path} is {image_size}"
        )


# -- pixel content ------------------------------------------------------------------------------------------------
def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """The decoded values of an image or class-map file, as the loaders see them: PIL formats through
    :func:`to_grayscale` (a mask's palette or 0 / 1 mode-"1" pixels become the grey values the ISIC loader
    thresholds), MHD / MHA and NIfTI as stored (NIfTI scaling applied), a MAT label's ``inst_map``. Shape is not
    kept for MetaImages (the values are what is checked). Raises like the decoders do."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_VOLUMES):
        return read_values(path).ravel()
    if name.endswith(".mat"):
        from scipy.io import loadmat

        return np.asarray(loadmat(str(path), variable_names=["inst_map"])["inst_map"])
    with open_raster(path) as image:
        return np.asarray(to_grayscale(image))


def _present_values(array: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, by counting (linear; ``np.unique`` sorts, 10x slower on a
    megapixel mask)."""
    if array.dtype == np.uint8 or array.dtype == np.bool_:
        return np.flatnonzero(np.bincount(array.ravel().view(np.uint8), minlength=256))
    low, high = int(array.min()), int(array.max())
    if high - low < 1 << 20:
        return np.flatnonzero(np.bincount(array.ravel().astype(np.int64) - low)) + low
    return np.unique(array)


def describe_values(values: Sequence[int]) -> str:
    """``(-100, 0, 1, 2, 3)`` -> ``"-100, 0..3"``: runs of three or more consecutive values shortened."""
    runs: list[list[int]] = []
    for value in sorted(set(int(v) for v in values)):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(f"{run[0]}..{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs)


def _value_problem(array: np.ndarray, allowed: Sequence[int] | None, what: str) -> str | None:
    """Why ``array`` (decoded pixels) must not be trained on, or ``None``: non-finite values always; values
    outside ``allowed`` (non-integer ones included) when given."""
    if array.size == 0:
        return f"{what} holds no pixels"
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            nan = int(np.isnan(array).sum())
            return (f"{what} holds non-finite pixel values ({nan} NaN, {array.size - int(finite.sum()) - nan} Inf "
                    f"of {array.size})")
        if allowed is not None:
            if not np.array_equal(array, np.rint(array)):
                return f"{what} holds non-integer values where class indices {describe_values(allowed)} are expected"
            array = array.astype(np.int64)
    if allowed is None or array.dtype.kind not in "biu":
        return None
    present = _present_values(array)
    bad = sorted(set(int(v) for v in present) - set(int(v) for v in allowed))
    if bad:
        shown = ", ".join(str(v) for v in bad[:8]) + (f", ... ({len(bad) - 8} more)" if len(bad) > 8 else "")
        return f"{what} holds values {shown} outside the classes {describe_values(allowed)}"
    return None


def _pil_value_problem(path: Path, allowed: Sequence[int], what: str) -> str | None:
    """:func:`_value_problem` for a PIL class map; an 8-bit one through PIL's C histogram (a decoded 6-megapixel
    mask: 52 ms, against 117 ms through a numpy copy and ``bincount``)."""
    with open_raster(path) as image:
        grey = to_grayscale(image)
        if grey.mode != "L":
            return _value_problem(np.asarray(grey), allowed, what)
        counts = np.asarray(grey.histogram())
    if not counts.any():
        return f"{what} holds no pixels"
    return _value_problem(np.flatnonzero(counts).astype(np.uint8), allowed, what)


def _is_png(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def content_problem(path: str | os.PathLike, allowed: Sequence[int] | None = None, *, deep: bool = False,
                    what: str = "file") -> str | None:
    """Why the pixel content of ``path`` must not reach training, or ``None``. Cheap by design:

    - ``allowed`` given (a class map): decoded, every value must be one of ``allowed``.
    - MHD / MHA / NIfTI (may hold floats or a cut-off gzip stream): decoded, values must be finite.
    - PNG: its chunk checksums verified (a truncated or damaged body fails) without decompressing.
    - JPEG and MAT: nothing beyond the header (a JPEG holds neither NaN nor classes; a Lizard MAT is decoded and
      checked by its loader); ``deep=True`` decodes them too (:func:`read_size`).
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if allowed is not None and not name.endswith((*_VOLUMES, ".mat")):
            return _pil_value_problem(path, allowed, what)
        if allowed is not None or name.endswith(_VOLUMES):
            return _value_problem(read_pixels(path), allowed, what)
        if not deep and not name.endswith(".mat") and _is_png(path):
            with open_raster(path) as image:
                image.verify()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable", named with its path
        return f"unreadable {what} ({type(exc).__name__}: {exc})"
    return None
