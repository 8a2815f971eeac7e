"""What the four dataset loaders share: finding folders, reading headers, checking and splitting data lists, and
the few loading transforms MONAI lacks.

Why a shared module: every loader must fail the same way *before* training (an exception naming the offending
path) or, with ``on_error="skip"``, drop the bad item and report it; every loader splits with the same seeded,
reproducible rule; and every loader turns its files into the same tensors (``image`` float32 in [0, 1],
``(C, H, W)``; ``seg`` an integer ``(1, H, W)`` class map). Keeping those rules in one place keeps the loaders
about their datasets' layouts only.

Sizes are compared from headers (PIL's ``Image.open`` does not decode, an MHD is a text header, a NIfTI header is
348 bytes, ``scipy.io.whosmat`` lists a MAT file's variables without loading them), so checking thousands of files
costs seconds. On top of the headers, the default check reads what it must to keep bad data out of training
(:func:`content_problem`): class maps are decoded and their values checked against the data set's classes,
volumes (MHD / NIfTI) are decoded and checked for non-finite values, and PNG images have their chunk checksums
verified (a cut-off body fails; 20x cheaper than decoding). JPEG photos, the largest files and unable to hold
non-finite values or class labels, are only decoded with ``deep=True``, which decodes every file.

Size convention: :func:`read_size` returns the size *as displayed*, ``(rows, columns)``, whatever the format:
PIL ``(height, width)``; MHD ``DimSize = x y [1]`` -> ``(y, x)``; NIfTI written by ITK (CAMUS) ``(i, j[, 1])``
-> ``(j, i)``; a MAT label's ``inst_map`` ``(H, W)`` as stored. This matches what the loading transforms produce.
"""

from __future__ import annotations

import copy
import gzip
import io
import logging
import math
import os
import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
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
    "IMAGE_SUFFIXES",
    "SPLITS",
    "DataCheckError",
    "Datalists",
    "ProblemLog",
    "require_root",
    "find_dir",
    "require_dir",
    "list_images",
    "read_lines",
    "read_size",
    "check_same_size",
    "check_datalist",
    "allocate",
    "random_split",
    "finalize_datalists",
    "to_grayscale",
    "to_rgb",
    "load_pil",
    "scale_8bit",
    "binarize_mask",
    "resize",
    "cast_seg",
    "UprightFramed",
    "FillMissingSegd",
    "NamedLoadImaged",
    "read_pixels",
    "content_problem",
]

logger = logging.getLogger(__name__)

#: The class index that PyTorch's ``CrossEntropyLoss`` ignores by default: the target of a sample whose label (or
#: a pixel whose class) is unknown, so that items with only one of two targets still collate into one batch.
IGNORE_INDEX = -100
#: Image files the 2D loaders take (lower-case suffixes; matching is case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: The keys of every ``load_datalists`` result, in order.
SPLITS = ("training", "validation", "test")
_SKIP_DIRS = {"__MACOSX"}


# ----------------------------------------------------------------------------------------------------------------
# Results and problems
# ----------------------------------------------------------------------------------------------------------------


class Datalists(dict):
    """``{"training": [...], "validation": [...], "test": [...]}``, plus :attr:`skipped`: the items dropped with
    ``on_error="skip"`` (each ``{"split", "path", "reason"}``). A plain ``dict`` to every consumer."""

    def __init__(self, splits: Mapping[str, list[dict]], skipped: Iterable[dict] = ()) -> None:
        super().__init__((name, list(splits.get(name, []))) for name in SPLITS)
        self.skipped: list[dict] = list(skipped)


class ProblemLog:
    """Raise at the first problem (``on_error="raise"``) or record it and go on (``"skip"``).

    Missing files raise :class:`FileNotFoundError`, everything else :class:`DataCheckError` (a ``ValueError``);
    the message always names the path.
    """

    def __init__(self, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.skipped: list[dict] = []

    def report(self, path: str | os.PathLike, reason: str, *, missing: bool = False, split: str = "") -> None:
        if self.on_error == "raise":
            hint = " (pass on_error='skip' to drop such items)"
            raise (FileNotFoundError if missing else DataCheckError)(f"{reason}: {path}{hint}")
        self.skipped.append({"split": split, "path": str(path), "reason": reason})

    def report_error(self, error: Exception, path: str | os.PathLike, *, split: str = "") -> None:
        """Re-raise ``error`` (its message already names ``path``) or record it."""
        if self.on_error == "raise":
            raise error
        self.skipped.append({"split": split, "path": str(path), "reason": str(error)})


# ----------------------------------------------------------------------------------------------------------------
# Finding files
# ----------------------------------------------------------------------------------------------------------------


def require_root(root: str | os.PathLike, what: str = "data set root") -> Path:
    """The absolute root folder, or :class:`FileNotFoundError` naming it (a bundle's unset ``dataset_dir``
    arrives here as ``None``: say which setting to give rather than fail inside ``os.fspath``)."""
    if root is None or str(root) == "":
        raise ValueError(f"no {what} given: set dataset_dir (e.g. --dataset_dir /path/to/data) to the unzipped download")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def find_dir(root: Path, name: str, max_depth: int = 3) -> Path | None:
    """The shallowest folder called ``name`` at most ``max_depth`` levels below ``root`` (``root`` itself counts as
    level 0), or ``None``. Mirrors and unzip tools nest a data set's folders one or two levels deeper than the
    official archive; a bounded breadth-first search finds them without walking a whole disk. ``__MACOSX`` and
    hidden folders are skipped. An exact name anywhere within the depth wins over a case-insensitive match (a
    mirror's ``lizard_labels/`` holds the real ``Lizard_Labels/``)."""
    level, loose = [root], None
    for depth in range(max_depth + 1):
        exact = [d for d in level if d.name == name]
        if exact:
            return exact[0]
        loose = loose or next((d for d in level if d.name.lower() == name.lower()), None)
        if depth == max_depth:
            break
        children: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            children += [Path(e.path) for e in entries
                         if e.is_dir() and not e.name.startswith(".") and e.name not in _SKIP_DIRS]
        level = children
    return loose


def require_dir(root: Path, name: str, max_depth: int = 3, what: str = "expected folder") -> Path:
    """:func:`find_dir` or :class:`FileNotFoundError` naming the folder where it was expected."""
    found = find_dir(root, name, max_depth)
    if found is None:
        raise FileNotFoundError(f"{what} not found: {root / name} (searched {max_depth} levels below {root})")
    return found


def list_images(folder: Path, prefix: str = "", suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name), skipping AppleDouble ``._`` files and everything else
    (licences, attributions, spreadsheets) that real downloads keep next to the images."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.name.startswith(prefix) and not p.name.startswith("._")
        and p.suffix.lower() in suffixes
    )


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file, stripped: split lists come with CRLF line ends, trailing spaces, blank
    lines and sometimes a byte-order mark. Only surrounding white space is removed; the names stay verbatim
    (``%`` and inner spaces included)."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    return [line.strip() for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------------------------
# Header sizes
# ----------------------------------------------------------------------------------------------------------------

_MET_BYTES = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4, "MET_INT": 4,
              "MET_ULONG": 8, "MET_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _strip_trailing_ones(shape: Sequence[int]) -> tuple[int, ...]:
    shape = list(int(s) for s in shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def _read_mhd_header(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        raw = f.read(65536)
    if b"\0" in raw:
        raise ValueError("binary data in a MetaImage header")
    fields = {}
    for line in raw.decode("latin-1").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if "DimSize" not in fields or "ElementType" not in fields:
        raise ValueError("not a MetaImage header (no DimSize / ElementType)")
    return fields


def _mhd_size(path: Path, deep: bool) -> tuple[int, ...]:
    fields = _read_mhd_header(path)
    dims = [int(v) for v in fields["DimSize"].split()]
    data_file = fields.get("ElementDataFile", "")
    if data_file and data_file != "LOCAL" and fields.get("CompressedData", "False").lower() != "true":
        raw = path.parent / data_file
        if not raw.is_file():
            raise FileNotFoundError(f"data file of {path} not found: {raw}")
        expected = math.prod(dims) * _MET_BYTES.get(fields["ElementType"], 1) * int(
            fields.get("ElementNumberOfChannels", "1"))
        if raw.stat().st_size != expected:
            raise ValueError(f"data file {raw} holds {raw.stat().st_size} bytes, header expects {expected}")
    elif deep and fields.get("CompressedData", "False").lower() == "true":
        zlib.decompress((path.parent / data_file).read_bytes())
    # DimSize is x (columns) first: displayed (rows, columns) = (y, x)
    return _strip_trailing_ones([dims[1], dims[0], *dims[2:]])


def _nifti_header(stream) -> Any:
    """The NIfTI-1 or -2 header at the start of ``stream``, parsed by nibabel without ``nib.load``'s format
    sniffing (8x faster on a small ``.nii.gz``; what makes the check of thousands of frames take seconds)."""
    import nibabel as nib

    start = stream.read(4)
    if len(start) < 4:
        raise ValueError("file too short for a NIfTI header")
    size = int.from_bytes(start, "little")
    size = size if size in (348, 540) else int.from_bytes(start, "big")
    if size not in (348, 540):
        raise ValueError(f"not a NIfTI header (sizeof_hdr {size})")
    rest = stream.read(size - 4)
    return (nib.Nifti1Header if size == 348 else nib.Nifti2Header).from_fileobj(io.BytesIO(start + rest))


def _open_nifti(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _nifti_size(path: Path, deep: bool) -> tuple[int, ...]:
    if deep:
        _nifti_pixels(path)
    with _open_nifti(path) as stream:
        shape = _nifti_header(stream).get_data_shape()
    # CAMUS's NIfTI files were written by ITK: voxel axis i runs along a row (x), j down the image (y)
    return _strip_trailing_ones([shape[1], shape[0], *shape[2:]])


def _mat_size(path: Path, deep: bool) -> tuple[int, ...]:
    from scipy.io import loadmat, whosmat

    shapes = {name: shape for name, shape, _ in whosmat(str(path))}
    if "inst_map" not in shapes:
        raise ValueError(f"no 'inst_map' among the variables {sorted(shapes)}")
    if deep:
        loadmat(str(path))
    return tuple(int(s) for s in shapes["inst_map"])


def _pil_size(path: Path, deep: bool) -> tuple[int, ...]:
    from PIL import Image

    with Image.open(path) as image:  # identifies the format by content, not by suffix
        if deep:
            image.load()
        return (image.height, image.width)


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
        reader = _pil_size
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


# ----------------------------------------------------------------------------------------------------------------
# Pixel content
# ----------------------------------------------------------------------------------------------------------------

_MET_DTYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2", "MET_UINT": "u4",
               "MET_INT": "i4", "MET_ULONG": "u8", "MET_LONG": "i8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}


def _mhd_pixels(path: Path) -> np.ndarray:
    """The flat values of a MetaImage (header + ``.raw`` / ``.zraw``, or an ``.mha`` with ``LOCAL`` data)."""
    fields = _read_mhd_header(path) if path.suffix.lower() == ".mhd" else None
    if fields is None:  # .mha: the header is text up to the ElementDataFile line, the data follows
        raw = path.read_bytes()
        end = raw.find(b"\n", raw.find(b"ElementDataFile")) + 1
        if end <= 0:
            raise ValueError("not a MetaImage (no ElementDataFile line)")
        fields = {k.strip(): v.strip() for k, _, v in
                  (line.partition("=") for line in raw[:end].decode("latin-1").splitlines()) if v}
        data = raw[end:]
    else:
        name = fields.get("ElementDataFile", "")
        data = path.read_bytes().split(b"ElementDataFile", 1)[1].split(b"\n", 1)[1] if name == "LOCAL" \
            else (path.parent / name).read_bytes()
    if fields.get("CompressedData", "False").lower() == "true":
        data = zlib.decompress(data)
    msb = (fields.get("ElementByteOrderMSB") or fields.get("BinaryDataByteOrderMSB") or "False").lower() == "true"
    if fields["ElementType"] not in _MET_DTYPES:
        raise ValueError(f"unsupported ElementType {fields['ElementType']}")
    dtype = np.dtype(_MET_DTYPES[fields["ElementType"]]).newbyteorder(">" if msb else "<")
    count = math.prod(int(v) for v in fields["DimSize"].split()) * int(fields.get("ElementNumberOfChannels", "1"))
    if len(data) < count * dtype.itemsize:
        raise ValueError(f"{len(data)} bytes of pixel data, the header expects {count * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype, count=count)


def _nifti_pixels(path: Path) -> np.ndarray:
    """The flat voxel values of a single-file NIfTI, scaled by ``scl_slope`` / ``scl_inter`` as nibabel does."""
    with _open_nifti(path) as stream:
        header = _nifti_header(stream)
        data = stream.read()  # a cut-off gzip stream raises here (EOFError)
    offset = int(header["vox_offset"]) - int(header.sizeof_hdr)
    dtype = header.get_data_dtype()
    count = math.prod(int(s) for s in header.get_data_shape())
    if offset < 0 or len(data) < offset + count * dtype.itemsize:
        raise ValueError(f"{len(data) - max(offset, 0)} bytes of voxel data, the header expects "
                         f"{count * dtype.itemsize}")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    slope, inter = header.get_slope_inter()
    if slope is not None and (slope != 1 or (inter or 0) != 0):
        values = values * slope + (inter or 0)
    return values


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """The decoded values of an image or class-map file, as the loaders see them: PIL formats through
    :func:`to_grayscale` (a mask's palette or 0 / 1 mode-"1" pixels become the grey values the ISIC loader
    thresholds), MHD / MHA and NIfTI as stored (NIfTI scaling applied), a MAT label's ``inst_map``. Shape is not
    kept for MetaImages (the values are what is checked). Raises like the decoders do."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".mhd", ".mha")):
        return _mhd_pixels(path)
    if name.endswith((".nii", ".nii.gz")):
        return _nifti_pixels(path)
    if name.endswith(".mat"):
        from scipy.io import loadmat

        return np.asarray(loadmat(str(path), variable_names=["inst_map"])["inst_map"])
    from PIL import Image

    with Image.open(path) as image:
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


def _describe(values: Sequence[int]) -> str:
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
                return f"{what} holds non-integer values where class indices {_describe(allowed)} are expected"
            array = array.astype(np.int64)
    if allowed is None or array.dtype.kind not in "biu":
        return None
    present = _present_values(array)
    bad = sorted(set(int(v) for v in present) - set(int(v) for v in allowed))
    if bad:
        shown = ", ".join(str(v) for v in bad[:8]) + (f", ... ({len(bad) - 8} more)" if len(bad) > 8 else "")
        return f"{what} holds values {shown} outside the classes {_describe(allowed)}"
    return None


def _pil_value_problem(path: Path, allowed: Sequence[int], what: str) -> str | None:
    """:func:`_value_problem` for a PIL class map; an 8-bit one through PIL's C histogram (a decoded 6-megapixel
    mask: 52 ms, against 117 ms through a numpy copy and ``bincount``)."""
    from PIL import Image

    with Image.open(path) as image:
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
        if allowed is not None and not name.endswith((".mhd", ".mha", ".nii", ".nii.gz", ".mat")):
            return _pil_value_problem(path, allowed, what)
        if allowed is not None or name.endswith((".mhd", ".mha", ".nii", ".nii.gz")):
            return _value_problem(read_pixels(path), allowed, what)
        if not deep and not name.endswith(".mat") and _is_png(path):
            from PIL import Image

            with Image.open(path) as image:
                image.verify()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable", named with its path
        return f"unreadable {what} ({type(exc).__name__}: {exc})"
    return None


# ----------------------------------------------------------------------------------------------------------------
# Checking a data list
# ----------------------------------------------------------------------------------------------------------------


def _decoded_by_content_check(path: str, allowed: Sequence[int] | None) -> bool:
    return allowed is not None or path.lower().endswith((".mhd", ".mha", ".nii", ".nii.gz"))


def _item_problem(item: dict, keys: Sequence[str], optional_keys: Sequence[str], sizes: bool,
                  deep: bool, values: Mapping[str, Sequence[int]], spatial_dims: int | None
                  ) -> tuple[str, str, bool] | None:
    """``(path, reason, missing)`` for the first problem of an item, or ``None``."""
    where = item.get("image", item.get("id", "?"))
    for key in keys:
        if item.get(key) is None:
            return str(where), f"no {key!r} for this item", key != "label"
    if "label" in values and item.get("label") is not None and item["label"] not in values["label"]:
        return str(where), f"label {item['label']!r} is not one of the classes {_describe(values['label'])}", False
    file_keys = [k for k in (*keys, *optional_keys) if k != "label" and isinstance(item.get(k), str)]
    for key in file_keys:
        if not os.path.isfile(item[key]):
            what = "image" if key == "image" else f"{key} of image {item.get('image')}"
            return item[key], f"{what} not found", True
    if not sizes:
        return None
    found = {}
    for key in file_keys:
        try:  # files the content check decodes anyway are not decoded twice
            found[key] = read_size(item[key], deep and not _decoded_by_content_check(item[key], values.get(key)))
        except FileNotFoundError as exc:  # e.g. the .raw file of an .mhd header
            return item[key], str(exc), True
        except DataCheckError as exc:
            cause = exc.__cause__ or exc
            return item[key], f"unreadable {key} file ({type(cause).__name__}: {cause})", False
        if spatial_dims is not None and len(found[key]) != spatial_dims:
            return item[key], (f"{key} has size {found[key]}: expected a {spatial_dims}-D frame, not a volume or "
                               f"sequence"), False
    for key in file_keys:
        if key != "image" and "image" in found and found[key] != found["image"]:
            return item[key], (f"size mismatch: {key} is {found[key]} (rows, columns) but image {item['image']} is "
                               f"{found['image']}"), False
    for key in file_keys:
        reason = content_problem(item[key], values.get(key), deep=deep, what=key)
        if reason is not None:
            return item[key], reason, False
    return None


def check_datalist(
    datalist: Sequence[dict],
    keys: Sequence[str] = ("image", "seg"),
    *,
    optional_keys: Sequence[str] = (),
    sizes: bool = True,
    deep: bool = False,
    values: Mapping[str, Sequence[int]] | None = None,
    spatial_dims: int | None = 2,
    problems: ProblemLog | None = None,
    split: str = "",
) -> list[dict]:
    """Check every item before training; return the items that pass.

    Each item must have every key in ``keys`` (``"label"``: an int, other keys: an existing file); keys in
    ``optional_keys`` are checked only where present. ``values``: the allowed class indices per key (``"label"``
    the item's int, a file key its decoded pixels, e.g. ``{"seg": range(4)}``). With ``sizes`` the headers are
    read (an unreadable file is a problem), every file must have ``spatial_dims`` axes (``None``: any), every mask
    its image's size, and the content must pass :func:`content_problem` (class values, finite volumes, intact
    PNG bodies); ``deep`` decodes every file. A problem raises (the default ``ProblemLog``) or is recorded in
    ``problems`` and the item dropped.
    """
    problems = problems or ProblemLog("raise")
    values = dict(values or {})
    kept = []
    for item in datalist:
        problem = _item_problem(item, keys, optional_keys, sizes, deep, values, spatial_dims)
        if problem is None:
            kept.append(item)
        else:
            path, reason, missing = problem
            problems.report(path, reason, missing=missing, split=split)
    return kept


# ----------------------------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------------------------


def allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` into counts proportional to ``fractions`` (largest remainders), giving every part with a
    positive fraction at least one element when ``n`` allows: a 20 % validation split of 4 patients is 1, not 0."""
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {tuple(fractions)}")
    total = float(sum(fractions))
    exact = [n * f / total for f in fractions]
    counts = [int(math.floor(e)) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def random_split(
    items: Sequence[dict],
    fractions: Sequence[float],
    seed: int = 0,
    *,
    group_key: str | None = None,
    stratify_key: str | None = None,
) -> list[list[dict]]:
    """Seeded split of ``items`` into ``len(fractions)`` parts.

    ``group_key``: items sharing its value (e.g. a patient) stay in one part, so no patient is in two splits.
    ``stratify_key``: each part gets about its fraction of every value (e.g. each class), by spreading each
    stratum evenly over the shuffled order before cutting it. The result depends only on the items' group ids,
    ``seed`` and ``fractions``, not on file system order.
    """
    groups: dict[Hashable, list[dict]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item[group_key] if group_key else index, []).append(item)
    names = sorted(groups, key=str)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    if stratify_key is not None:
        strata: dict[Hashable, list[Hashable]] = {}
        for name in order:
            strata.setdefault(groups[name][0].get(stratify_key), []).append(name)
        jitter = {name: rng.random() * 1e-6 for name in order}
        position = {name: (rank + 0.5) / len(members) + jitter[name]
                    for members in strata.values() for rank, name in enumerate(members)}
        order = sorted(order, key=lambda name: position[name])
    parts, start = [], 0
    for count in allocate(len(order), fractions):
        parts.append([item for name in order[start:start + count] for item in groups[name]])
        start += count
    return parts


def finalize_datalists(
    splits: Mapping[str, list[dict]],
    *,
    source: str | os.PathLike,
    keys: Sequence[str] | Mapping[str, Sequence[str]],
    optional_keys: Sequence[str] = (),
    check: bool = True,
    deep: bool = False,
    values: Mapping[str, Sequence[int]] | None = None,
    spatial_dims: int | None = 2,
    problems: ProblemLog | None = None,
    allow_empty: Sequence[str] = (),
) -> Datalists:
    """Check every split (``check``; ``values``, ``spatial_dims``, ``deep``: see :func:`check_datalist`), refuse an
    empty one (unless named in ``allow_empty``: the data set has no such split) with a message naming ``source``,
    and log what ``on_error="skip"`` dropped. ``keys``: the required keys, or ``{split: keys}`` where splits
    differ (a test set without ground truth)."""
    problems = problems or ProblemLog("raise")
    result = {}
    for name in SPLITS:
        items = list(splits.get(name, []))
        required = keys[name] if isinstance(keys, Mapping) else keys
        if check:
            items = check_datalist(items, required, optional_keys=optional_keys, deep=deep, values=values,
                                   spatial_dims=spatial_dims, problems=problems, split=name)
        if not items and name not in allow_empty:
            dropped = sum(1 for s in problems.skipped if s["split"] == name)
            why = f" after skipping {dropped} bad item(s)" if dropped else ""
            raise DataCheckError(f"the {name!r} split is empty{why}: {source}")
        result[name] = items
    if problems.skipped:
        logger.warning("skipped %d bad item(s): %s", len(problems.skipped),
                       "; ".join(f"{s['path']} ({s['reason']})" for s in problems.skipped))
    return Datalists(result, problems.skipped)


# ----------------------------------------------------------------------------------------------------------------
# Loading transforms
# ----------------------------------------------------------------------------------------------------------------


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
