"""Miniature copies of the four data sets, in their exact on-disk layouts and file formats, with synthetic content.

Why: the real data sets cannot be downloaded here (or in CI), yet the loaders must work on the real downloads
untouched. Each writer reproduces its data set's folder names, file names, formats and known quirks, with tiny
images whose content has structure tied to the targets (a lesion where its mask is, nuclei where the instance map
says, a heart where the echo labels are), so that a smoke training run is meaningful.

    python -m monai_gradprom.data.fixtures {isic2018,covid_ct,lizard,camus} --out DIR [--release original|nifti]
        [--num N] [--seed S] [--nested]

Every writer returns ``out_dir``: the ``root`` to give the data set's ``load_datalists``. Content is a pure
function of ``seed`` (and, for CAMUS, of the patient / view / phase), so the two CAMUS releases written with the
same seed hold the same frames.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "write_fixture", "write_isic2018", "write_covid_ct", "write_lizard", "write_camus", "main"]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])


def _ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float],
             angle: float = 0.0) -> np.ndarray:
    """Boolean (H, W) mask of a rotated ellipse: ``center`` and ``radii`` as (row, column)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    y, x = rows - center[0], cols - center[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * y + s * x, -s * y + c * x
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 <= 1.0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], passes: int = 2) -> np.ndarray:
    """Low-frequency texture in about [-1, 1] (box-filtered white noise)."""
    noise = rng.standard_normal(shape)
    for _ in range(passes):
        for axis in (0, 1):
            noise = (np.roll(noise, 1, axis) + noise + np.roll(noise, -1, axis)) / 3.0
    return noise / (np.abs(noise).max() + 1e-8)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def _save_pil(array: np.ndarray, path: Path, mode: str | None = None, fmt: str | None = None, **kwargs) -> None:
    from PIL import Image

    image = Image.fromarray(array)
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    image.save(path, format=fmt, **kwargs)


def _distractors(folder: Path) -> None:
    """The non-image files the real folders hold next to the images."""
    (folder / "LICENSE.txt").write_text("Creative Commons Attribution-NonCommercial 4.0 International (fixture)\n")
    (folder / "ATTRIBUTION.txt").write_text("ISIC 2018 fixture: synthetic images, no real patient data\n")


# ----------------------------------------------------------------------------------------------------------------
# ISIC 2018
# ----------------------------------------------------------------------------------------------------------------

_ISIC_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
#: lesion colour per diagnosis: the class is visible in the image
_ISIC_COLOURS = ((60, 30, 25), (140, 90, 60), (190, 120, 130), (170, 80, 60), (110, 85, 50), (150, 110, 90),
                 (150, 40, 70))


def _isic_case(seed: int, index: int, diagnosis: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB skin image (H, W, 3) with one elliptic lesion, and its 0 / 255 mask."""
    rng = _rng(seed, 1, index)
    shape = (int(rng.integers(56, 81)), int(rng.integers(64, 97)))
    center = (shape[0] * rng.uniform(0.35, 0.6), shape[1] * rng.uniform(0.3, 0.65))
    radii = (shape[0] * rng.uniform(0.15, 0.25), shape[1] * rng.uniform(0.15, 0.25))
    mask = _ellipse(shape, center, radii, rng.uniform(0, np.pi))
    texture = _smooth_noise(rng, shape)[..., None]
    skin = np.array([215.0, 165.0, 140.0]) + 12 * texture
    lesion = np.array(_ISIC_COLOURS[diagnosis], dtype=np.float64) + 18 * texture
    image = np.where(mask[..., None], lesion, skin) + rng.normal(0, 4, (*shape, 3))
    return _to_uint8(image), (mask * 255).astype(np.uint8)


def write_isic2018(out_dir: str | os.PathLike, *, seed: int = 0, num: int = 16, num_val: int = 4,
                   num_test: int = 2) -> Path:
    """ISIC 2018 Task 1 (training / validation / test, masks) and Task 3 (training / validation, CSV). Half of
    the Task 3 training images are Task 1 images too (same file), so ``task="both"`` has items with both
    targets."""
    out = Path(out_dir)
    cases: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def case(image_id: str, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        if image_id not in cases:
            diagnosis = index % len(_ISIC_CLASSES)
            cases[image_id] = (*_isic_case(seed, index, diagnosis), diagnosis)
        return cases[image_id]

    task1 = {"Training": [f"ISIC_{i:07d}" for i in range(num)],
             "Validation": [f"ISIC_{12000 + i:07d}" for i in range(num_val)],
             "Test": [f"ISIC_{36000 + i:07d}" for i in range(num_test)]}
    shared = task1["Training"][: num // 2]
    task3 = {"Training": shared + [f"ISIC_{24306 + i:07d}" for i in range(num - len(shared))],
             "Validation": [f"ISIC_{34321 + i:07d}" for i in range(num_val)]}
    index = {image_id: i for i, image_id in enumerate(dict.fromkeys(
        [x for ids in task1.values() for x in ids] + [x for ids in task3.values() for x in ids]))}
    for official, ids in task1.items():
        if not ids:
            continue
        inputs = out / f"ISIC2018_Task1-2_{official}_Input"
        truth = out / f"ISIC2018_Task1_{official}_GroundTruth"
        inputs.mkdir(parents=True, exist_ok=True)
        truth.mkdir(parents=True, exist_ok=True)
        for image_id in ids:
            image, mask, _ = case(image_id, index[image_id])
            _save_pil(image, inputs / f"{image_id}.jpg", quality=92)
            _save_pil(mask, truth / f"{image_id}_segmentation.png")
        _distractors(inputs)
        _distractors(truth)
    for official, ids in task3.items():
        inputs = out / f"ISIC2018_Task3_{official}_Input"
        truth = out / f"ISIC2018_Task3_{official}_GroundTruth"
        inputs.mkdir(parents=True, exist_ok=True)
        truth.mkdir(parents=True, exist_ok=True)
        rows = ["image," + ",".join(_ISIC_CLASSES)]
        for image_id in ids:
            image, _, diagnosis = case(image_id, index[image_id])
            task1_copy = out / "ISIC2018_Task1-2_Training_Input" / f"{image_id}.jpg"
            if task1_copy.is_file():
                shutil.copyfile(task1_copy, inputs / f"{image_id}.jpg")
            else:
                _save_pil(image, inputs / f"{image_id}.jpg", quality=92)
            rows.append(image_id + "," + ",".join("1.0" if k == diagnosis else "0.0"
                                                  for k in range(len(_ISIC_CLASSES))))
        (truth / f"ISIC2018_Task3_{official}_GroundTruth.csv").write_text("\n".join(rows) + "\n")
        _distractors(inputs)
        _distractors(truth)
    return out


# ----------------------------------------------------------------------------------------------------------------
# COVID-CT
# ----------------------------------------------------------------------------------------------------------------


def _ct_slice(seed: int, index: int, covid: bool) -> np.ndarray:
    """A grayscale (H, W) chest CT slice: body, two dark lungs, bright ground-glass patches when ``covid``."""
    rng = _rng(seed, 2, index)
    shape = (int(rng.integers(48, 97)), int(rng.integers(48, 97)))
    h, w = shape
    image = np.full(shape, 10.0)
    image[_ellipse(shape, (h * 0.5, w * 0.5), (h * 0.42, w * 0.46))] = 150.0
    lungs = _ellipse(shape, (h * 0.48, w * 0.3), (h * 0.3, w * 0.15)) | _ellipse(
        shape, (h * 0.48, w * 0.7), (h * 0.3, w * 0.15))
    image[lungs] = 35.0
    if covid:
        for _ in range(3):
            side = rng.choice([0.3, 0.7])
            blob = _ellipse(shape, (h * rng.uniform(0.35, 0.65), w * side), (h * 0.08, w * 0.06))
            image[blob & lungs] = 110.0
    image += 10 * _smooth_noise(rng, shape) + rng.normal(0, 3, shape)
    return _to_uint8(image)


def write_covid_ct(out_dir: str | os.PathLike, *, seed: int = 0, num: int = 10) -> Path:
    """COVID-CT: ``num`` images per class, official split lists, and the real download's quirks: a JPEG inside a
    ``.png``, RGBA / P / 16-bit / L / RGB modes, ``%`` and spaces in names, CRLF split lists with trailing
    blanks and spaces, and one name listed as ``.png`` whose file is ``.jpeg``."""
    if num < 6:
        raise ValueError("COVID-CT fixture needs num >= 6 images per class (its quirks)")
    out = Path(out_dir)
    covid_names = [f"2020.03.{10 + i:02d}.2003{i:04d}-p{i + 3}-{i * 7 + 1}.png" for i in range(num)]
    covid_names[2] = "PIIS0140673620303603%2.png"
    covid_names[3] = "2020.02.10.20021584-p6-52%2 (1).png"
    noncovid_names = [f"{i}.jpg" if i % 2 else f"{i}%{i % 3}.png" for i in range(num)]
    noncovid_names[1] = "1%0 a.jpg"
    noncovid_names[5] = "5.jpeg"  # listed as "5.png" (an early split file's mistake)
    listed = {"COVID": list(covid_names), "NonCOVID": list(noncovid_names)}
    listed["NonCOVID"][5] = "5.png"
    folders = {"COVID": out / "Images-processed" / "CT_COVID", "NonCOVID": out / "Images-processed" / "CT_NonCOVID"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(covid_names):
        pixels = _ct_slice(seed, i, covid=True)
        path = folders["COVID"] / name
        if i == 0:
            _save_pil(pixels, path, mode="RGB", fmt="JPEG", quality=90)  # JPEG data behind a .png name
        elif i == 1:
            _save_pil(pixels, path, mode="RGBA")
        elif i == 4:
            _save_pil(pixels, path, mode="P")
        elif i == 5:
            from PIL import Image

            Image.fromarray(pixels.astype(np.uint16) * 257).save(path)  # 16-bit grayscale PNG
        elif i % 2:
            _save_pil(pixels, path, mode="L")
        else:
            _save_pil(pixels, path, mode="RGB")
    for i, name in enumerate(noncovid_names):
        pixels = _ct_slice(seed, 1000 + i, covid=False)
        fmt = "JPEG" if name.endswith((".jpg", ".jpeg")) else "PNG"
        _save_pil(pixels, folders["NonCOVID"] / name, mode="RGB" if i % 3 == 0 else "L", fmt=fmt)
    n_train, n_val = int(round(num * 0.6)), int(round(num * 0.2))
    for cls, names in listed.items():
        split_dir = out / "Data-split" / cls
        split_dir.mkdir(parents=True, exist_ok=True)
        parts = {"train": names[:n_train], "val": names[n_train:n_train + n_val], "test": names[n_train + n_val:]}
        for prefix, part in parts.items():
            newline = "\r\n" if cls == "COVID" else "\n"
            lines = [name + (" " if k == 0 else "") for k, name in enumerate(part)]
            text = newline.join(lines) + newline + newline  # a trailing blank line
            (split_dir / f"{prefix}CT_{cls}.txt").write_bytes(text.encode())
    (out / "README.md").write_text("COVID-CT fixture (synthetic)\n")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Lizard
# ----------------------------------------------------------------------------------------------------------------

#: nucleus colour (RGB) and radius per class 1..6
_NUCLEI = {1: ((120, 40, 110), 2), 2: ((110, 60, 160), 4), 3: ((50, 20, 80), 2), 4: ((90, 40, 120), 3),
           5: ((170, 50, 90), 3), 6: ((140, 90, 170), 2)}


def _lizard_case(seed: int, index: int, inflamed: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = _rng(seed, 3, index)
    shape = (int(rng.integers(64, 97)), int(rng.integers(64, 97)))
    image = np.array([235.0, 190.0, 210.0]) + 10 * _smooth_noise(rng, shape)[..., None]
    inst_map = np.zeros(shape, np.int32)
    weights = np.array([0.1, 0.15, 0.35, 0.15, 0.1, 0.15] if inflamed else [0.01, 0.6, 0.05, 0.03, 0.01, 0.3])
    ids, classes, bboxes, centroids = [], [], [], []
    for _ in range(int(rng.integers(10, 18))):
        cls = int(rng.choice(6, p=weights / weights.sum())) + 1
        colour, radius = _NUCLEI[cls]
        center = (rng.uniform(radius, shape[0] - radius - 1), rng.uniform(radius, shape[1] - radius - 1))
        disk = _ellipse(shape, center, (radius + 0.5, radius + 0.5)) & (inst_map == 0)
        if disk.sum() < 4:
            continue
        k = len(ids) + 1
        inst_map[disk] = k
        image[disk] = np.array(colour) + rng.normal(0, 6, (int(disk.sum()), 3))
        rows, cols = np.nonzero(disk)
        ids.append(k)
        classes.append(cls)
        bboxes.append([rows.min(), rows.max() + 1, cols.min(), cols.max() + 1])
        centroids.append([cols.mean(), rows.mean()])
    label = {"inst_map": inst_map, "id": np.array(ids).reshape(-1, 1), "class": np.array(classes).reshape(-1, 1),
             "bbox": np.array(bboxes).reshape(-1, 4), "centroid": np.array(centroids, np.float64).reshape(-1, 2)}
    return _to_uint8(image + rng.normal(0, 3, image.shape)), label


def write_lizard(out_dir: str | os.PathLike, *, seed: int = 0, num: int = 18, nested: bool = False) -> Path:
    """Lizard: PNGs in ``Lizard_Images1`` and ``Lizard_Images2``, MAT v5 labels with the mixed types real files
    have, ``info.csv`` with folds 1-3; ``nested`` writes the common mirror's extra folder level."""
    from scipy.io import savemat

    out = Path(out_dir)
    images = [out / "lizard_images1" / "Lizard_Images1", out / "lizard_images2" / "Lizard_Images2"] if nested \
        else [out / "Lizard_Images1", out / "Lizard_Images2"]
    labels = (out / "lizard_labels" / "Lizard_Labels") if nested else (out / "Lizard_Labels")
    for folder in (*images, labels / "Labels"):
        folder.mkdir(parents=True, exist_ok=True)
    sources = ("consep", "crag", "dpath", "glas", "pannuke")
    rows = ["Filename,Source,Split"]
    for i in range(num):
        source = sources[i % len(sources)]
        name = f"{source}_{i // len(sources) + 1}"
        image, label = _lizard_case(seed, i, inflamed=(i // 3) % 2 == 0)
        _save_pil(image, images[0 if source in ("consep", "crag", "dpath") else 1] / f"{name}.png")
        # the types differ between real files: cast on reading
        types = [(np.int32, np.int32, np.int32, np.int32), (np.uint16, np.float64, np.uint8, np.float64),
                 (np.float64, np.float64, np.float64, np.int32)][i % 3]
        savemat(labels / "Labels" / f"{name}.mat", {
            "inst_map": label["inst_map"].astype(types[0]), "id": label["id"].astype(types[1]),
            "class": label["class"].astype(types[2]), "bbox": label["bbox"].astype(types[3]),
            "centroid": label["centroid"],
        }, format="5")
        rows.append(f"{name},{source},{i % 3 + 1}")
    (labels / "info.csv").write_text("\n".join(rows) + "\n")
    return out


# ----------------------------------------------------------------------------------------------------------------
# CAMUS
# ----------------------------------------------------------------------------------------------------------------

_QUALITIES = ("Good", "Medium", "Poor")
_SPACING = (0.154, 0.308)  # x, y in mm
_VIEW_KEYS = {"2CH": 2, "4CH": 4}
_PHASE_KEYS = {"ED": 0, "ES": 1}
_MHD_HEADER = """ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 1 0 0 0 1 0 0 0 1
Offset = 0 0 0
CenterOfRotation = 0 0 0
AnatomicalOrientation = RAI
ElementSpacing = {sx} {sy} 1
DimSize = {w} {h} {d}
ElementType = MET_UCHAR
ElementDataFile = {raw}
"""


def _camus_quality(patient: int, view: str) -> str:
    return _QUALITIES[(patient + (view == "4CH")) % 3]


def _camus_frame(seed: int, patient: int, view: str, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """An upright (H, W) echo frame (probe at the top, sector fan) and its 0..3 label map: LV cavity (1),
    myocardium (2), left atrium (3). Speckle grows as quality drops."""
    base = _rng(seed, 4, patient)
    shape = (int(base.choice([64, 72, 80])), int(base.choice([48, 56])))
    h, w = shape
    rng = _rng(seed, 4, patient, _VIEW_KEYS[view], _PHASE_KEYS[phase])
    rows, cols = np.mgrid[:h, :w].astype(np.float64)
    sector = np.abs(cols - w / 2) <= np.tan(np.radians(38)) * rows + 1
    scale = 1.0 if phase == "ED" else 0.8
    shift = (-0.06 if view == "2CH" else 0.06) * w
    lv_center, lv_radii = (0.42 * h, 0.5 * w + shift), (0.22 * h * scale, 0.15 * w * scale)
    label = np.zeros(shape, np.uint8)
    label[_ellipse(shape, lv_center, (lv_radii[0] + 3, lv_radii[1] + 3))] = 2
    label[_ellipse(shape, lv_center, lv_radii)] = 1
    label[_ellipse(shape, (0.8 * h, 0.5 * w + shift), (0.1 * h, 0.14 * w)) & (label == 0)] = 3
    label[~sector] = 0
    tissue = np.choose(label, [90.0, 20.0, 190.0, 25.0])
    speckle = {"Good": 0.15, "Medium": 0.3, "Poor": 0.5}[_camus_quality(patient, view)]
    image = tissue * rng.rayleigh(1.0, shape) ** speckle * sector + 8 * _smooth_noise(rng, shape) * sector
    return _to_uint8(image), label



def _write_mhd(path: Path, frames: np.ndarray) -> None:
    """A MetaImage pair exactly as CAMUS ships it: ``DimSize = W H D`` (x fastest), uint8 ``.raw`` beside."""
    raw = path.with_suffix(".raw")
    frames = np.ascontiguousarray(frames.reshape(-1, *frames.shape[-2:]), dtype=np.uint8)  # (D, H, W)
    raw.write_bytes(frames.tobytes())
    path.write_text(_MHD_HEADER.format(sx=_SPACING[0], sy=_SPACING[1], w=frames.shape[2], h=frames.shape[1],
                                       d=frames.shape[0], raw=raw.name))


def _write_nifti(path: Path, frames: np.ndarray) -> None:
    """A NIfTI file as the CAMUS NIfTI release holds it (written by ITK from the MHD): voxel axes (x, y[, t]),
    so nibabel returns ``(W, H)`` for a frame, transposed relative to the picture; ITK's LPS->RAS affine."""
    import nibabel as nib

    data = np.ascontiguousarray(np.moveaxis(frames, (-2, -1), (1, 0)) if frames.ndim == 2
                                else np.transpose(frames, (2, 1, 0)), dtype=np.uint8)
    image = nib.Nifti1Image(data, np.diag([-_SPACING[0], -_SPACING[1], 1.0, 1.0]))
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))


def _camus_info(patient: int, view: str, release: str, num_frames: int) -> str:
    rng = _rng(patient, _VIEW_KEYS[view])
    lines = {"ED": 1, "ES": num_frames, "NbFrame": num_frames, "Sex": "MF"[patient % 2],
             "Age": int(rng.integers(30, 90)), "ImageQuality": _camus_quality(patient, view)}
    if release == "original":
        edv, esv = float(rng.uniform(80, 150)), float(rng.uniform(30, 70))
        lines.update(LVedv=f"{edv:.1f}", LVesv=f"{esv:.1f}", LVef=f"{100 * (edv - esv) / edv:.1f}")
    else:
        lines.update(EF=int(rng.integers(35, 70)), FrameRate=int(rng.integers(30, 60)))
    return "".join(f"{k}: {v}\n" for k, v in lines.items())


def write_camus(out_dir: str | os.PathLike, *, seed: int = 0, num: int = 6, release: str = "original",
                nested: bool = False, num_testing: int = 2) -> Path:
    """CAMUS with ``num`` patients: ``release="original"`` writes ``training/`` (MHD / RAW, ground truth, a
    ``_sequence`` distractor, ``Info_*.cfg``) and ``testing/`` with ``num_testing`` patients without ground
    truth; ``release="nifti"`` writes ``CAMUS_public/{database_nifti,database_split}`` (``nested``: one more
    ``CAMUS_public`` level). Image quality differs between patients and views."""
    if release not in ("original", "nifti"):
        raise ValueError(f"release must be 'original' or 'nifti', got {release!r}")
    if num < 3:
        raise ValueError("CAMUS fixture needs num >= 3 patients (training, validation and test)")
    out = Path(out_dir)
    num_frames = 3
    if release == "original":
        for subset, count, with_gt in (("training", num, True), ("testing", num_testing, False)):
            for p in range(1, count + 1):
                number = p if subset == "training" else 500 + p  # testing patients get their own content
                folder = out / subset / f"patient{p:04d}"
                folder.mkdir(parents=True, exist_ok=True)
                for view in _VIEW_KEYS:
                    frames = {ph: _camus_frame(seed, number, view, ph) for ph in _PHASE_KEYS}
                    for phase, (image, label) in frames.items():
                        _write_mhd(folder / f"patient{p:04d}_{view}_{phase}.mhd", image)
                        if with_gt:
                            _write_mhd(folder / f"patient{p:04d}_{view}_{phase}_gt.mhd", label)
                    sequence = np.stack([frames["ED"][0], frames["ED"][0], frames["ES"][0]])
                    _write_mhd(folder / f"patient{p:04d}_{view}_sequence.mhd", sequence)
                    (folder / f"Info_{view}.cfg").write_text(_camus_info(number, view, release, num_frames))
        return out
    base = out / "CAMUS_public" / "CAMUS_public" if nested else out / "CAMUS_public"
    for p in range(1, num + 1):
        folder = base / "database_nifti" / f"patient{p:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for view in _VIEW_KEYS:
            frames = {ph: _camus_frame(seed, p, view, ph) for ph in _PHASE_KEYS}
            for phase, (image, label) in frames.items():
                _write_nifti(folder / f"patient{p:04d}_{view}_{phase}.nii.gz", image)
                _write_nifti(folder / f"patient{p:04d}_{view}_{phase}_gt.nii.gz", label)
            _write_nifti(folder / f"patient{p:04d}_{view}_half_sequence.nii.gz",
                         np.stack([frames["ED"][0], frames["ES"][0]]))
            (folder / f"Info_{view}.cfg").write_text(_camus_info(p, view, release, num_frames))
    split_dir = base / "database_split"
    split_dir.mkdir(parents=True, exist_ok=True)
    patients = [f"patient{p:04d}" for p in range(1, num + 1)]
    n_held = max(1, num // 10)  # about 80 / 10 / 10, at least one validation and one test patient
    for name, part in (("training", patients[: num - 2 * n_held]),
                       ("validation", patients[num - 2 * n_held: num - n_held]), ("testing", patients[num - n_held:])):
        (split_dir / f"subgroup_{name}.txt").write_text("".join(f"{p}\n" for p in part))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------------------

DATASETS: dict[str, Callable[..., Path]] = {
    "isic2018": write_isic2018,
    "covid_ct": write_covid_ct,
    "lizard": write_lizard,
    "camus": write_camus,
}


def write_fixture(dataset: str, out_dir: str | os.PathLike, *, seed: int = 0, **options) -> Path:
    """Write the miniature ``dataset`` (one of :data:`DATASETS`) into ``out_dir``; return the loader's root."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    return DATASETS[dataset](out_dir, seed=seed, **options)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m monai_gradprom.data.fixtures", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--out", required=True, help="folder to write into (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num", type=int, default=None, help="images (CAMUS: patients) per set / class")
    parser.add_argument("--release", choices=("original", "nifti"), default=None, help="CAMUS only")
    parser.add_argument("--nested", action="store_true", help="Lizard / CAMUS NIfTI: a mirror's extra folder level")
    args = parser.parse_args(argv)
    options: dict = {}
    if args.num is not None:
        options["num"] = args.num
    if args.release is not None:
        if args.dataset != "camus":
            parser.error("--release applies to camus only")
        options["release"] = args.release
    if args.nested:
        if args.dataset not in ("lizard", "camus"):
            parser.error("--nested applies to lizard and camus only")
        options["nested"] = True
    root = write_fixture(args.dataset, args.out, seed=args.seed, **options)
    print(root)
    return root


if __name__ == "__main__":
    main()
