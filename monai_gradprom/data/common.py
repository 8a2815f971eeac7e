"""What the four dataset loaders share: finding folders, reading headers, checking and splitting data lists, and
the few loading transforms MONAI lacks.

Why a shared module: every loader must fail the same way *before* training (an exception naming the offending
path) or, with ``on_error="skip"``, drop the bad item and report it; every loader splits with the same seeded,
reproducible rule; and every loader turns its files into the same tensors (``image`` float32 in [0, 1],
``(C, H, W)``; ``seg`` an integer ``(1, H, W)`` class map). Keeping those rules in one place keeps the loaders
about their datasets' layouts only.

Sizes are compared from headers (PIL's ``Image.open`` does not decode, an MHD is a text header, a NIfTI header is
348 bytes, ``scipy.io.whosmat`` lists a MAT file's variables without loading them), so checking thousands of files
costs seconds. ``deep=True`` decodes every file as well, which also catches truncated image data.

Size convention: :func:`read_size` returns the size *as displayed*, ``(rows, columns)``, whatever the format:
PIL ``(height, width)``; MHD ``DimSize = x y [1]`` -> ``(y, x)``; NIfTI written by ITK (CAMUS) ``(i, j[, 1])``
-> ``(j, i)``; a MAT label's ``inst_map`` ``(H, W)`` as stored. This matches what the loading transforms produce.
"""

from __future__ import annotations

import copy
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


def _nifti_size(path: Path, deep: bool) -> tuple[int, ...]:
    import nibabel as nib

    image = nib.load(str(path))
    if deep:
        np.asanyarray(image.dataobj)
    shape = image.shape
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
# Checking a data list
# ----------------------------------------------------------------------------------------------------------------


def _item_problem(item: dict, keys: Sequence[str], optional_keys: Sequence[str], sizes: bool,
                  deep: bool) -> tuple[str, str, bool] | None:
    """``(path, reason, missing)`` for the first problem of an item, or ``None``."""
    where = item.get("image", item.get("id", "?"))
    for key in keys:
        if item.get(key) is None:
            return str(where), f"no {key!r} for this item", key != "label"
    file_keys = [k for k in (*keys, *optional_keys) if k != "label" and isinstance(item.get(k), str)]
    for key in file_keys:
        if not os.path.isfile(item[key]):
            what = "image" if key == "image" else f"{key} of image {item.get('image')}"
            return item[key], f"{what} not found", True
    if not sizes:
        return None
    found = {}
    for key in file_keys:
        try:
            found[key] = read_size(item[key], deep)
        except FileNotFoundError as exc:  # e.g. the .raw file of an .mhd header
            return item[key], str(exc), True
        except DataCheckError as exc:
            cause = exc.__cause__ or exc
            return item[key], f"unreadable {key} file ({type(cause).__name__}: {cause})", False
    for key in file_keys:
        if key != "image" and "image" in found and found[key] != found["image"]:
            return item[key], (f"size mismatch: {key} is {found[key]} (rows, columns) but image {item['image']} is "
                               f"{found['image']}"), False
    return None


def check_datalist(
    datalist: Sequence[dict],
    keys: Sequence[str] = ("image", "seg"),
    *,
    optional_keys: Sequence[str] = (),
    sizes: bool = True,
    deep: bool = False,
    problems: ProblemLog | None = None,
    split: str = "",
) -> list[dict]:
    """Check every item before training; return the items that pass.

    Each item must have every key in ``keys`` (``"label"``: an int, other keys: an existing file); keys in
    ``optional_keys`` are checked only where present. With ``sizes`` the headers are read (an unreadable file is
    a problem) and every mask must have its image's size; ``deep`` decodes the files too. A problem raises (the
    default ``ProblemLog``) or is recorded in ``problems`` and the item dropped.
    """
    problems = problems or ProblemLog("raise")
    kept = []
    for item in datalist:
        problem = _item_problem(item, keys, optional_keys, sizes, deep)
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
    problems: ProblemLog | None = None,
    allow_empty: Sequence[str] = (),
) -> Datalists:
    """Check every split (``check``), refuse an empty one (unless named in ``allow_empty``: the data set has no
    such split) with a message naming ``source``, and log what ``on_error="skip"`` dropped. ``keys``: the
    required keys, or ``{split: keys}`` where splits differ (a test set without ground truth)."""
    problems = problems or ProblemLog("raise")
    result = {}
    for name in SPLITS:
        items = list(splits.get(name, []))
        required = keys[name] if isinstance(keys, Mapping) else keys
        if check:
            items = check_datalist(items, required, optional_keys=optional_keys, deep=deep, problems=problems,
                                   split=name)
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


def load_pil(keys: KeysCollection, converter: Callable | None, allow_missing_keys: bool = False) -> LoadImaged:
    """``LoadImaged`` with MONAI's ``PILReader`` in numpy order (rows first: ``reverse_indexing=False``), after
    ``converter`` fixes the mode. PIL identifies the format by content, so a JPEG saved as ``.png`` loads too."""
    return LoadImaged(keys, reader=PILReader(converter=converter, reverse_indexing=False),
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
                raise ValueError(f"{key}: expected a 2D frame (C, x, y[, 1]), got shape {tuple(d[key].shape)}")
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
