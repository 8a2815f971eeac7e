"""CAMUS (2D echocardiography; Leclerc et al. 2019): end-diastole / end-systole frames of the apical two- and
four-chamber views with their segmentations, from either public release, untouched.

Original release (MetaImage)::

    training/patient0001/patient0001_2CH_ED.mhd  (+ .raw)     frame, DimSize = W H 1, MET_UCHAR
                         patient0001_2CH_ED_gt.mhd (+ .raw)    0 background, 1 LV cavity, 2 myocardium, 3 LA
                         ..._2CH_ES[_gt], _4CH_ED[_gt], _4CH_ES[_gt], _2CH_sequence.mhd (ignored)
                         Info_2CH.cfg, Info_4CH.cfg            "key: value" lines (ED, ES, NbFrame, Sex, Age,
                                                               ImageQuality, LVedv, LVesv, LVef)
    testing/patient0001/...                                    its own numbering; ground truth absent in some
                                                               versions

NIfTI release (``CAMUS_public``, possibly nested as ``CAMUS_public/CAMUS_public/``)::

    database_nifti/patient0001/patient0001_2CH_ED.nii.gz, ..._gt.nii.gz, Info_2CH.cfg, Info_4CH.cfg, ...
    database_split/subgroup_training.txt, subgroup_validation.txt, subgroup_testing.txt  (patient ids)

Both releases load to the same upright ``(1, H, W)`` arrays (rows = depth, probe at the top). The MHD stores x
(along a row) first with a singleton z; the NIfTI files were written by ITK from the same frames, so nibabel
returns them as ``(W, H)``: transposed relative to the picture. :class:`~monai_gradprom.data.common.UprightFramed`
undoes both. (Assumption, documented in ``docs/datasets.md``: the NIfTI voxel order is the MHD's, which is what an
ITK / SimpleITK conversion writes and what users of that release report: ``sitk.GetArrayFromImage`` gives
``(H, W)``, ``nib.load(...).get_fdata()`` must be transposed to display.)

Splits: the NIfTI release's ``database_split`` lists (``split="auto"`` / ``"official"``); the original release has
none, so its ``training/`` patients are split with ``seed`` by ``val_fraction`` / ``test_fraction`` (by patient:
no patient is in two splits). ``test_source="testing"`` takes the original ``testing/`` folder as the test split
instead (training / validation then share ``training/``); with ``require_gt=False`` its frames without ground
truth are kept without a ``seg`` key (for image-quality metrics only). Training and validation frames always need
their ground truth. ``image_quality`` (``Good`` / ``Medium`` / ``Poor``, from ``Info_<view>.cfg``) is kept in
every item; ``qualities`` filters by it after the patient split, so the split does not depend on the filter.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from monai.data import ITKReader, NibabelReader
from monai.transforms import EnsureChannelFirstd, MapTransform

from monai_gradprom.data.common import (
    DataCheckError,
    Datalists,
    NamedLoadImaged,
    ProblemLog,
    UprightFramed,
    cast_seg,
    finalize_datalists,
    find_dir,
    random_split,
    read_lines,
    require_root,
    resize,
    scale_8bit,
)

__all__ = [
    "LABELS",
    "VIEWS",
    "PHASES",
    "QUALITIES",
    "RELEASES",
    "find_release",
    "read_info",
    "load_datalists",
    "loading_transforms",
]

logger = logging.getLogger(__name__)

#: Class-map values.
LABELS = ("background", "LV cavity", "myocardium", "left atrium")
VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
QUALITIES = ("Good", "Medium", "Poor")
RELEASES = ("auto", "original", "nifti")
_SUFFIX = {"original": ".mhd", "nifti": ".nii.gz"}
_PATIENT = re.compile(r"^patient\d+$")
_MAX_DEPTH = 3


def find_release(root: str | os.PathLike, release: str = "auto") -> tuple[str, Path]:
    """``(release, folder)``: for ``"nifti"`` the folder holding ``database_nifti`` (and ``database_split``),
    for ``"original"`` the folder holding ``training`` (and ``testing``), searched up to three levels below
    ``root``. Raises :class:`FileNotFoundError` naming what was expected."""
    if release not in RELEASES:
        raise ValueError(f"release must be one of {RELEASES}, got {release!r}")
    root = require_root(root)
    if release in ("auto", "nifti"):
        found = find_dir(root, "database_nifti", _MAX_DEPTH)
        if found is not None:
            return "nifti", found.parent
        if release == "nifti":
            raise FileNotFoundError(f"CAMUS NIfTI release not found: {root / 'database_nifti'}")
    found = find_dir(root, "training", _MAX_DEPTH)
    if found is not None and any(_PATIENT.match(p.name) for p in found.iterdir() if p.is_dir()):
        return "original", found.parent
    raise FileNotFoundError(
        f"CAMUS not found under {root}: expected {root / 'database_nifti'} (NIfTI release) or "
        f"{root / 'training' / 'patient0001'} (original release)"
    )


def read_info(path: str | os.PathLike) -> dict[str, str]:
    """The ``key: value`` lines of an ``Info_<view>.cfg`` file (values as strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CAMUS info file not found: {path}")
    info = {}
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    return info


def _patient_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _PATIENT.match(p.name))


def _patient_id(line: str) -> str:
    return f"patient{int(line):04d}" if line.isdigit() else line


def _frames(patient_dir: Path, release: str, subset: str, views: Sequence[str], phases: Sequence[str],
            problems: ProblemLog) -> list[dict]:
    """The patient's frames, one item per (view, phase), with the view's image quality."""
    patient, suffix = patient_dir.name, _SUFFIX[release]
    prefix = "" if subset in ("training", "") else f"{subset}/"
    items = []
    for view in views:
        try:
            quality = read_info(patient_dir / f"Info_{view}.cfg").get("ImageQuality", "")
        except FileNotFoundError as exc:
            problems.report_error(exc, patient_dir / f"Info_{view}.cfg")
            continue
        for phase in phases:
            stem = f"{patient}_{view}_{phase}"
            items.append({
                "image": str(patient_dir / f"{stem}{suffix}"), "seg": str(patient_dir / f"{stem}_gt{suffix}"),
                "id": f"{prefix}{stem}", "patient": f"{prefix}{patient}", "view": view, "phase": phase,
                "image_quality": quality,
            })
    return items


def load_datalists(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    release: str = "auto",
    split: str = "auto",
    views: Sequence[str] = VIEWS,
    phases: Sequence[str] = PHASES,
    qualities: Sequence[str] = QUALITIES,
    test_source: str = "split",
    require_gt: bool = True,
    check: bool = True,
    deep: bool = False,
    on_error: str = "raise",
) -> Datalists:
    """Training / validation / test data lists of CAMUS: items ``{"image", "seg", "id", "patient", "view",
    "phase", "image_quality"}`` (see the module docstring).

    Args:
        release: ``"auto"`` (detect), ``"original"`` (MHD) or ``"nifti"``.
        split: ``"official"`` (NIfTI ``database_split`` lists, required), ``"random"`` (seeded patient split by
            ``val_fraction`` / ``test_fraction``), ``"auto"``: official where the release has it.
        views, phases, qualities: which frames to keep.
        test_source: original release only: ``"split"`` (test patients drawn from ``training/``) or
            ``"testing"`` (the ``testing/`` folder).
        require_gt: with ``test_source="testing"``, ``False`` keeps test frames without ground truth.
        check, deep, on_error: see :func:`monai_gradprom.data.common.check_datalist`. The check decodes every
            frame and mask through ITK / nibabel (843 x 630 frames: about 4 s per 1000 pairs): each must be a 2-D
            frame, finite, and a mask's values must be classes 0..3, else the file is named before training.
    """
    for name, given, allowed in (("views", views, VIEWS), ("phases", phases, PHASES)):
        if not given or set(given) - set(allowed):
            raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {tuple(given)}")
    if split not in ("auto", "official", "random"):
        raise ValueError(f"split must be 'auto', 'official' or 'random', got {split!r}")
    if test_source not in ("split", "testing"):
        raise ValueError(f"test_source must be 'split' or 'testing', got {test_source!r}")
    release, base = find_release(root, release)
    problems = ProblemLog(on_error)
    keys: dict[str, tuple[str, ...]] = {name: ("image", "seg") for name in ("training", "validation", "test")}
    if release == "nifti":
        if test_source == "testing":
            raise ValueError("test_source='testing' applies to the original release (the NIfTI release has splits)")
        splits, source = _nifti_splits(base, split, seed, val_fraction, test_fraction, views, phases, problems)
    else:
        if split == "official":
            raise ValueError(f"the original CAMUS release has no official split lists: {base}; use split='random'")
        splits, source = _original_splits(base, test_source, seed, val_fraction, test_fraction, views, phases,
                                          problems)
        if test_source == "testing" and not require_gt:
            for item in splits["test"]:
                if not os.path.isfile(item["seg"]):
                    del item["seg"]
            keys["test"] = ("image",)
    wanted = {q.lower() for q in qualities}
    splits = {name: [item for item in items if item["image_quality"].lower() in wanted]
              for name, items in splits.items()}
    return finalize_datalists(splits, source=source, keys=keys, optional_keys=("seg",), check=check, deep=deep,
                              values={"seg": range(len(LABELS))}, problems=problems)


def _nifti_splits(base: Path, split: str, seed: int, val_fraction: float, test_fraction: float,
                  views: Sequence[str], phases: Sequence[str], problems: ProblemLog
                  ) -> tuple[dict[str, list[dict]], Path]:
    data = base / "database_nifti"
    split_dir = base / "database_split"
    if split == "random" or (split == "auto" and not split_dir.is_dir()):
        if split == "auto":
            logger.warning("no %s: splitting CAMUS patients at random", split_dir)
        items = [item for p in _patient_dirs(data) for item in _frames(p, "nifti", "", views, phases, problems)]
        train, val, test = random_split(items, (1 - val_fraction - test_fraction, val_fraction, test_fraction),
                                        seed, group_key="patient")
        return {"training": train, "validation": val, "test": test}, data
    if not split_dir.is_dir():
        raise FileNotFoundError(f"CAMUS split lists not found: {split_dir}")
    splits: dict[str, list[dict]] = {}
    owner: dict[str, Path] = {}
    for name, file_name in (("training", "training"), ("validation", "validation"), ("test", "testing")):
        list_file = split_dir / f"subgroup_{file_name}.txt"
        splits[name] = []
        for line in read_lines(list_file):
            patient = _patient_id(line)
            if patient in owner:
                raise DataCheckError(f"{patient} is listed in both {owner[patient]} and {list_file}")
            owner[patient] = list_file
            patient_dir = data / patient
            if not patient_dir.is_dir():
                problems.report(patient_dir, f"patient folder listed in {list_file} not found", missing=True,
                                split=name)
                continue
            splits[name] += _frames(patient_dir, "nifti", "", views, phases, problems)
    return splits, split_dir


def _original_splits(base: Path, test_source: str, seed: int, val_fraction: float, test_fraction: float,
                     views: Sequence[str], phases: Sequence[str], problems: ProblemLog
                     ) -> tuple[dict[str, list[dict]], Path]:
    training = [item for p in _patient_dirs(base / "training")
                for item in _frames(p, "original", "training", views, phases, problems)]
    if test_source == "split":
        train, val, test = random_split(
            training, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed, group_key="patient")
    else:
        testing_dir = base / "testing"
        if not testing_dir.is_dir():
            raise FileNotFoundError(f"CAMUS testing folder not found: {testing_dir}")
        train, val = random_split(training, (1 - val_fraction, val_fraction), seed, group_key="patient")
        test = [item for p in _patient_dirs(testing_dir)
                for item in _frames(p, "original", "testing", views, phases, problems)]
    return {"training": train, "validation": val, "test": test}, base


def loading_transforms(keys: Sequence[str] = ("image", "seg"), spatial_size: Sequence[int] | None = None,
                       release: str = "auto") -> list[MapTransform]:
    """Item -> ``image`` float32 ``(1, H, W)`` in [0, 1] and ``seg`` int64 ``(1, H, W)`` in 0..3, upright and
    identical for both releases. ``release`` picks the reader: ``"original"`` MONAI's ``ITKReader``, ``"nifti"``
    its ``NibabelReader``, ``"auto"`` MONAI's choice by file suffix (the same two readers: nibabel for
    ``.nii.gz``, ITK for ``.mhd``). ``spatial_size`` resizes (class maps by nearest neighbour); CAMUS frame
    sizes differ between patients."""
    if release not in RELEASES:
        raise ValueError(f"release must be one of {RELEASES}, got {release!r}")
    file_keys = [k for k in keys if k in ("image", "seg")]
    image_keys = [k for k in file_keys if k == "image"]
    seg_keys = [k for k in file_keys if k == "seg"]
    if not file_keys:
        return []
    reader = {"original": ITKReader(), "nifti": NibabelReader(), "auto": None}[release]
    transforms: list[MapTransform] = [
        NamedLoadImaged(file_keys, reader=reader, allow_missing_keys=True),
        EnsureChannelFirstd(file_keys, channel_dim="no_channel", allow_missing_keys=True),
        UprightFramed(file_keys, allow_missing_keys=True),
    ]
    if image_keys:
        transforms.append(scale_8bit(image_keys))
    transforms += resize(image_keys, seg_keys, spatial_size)
    if seg_keys:
        transforms.append(cast_seg(seg_keys, allow_missing_keys=True))
    return transforms
