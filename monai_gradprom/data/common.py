"""What the four dataset loaders share, under one name: finding folders, reading headers, checking and splitting
data lists, and the few loading transforms MONAI lacks.

Why shared: every loader must fail the same way *before* training (an exception naming the offending path) or,
with ``on_error="skip"``, drop the bad item and report it; every loader splits with the same seeded, reproducible
rule; and every loader turns its files into the same tensors. Keeping those rules in one place keeps the loaders
about their datasets' layouts only. One module per job, re-exported here:

- :mod:`~monai_gradprom.data.files`: finding a data set's folders, images and split lists;
- :mod:`~monai_gradprom.data.content`: header sizes and pixel-content checks (through :mod:`monai_gradprom.io`);
- :mod:`~monai_gradprom.data.datalists`: checking, reporting and finalising data lists;
- :mod:`~monai_gradprom.data.splits`: seeded, grouped, stratified splits;
- :mod:`~monai_gradprom.data.loading`: mode converters and the loading transforms MONAI lacks.
"""

from __future__ import annotations

from monai_gradprom.data.checks import DataCheckError
from monai_gradprom.data.content import check_same_size, content_problem, read_pixels, read_size
from monai_gradprom.data.datalists import SPLITS, Datalists, ProblemLog, check_datalist, finalize_datalists
from monai_gradprom.data.files import IMAGE_SUFFIXES, find_dir, list_images, read_lines, require_dir, require_root
from monai_gradprom.data.loading import (
    IGNORE_INDEX,
    FillMissingSegd,
    NamedLoadImaged,
    UprightFramed,
    binarize_mask,
    cast_seg,
    load_pil,
    resize,
    scale_8bit,
    to_grayscale,
    to_rgb,
)
from monai_gradprom.data.splits import allocate, random_split

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
