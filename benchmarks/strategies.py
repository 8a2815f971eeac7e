"""Re-measure the papers' claims about task-driven enhancement strategies on real images (issue 7).

Claims under test:

- GradProm (Zhang & Cheng, TPAMI 2025, Table 1): GradProm > frozen > joint > plain in PSNR / SSIM of IP's output
  and in recognition on it (ISIC, Gaussian sigma 0.1, supervised: 34.65 / 33.96 / 33.47 / 27.74 dB).
- Recognition-aware processing (Liu et al.): training IP through a recognizer raises recognition on the processed
  images at little PSNR cost, and the gain transfers to recognizers IP never saw.

Data (all shipped inside installed packages, nothing is downloaded):

- nilearn's MNI152 2009a T1 template with its grey- and white-matter probability maps, resampled to ``--mm``
  millimetres; 48 x 48 crops of axial and coronal slices. Each crop has a 4-class mask (background / grey matter /
  white matter / other tissue) for a segmentation VR and an image-level label (is the crop's white-matter share of
  its tissue above the training median?) for a diagnosis VR. Train and test slices come from disjoint bands of
  slice positions separated by gaps (see :func:`band_split`).
- pydicom's CT and MR test images, tiled: PSNR / SSIM of the MNI-trained IP on other modalities.

Everything runs in one process through :class:`GradPromTrainer` and :class:`EnhancementEvaluator`. VR (and the
unseen "transfer" recognizer) is pretrained once per seed on clean crops (clean pretraining does not depend on the
degradation) and IP is warmed up once per (setting, seed) with the plain strategy; every strategy then continues
from deep copies of these, on the same batches and noise, so strategies are compared pairwise per seed.

    python benchmarks/strategies.py --quick              # < 5 min on 2 cores -> outputs/benchmarks/strategies_quick/
    python benchmarks/strategies.py                      # full run (< 60 min on 2 cores) -> docs/results.md
    python benchmarks/strategies.py --report-only        # regenerate the markdown from the JSON of runs

Per-run results are appended to a JSON file as they finish (``runs.json`` next to the figures), so an interrupted
run resumes where it stopped; the pretrained recognizers and warmed-up IPs are cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------------ configuration
SETTINGS = ("gaussian:0.1", "gaussian:0.3", "challenging", "sr:x2")
# (run name, strategy name in monai_gradprom.strategies.STRATEGIES, gate)
STRATEGY_RUNS: dict[str, tuple[str, str]] = {
    "plain": ("plain", "hard"),
    "joint": ("joint", "hard"),
    "frozen": ("frozen", "hard"),
    "transformer": ("transformer", "hard"),
    "gradprom_hard": ("gradprom", "hard"),
    "gradprom_soft": ("gradprom", "soft"),
    "pcgrad": ("pcgrad", "hard"),
}
TASKS = {"seg": {"classes": 4, "metric": "dice"}, "label": {"classes": 2, "metric": "accuracy"}}
TASK_TITLES = {"seg": "segmentation VR (4 classes, Dice)", "label": "diagnosis VR (2 classes, accuracy)"}
SEG_CLASSES = ("background", "grey matter", "white matter", "other tissue")


@dataclasses.dataclass
class Config:
    """Everything that determines the numbers (its hash keys the cache and the JSON of runs)."""

    settings: tuple[str, ...] = SETTINGS
    strategies: tuple[str, ...] = tuple(STRATEGY_RUNS)
    # (task, supervision) pairs; "seg" = segmentation VR, "label" = diagnosis (classification) VR
    experiments: tuple[tuple[str, str], ...] = (("seg", "supervised"), ("seg", "unsupervised"), ("label", "supervised"))
    seeds: tuple[int, ...] = (0, 1, 2)
    mm: float = 1.5  # isotropic voxel size the template is resampled to
    crop: int = 48
    train_crops: int = 1536
    test_crops: int = 96
    batch: int = 8
    ip_channels: int = 16
    ip_blocks: int = 2
    ip_lr: float = 1e-3
    vr_lr: float = 1e-4  # VR's learning rate while it is co-trained (joint, gradprom, pcgrad)
    t_lr: float = 1e-3
    pretrain_steps: int = 300  # VR and the unseen recognizer, on clean crops, lr 1e-3
    warmup_steps: int = 200  # IP alone (plain), shared by every strategy of a (setting, seed)
    steps: int = 60  # each strategy's steps after the warm-up
    lam_supervised: float = 1e-2
    lam_unsupervised: float = 0.1  # softmax L2 is ~10x smaller than Dice + CE; 1.0 cost 6-8 dB in a trial
    test_seed: int = 12345

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def lam(self, supervision: str) -> float:
        return self.lam_supervised if supervision == "supervised" else self.lam_unsupervised


def quick_config() -> Config:
    return Config(
        settings=("gaussian:0.3", "sr:x2"),
        strategies=("plain", "joint", "frozen", "transformer", "gradprom_hard"),
        experiments=(("seg", "supervised"),),
        seeds=(0, 1),
        train_crops=512,
        test_crops=32,
        pretrain_steps=100,
        warmup_steps=80,
        steps=30,
    )


# ------------------------------------------------------------------------------------------------ data: MNI152
def _block_resample(volume: np.ndarray, mm: float) -> np.ndarray:
    """Resample a 1 mm volume to ``mm`` mm with linear interpolation after a box pre-filter (no aliasing)."""
    import torch
    import torch.nn.functional as F

    if mm == 1.0:
        return volume.astype(np.float32)
    x = torch.as_tensor(volume, dtype=torch.float32)[None, None]
    size = [max(1, int(round(s / mm))) for s in volume.shape]
    return F.interpolate(x, size=size, mode="area" if mm > 1 else "trilinear")[0, 0].numpy()


def load_mni(mm: float = 1.5) -> dict[str, np.ndarray]:
    """The MNI152 2009a T1 template and its GM / WM probability maps (shipped in nilearn), at ``mm`` mm."""
    from nilearn import datasets

    out = {}
    for key, loader in (("t1", datasets.load_mni152_template), ("gm", datasets.load_mni152_gm_template),
                        ("wm", datasets.load_mni152_wm_template)):
        image = loader(resolution=1)
        data = np.asarray(image.get_fdata(), dtype=np.float32)
        out[key] = _block_resample(data, mm)
    t1 = out["t1"]
    out["t1"] = np.clip(t1 / max(float(t1.max()), 1e-6), 0.0, 1.0)
    return out


HEAD_THRESHOLD = 0.05  # T1 (scaled to [0, 1]) above this is inside the head; the template is skull-stripped
TISSUE_THRESHOLD = 0.5


def segmentation_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """The 4-class mask: 0 background (T1 <= 0.05, outside the template's head/brain mask), 1 grey matter
    (GM probability >= 0.5 and > WM probability), 2 white matter (WM probability >= 0.5 and >= GM probability),
    3 other tissue (inside the mask but neither: CSF, ventricles, deep nuclei of low GM/WM probability)."""
    labels = np.zeros(t1.shape, dtype=np.int64)
    inside = t1 > HEAD_THRESHOLD
    labels[inside] = 3
    labels[inside & (gm >= TISSUE_THRESHOLD) & (gm > wm)] = 1
    labels[inside & (wm >= TISSUE_THRESHOLD) & (wm >= gm)] = 2
    return labels


def band_split(n: int, lo: int, hi: int, train: int = 10, gap: int = 4, test: int = 4) -> tuple[list[int], list[int]]:
    """Slice indices in ``[lo, hi)`` split into repeating bands: ``train`` slices for training, a ``gap``,
    ``test`` slices for testing, another ``gap``. No test slice lies within ``gap`` slices of a training one."""
    period = train + gap + test + gap
    train_idx, test_idx = [], []
    for i in range(max(lo, 0), min(hi, n)):
        phase = (i - lo) % period
        if phase < train:
            train_idx.append(i)
        elif train + gap <= phase < train + gap + test:
            test_idx.append(i)
    return train_idx, test_idx


def _slices(volume: np.ndarray, axis: int, indices: Iterable[int]) -> list[np.ndarray]:
    return [np.take(volume, i, axis=axis) for i in indices]


def _tissue_range(inside: np.ndarray, axis: int, min_fraction: float = 0.15) -> tuple[int, int]:
    """First / last index along ``axis`` whose slice is at least ``min_fraction`` of the largest slice's tissue."""
    other = tuple(a for a in range(3) if a != axis)
    area = inside.sum(axis=other)
    keep = np.nonzero(area >= min_fraction * area.max())[0]
    return int(keep[0]), int(keep[-1]) + 1


def mni_slices(mni: Mapping[str, np.ndarray]) -> dict[str, list[dict[str, Any]]]:
    """Axial (axis 2) and coronal (axis 1) slices of the template, split by :func:`band_split` on each axis.

    Returns ``{"train": [...], "test": [...]}`` of ``{"image": (H, W) float32, "seg": (H, W) int64, "plane",
    "index"}``.
    """
    labels = segmentation_labels(mni["t1"], mni["gm"], mni["wm"])
    inside = labels > 0
    out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for plane, axis in (("axial", 2), ("coronal", 1)):
        lo, hi = _tissue_range(inside, axis)
        train_idx, test_idx = band_split(mni["t1"].shape[axis], lo, hi)
        for part, indices in (("train", train_idx), ("test", test_idx)):
            for i, image, seg in zip(indices, _slices(mni["t1"], axis, indices), _slices(labels, axis, indices)):
                out[part].append({"image": image.astype(np.float32), "seg": seg, "plane": plane, "index": int(i)})
    return out


def sample_crops(
    slices: Sequence[Mapping[str, Any]], count: int, size: int, seed: int, min_tissue: float = 0.5,
    max_tries: int = 200,
) -> list[dict[str, Any]]:
    """``count`` random ``size`` x ``size`` crops whose tissue (non-background) share is at least ``min_tissue``;
    slices drawn uniformly. Each crop: ``image`` (1, size, size) float32, ``seg`` (1, size, size) int64."""
    rng = np.random.RandomState(seed)
    crops = []
    usable = [s for s in slices if min(s["image"].shape) >= size]
    if not usable:
        raise ValueError(f"no slice is at least {size} pixels on each side")
    while len(crops) < count:
        s = usable[rng.randint(len(usable))]
        h, w = s["image"].shape
        for _ in range(max_tries):
            y, x = rng.randint(h - size + 1), rng.randint(w - size + 1)
            seg = s["seg"][y:y + size, x:x + size]
            if (seg > 0).mean() >= min_tissue:
                crops.append({"image": s["image"][None, y:y + size, x:x + size].copy(), "seg": seg[None].copy(),
                              "plane": s["plane"], "index": s["index"], "yx": (int(y), int(x))})
                break
    return crops


def wm_share(seg: np.ndarray) -> float:
    """White-matter share of a crop's tissue: WM pixels / non-background pixels."""
    tissue = (seg > 0).sum()
    return float((seg == 2).sum() / tissue) if tissue else 0.0


def add_diagnosis_labels(crops: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """The image-level label: 1 when the crop's white-matter share of its tissue exceeds ``threshold`` (the median
    over the training crops), else 0. Recognisable only by telling WM from GM, which noise and blur blur."""
    for c in crops:
        c["label"] = int(wm_share(c["seg"]) > threshold)
    return crops


def build_mni_data(config: Config) -> dict[str, Any]:
    mni = load_mni(config.mm)
    parts = mni_slices(mni)
    train = sample_crops(parts["train"], config.train_crops, config.crop, seed=1)
    test = sample_crops(parts["test"], config.test_crops, config.crop, seed=2)
    threshold = float(np.median([wm_share(c["seg"]) for c in train]))
    add_diagnosis_labels(train, threshold)
    add_diagnosis_labels(test, threshold)
    info = {
        "volume_shape": list(mni["t1"].shape),
        "train_slices": {p: sorted({s["index"] for s in parts["train"] if s["plane"] == p}) for p in ("axial", "coronal")},
        "test_slices": {p: sorted({s["index"] for s in parts["test"] if s["plane"] == p}) for p in ("axial", "coronal")},
        "wm_threshold": threshold,
        "train_label_rate": float(np.mean([c["label"] for c in train])),
        "test_label_rate": float(np.mean([c["label"] for c in test])),
        "class_fractions_train": [float(np.mean([(c["seg"] == k).mean() for c in train])) for k in range(4)],
    }
    return {"train": train, "test": test, "info": info}


# ------------------------------------------------------------------------------------------------ data: DICOM
DICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "693_J2KI.dcm", "examples_overlay.dcm")


def _dicom_path(name: str) -> Path | None:
    """The file inside pydicom's own test-data folder (never the download cache: no network access)."""
    from pydicom.data.data_manager import DATA_ROOT

    path = Path(DATA_ROOT) / "test_files" / name
    return path if path.is_file() else None


def dicom_tiles(
    size: int = 48, files: Sequence[str] = DICOM_FILES, min_mean: float = 0.05, per_file: int = 8
) -> list[dict[str, Any]]:
    """Tiles ``size`` x ``size`` of pydicom's CT / MR test images for enhancement quality (PSNR / SSIM).

    Each image is windowed to its 0.5-99.5 percentile range into [0, 1], area-downsampled by the integer factor
    that brings its short side nearest to 3 tiles, and cut into non-overlapping tiles; tiles with mean <
    ``min_mean`` (air) are dropped, and at most ``per_file`` tiles, evenly spaced in scan order, are kept per file
    so that no file dominates. Unreadable files are skipped."""
    import pydicom
    import torch
    import torch.nn.functional as F

    tiles = []
    for name in files:
        path = _dicom_path(name)
        if path is None:
            continue
        try:
            ds = pydicom.dcmread(path)
            pixels = np.asarray(ds.pixel_array, dtype=np.float32)
        except Exception:  # noqa: BLE001 - a codec missing here: skip the file
            continue
        if pixels.ndim != 2:
            continue
        lo, hi = np.percentile(pixels, [0.5, 99.5])
        image = np.clip((pixels - lo) / max(hi - lo, 1e-6), 0, 1)
        factor = max(1, int(round(min(image.shape) / (3 * size))))
        if factor > 1:
            t = torch.as_tensor(image)[None, None]
            image = F.avg_pool2d(t, factor)[0, 0].numpy()
        h, w = image.shape
        found = []
        for y in range(0, h - size + 1, size):
            for x in range(0, w - size + 1, size):
                tile = image[y:y + size, x:x + size]
                if tile.mean() >= min_mean:
                    found.append({"image": tile[None].astype(np.float32).copy(), "source": name,
                                  "modality": str(ds.get("Modality", "?"))})
        if len(found) > per_file:
            found = [found[i] for i in np.linspace(0, len(found) - 1, per_file).round().astype(int)]
        tiles += found
    return tiles


# ------------------------------------------------------------------------------------------------ batches
class CropBatches:
    """``steps`` training batches: crops drawn with replacement, random flips, degraded on the fly by
    :class:`monai_gradprom.transforms.Degraded` (seeded). Batches are dicts of tensors: ``image`` (degraded),
    ``target`` (clean), ``seg`` (B, 1, H, W) and ``label`` (B,)."""

    def __init__(self, crops: Sequence[Mapping[str, Any]], degradation: str, steps: int, batch: int, seed: int):
        from monai_gradprom.transforms import Degraded

        self.crops, self.steps, self.batch, self.seed = crops, steps, batch, seed
        self.degrade = Degraded(keys="image", degradation=degradation).set_random_state(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch

        rng = np.random.RandomState(self.seed)
        for _ in range(self.steps):
            samples = []
            for i in rng.randint(len(self.crops), size=self.batch):
                c = self.crops[i]
                image, seg = c["image"], c["seg"]
                if rng.rand() < 0.5:
                    image, seg = image[:, :, ::-1], seg[:, :, ::-1]
                if rng.rand() < 0.5:
                    image, seg = image[:, ::-1], seg[:, ::-1]
                d = self.degrade({"image": torch.as_tensor(image.copy())})
                samples.append((d["image"], d["target"], torch.as_tensor(seg.copy()), c["label"]))
            yield {
                "image": torch.stack([torch.as_tensor(s[0]).float() for s in samples]),
                "target": torch.stack([torch.as_tensor(s[1]).float() for s in samples]),
                "seg": torch.stack([s[2] for s in samples]),
                "label": torch.as_tensor([s[3] for s in samples], dtype=torch.long),
            }


def fixed_batches(
    items: Sequence[Mapping[str, Any]], degradation: str, seed: int, batch: int = 16, keys: Sequence[str] = ("seg", "label")
) -> list[dict[str, Any]]:
    """A fixed degraded evaluation set (the same noise for every strategy and seed)."""
    import torch

    from monai_gradprom.transforms import Degraded

    degrade = Degraded(keys="image", degradation=degradation).set_random_state(seed)
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        done = [degrade({"image": torch.as_tensor(c["image"])}) for c in chunk]
        b = {"image": torch.stack([torch.as_tensor(d["image"]).float() for d in done]),
             "target": torch.stack([torch.as_tensor(d["target"]).float() for d in done])}
        if "seg" in keys and all("seg" in c for c in chunk):
            b["seg"] = torch.stack([torch.as_tensor(c["seg"]) for c in chunk])
        if "label" in keys and all("label" in c for c in chunk):
            b["label"] = torch.as_tensor([c["label"] for c in chunk], dtype=torch.long)
        out.append(b)
    return out


# ------------------------------------------------------------------------------------------------ networks
def build_ip(config: Config, setting: str):
    from monai_gradprom.networks import SRResNet

    upscale = int(setting.split("x")[-1]) if setting.startswith("sr:") else 1
    return SRResNet(channels=config.ip_channels, num_blocks=config.ip_blocks, upscale=upscale)


def build_vr(task: str):
    """VR: for ``seg`` a small MONAI UNet (residual units, 3 stride-2 stages); for ``label`` the package's
    recognizer factory (MONAI ResNet-10 at a quarter width, no max-pool)."""
    from monai.networks.nets import UNet

    from monai_gradprom.networks import build_recognizer

    if task == "seg":
        return UNet(spatial_dims=2, in_channels=1, out_channels=4, channels=(16, 32, 64, 128), strides=(2, 2, 2),
                    num_res_units=1)
    return build_recognizer("classification", "resnet10", num_classes=2, widen_factor=0.25, no_max_pool=True)


def build_unseen(task: str):
    """The transfer check's recognizer, of another architecture family, trained on clean crops only and never
    seen by IP: MONAI BasicUNet (plain double convolutions, max-pool, 4 stages) for ``seg``, MONAI DenseNet for
    ``label``."""
    from monai.networks.nets import BasicUNet, DenseNet

    if task == "seg":
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=4, features=(8, 16, 32, 64, 128, 8))
    return DenseNet(spatial_dims=2, in_channels=1, out_channels=2, init_features=16, growth_rate=8,
                    block_config=(2, 4, 4), bn_size=2)


def build_transformer():
    from monai_gradprom.networks import RATransformer

    return RATransformer(channels=8, num_blocks=2)


def _describe_networks(config: Config) -> dict[str, str]:
    def count(net) -> str:
        return f"{sum(p.numel() for p in net.parameters()) / 1e3:.0f} k parameters"

    return {
        "IP": f"SRResNet {config.ip_channels} channels x {config.ip_blocks} residual blocks "
              f"({count(build_ip(config, 'gaussian:0.1'))}; x2 sub-pixel stage for sr:x2)",
        "VR seg": f"MONAI UNet channels (16, 32, 64, 128), 1 residual unit ({count(build_vr('seg'))})",
        "VR label": f"build_recognizer('classification', 'resnet10', widen_factor=0.25) ({count(build_vr('label'))})",
        "unseen seg": f"MONAI BasicUNet features (8, 16, 32, 64, 128, 8) ({count(build_unseen('seg'))})",
        "unseen label": f"MONAI DenseNet, 3 dense blocks (2, 4, 4), growth 8 ({count(build_unseen('label'))})",
        "T": f"RATransformer 8 channels x 2 blocks ({count(build_transformer())})",
    }


# ------------------------------------------------------------------------------------------------ training
def _seed_all(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_for(*parts: Any) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def pretrain(net, crops, task: str, steps: int, batch: int, seed: int):
    """Train a recognizer on clean crops (the batch's ``target``) with the package's pretrain_recognizer."""
    import torch

    from monai_gradprom.engines import pretrain_recognizer

    loader = CropBatches(crops, "none", steps, batch, seed)
    return pretrain_recognizer(net, loader, torch.optim.Adam(net.parameters(), 1e-3), epochs=1, device="cpu",
                               task_key=task, image_key="target")


class _Recorder:
    """Collects per-iteration scalars of the trainer's output (read after each step)."""

    KEYS = ("loss_ip", "loss_vr", "cos", "gate")

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {k: [] for k in self.KEYS}

    def __call__(self, engine) -> None:
        out = engine.state.output
        for k in self.KEYS:
            if k in out:
                self.values[k].append(float(out[k]))


def train_ip(
    config: Config, setting: str, seed: int, ip, ip_state: dict | None, strategy_run: str, task: str | None,
    supervision: str, vr=None, steps: int | None = None, loader_seed: int = 0,
):
    """Run one GradPromTrainer from ``ip`` (and its Adam state) for ``steps`` steps; returns (ip, vr, T,
    optimizer state, recorder, seconds)."""
    import torch
    from ignite.engine import Events

    from monai_gradprom.engines import GradPromTrainer

    strategy, gate = STRATEGY_RUNS[strategy_run]
    steps = config.steps if steps is None else steps
    torch.manual_seed(_seed_for("train", setting, seed, strategy_run, task, supervision))
    ip_opt = torch.optim.Adam(ip.parameters(), config.ip_lr)
    if ip_state is not None:  # a copy: load_state_dict keeps the given tensors, and Adam updates them in place
        ip_opt.load_state_dict(copy.deepcopy(ip_state))
    kwargs: dict[str, Any] = {}
    if strategy != "plain":
        kwargs.update(vr_network=vr, vr_target_key=task, vr_supervision=supervision)
        if strategy in ("joint", "gradprom", "pcgrad"):
            kwargs["vr_optimizer"] = torch.optim.Adam(vr.parameters(), config.vr_lr)
        if strategy == "transformer":
            torch.manual_seed(_seed_for("T", seed))
            t = build_transformer()
            kwargs.update(transformer_network=t, transformer_optimizer=torch.optim.Adam(t.parameters(), config.t_lr))
    loader = CropBatches(TRAIN_CACHE["crops"], setting, steps, config.batch, loader_seed)
    trainer = GradPromTrainer(
        device="cpu", max_epochs=1, train_data_loader=loader, ip_network=ip, ip_optimizer=ip_opt,
        strategy=strategy, gate=gate, lam=config.lam(supervision), **kwargs,
    )
    recorder = _Recorder()
    trainer.add_event_handler(Events.ITERATION_COMPLETED, recorder)
    begin = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - begin
    return ip, vr, kwargs.get("transformer_network"), ip_opt.state_dict(), recorder, seconds


TRAIN_CACHE: dict[str, Any] = {}  # the training crops of the current run (set by run_benchmark)


def evaluate(ip, batches, vr=None, task: str | None = None, vr_input_transform=None) -> dict[str, float]:
    """EnhancementEvaluator over fixed batches: psnr, ssim, the task's metric, and their ``input_*`` twins."""
    from monai_gradprom.engines import EnhancementEvaluator

    kwargs: dict[str, Any] = {}
    if vr is not None:
        kwargs = {"vr_network": vr, "vr_target_key": task, "num_classes": TASKS[task]["classes"]}
    evaluator = EnhancementEvaluator(device="cpu", val_data_loader=batches, ip_network=ip,
                                     vr_input_transform=vr_input_transform, **kwargs)
    evaluator.run()
    return {k: float(v) for k, v in evaluator.state.metrics.items()}


# ------------------------------------------------------------------------------------------------ the runs
def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cached(path: Path, make):
    """``make()`` once; later runs (and resumed ones) load the saved result from ``path``."""
    import torch

    if path.is_file():
        return torch.load(path, weights_only=False)
    value = make()
    _atomic_save(value, path)
    return value


def _frozen_copy(net):
    net = copy.deepcopy(net).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _trained_recognizers(config: Config, seed: int, cache: Path) -> dict[str, dict[str, Any]]:
    """Per task: VR and the unseen recognizer, each trained on clean training crops (seeded, cached)."""
    from monai_gradprom.engines import mark_pretrained

    out: dict[str, dict[str, Any]] = {}
    for task in sorted({t for t, _ in config.experiments}):
        out[task] = {}
        for role, build in (("vr", build_vr), ("unseen", build_unseen)):
            def make(role=role, build=build, task=task):
                _seed_all(_seed_for("init", role, task, seed))
                net = build(task)
                pretrain(net, TRAIN_CACHE["crops"], task, config.pretrain_steps, config.batch,
                         _seed_for("pretrain", role, task, seed))
                return net.state_dict()

            net = build(task)
            net.load_state_dict(_cached(cache / f"seed{seed}_{task}_{role}.pt", make))
            out[task][role] = mark_pretrained(net)
    return out


def _warm_ip(config: Config, setting: str, seed: int, cache: Path):
    """IP after ``warmup_steps`` of plain training (shared starting point of every strategy), with its Adam state."""
    def make():
        _seed_all(_seed_for("init", "ip", setting, seed))
        ip = build_ip(config, setting)
        ip, _, _, opt_state, _, _ = train_ip(config, setting, seed, ip, None, "plain", None, "supervised",
                                             steps=config.warmup_steps, loader_seed=_seed_for("warm", setting, seed))
        return {"ip": ip.state_dict(), "opt": opt_state}

    saved = _cached(cache / f"seed{seed}_{setting.replace(':', '-')}_ip_warm.pt", make)
    ip = build_ip(config, setting)
    ip.load_state_dict(saved["ip"])
    return ip, saved["opt"]


def _gate_stats(recorder: _Recorder) -> dict[str, float | None]:
    cos = [c for c in recorder.values["cos"] if math.isfinite(c)]
    gate = recorder.values["gate"]
    return {
        "gate_open_rate": (sum(c >= 0 for c in cos) / len(cos)) if cos else None,
        "gate_mean": statistics.fmean(gate) if gate else None,
        "cos_mean": statistics.fmean(cos) if cos else None,
    }


def _metric(metrics: Mapping[str, float], task: str, prefix: str = "") -> float:
    return metrics[prefix + TASKS[task]["metric"]]


def _score_ip(ip, task: str, recognizers: Mapping[str, Any], vr_own, t_net, batches, tile_batches) -> dict[str, float]:
    """Every number of one trained IP: quality on MNI test crops and DICOM tiles, recognition by the strategy's
    own (possibly co-trained) VR, by the clean-trained VR, and by the unseen recognizer; plus the no-processing
    twins."""
    own = evaluate(ip, batches, vr_own, task, vr_input_transform=t_net)
    fixed = own if vr_own is recognizers["vr"] and t_net is None else evaluate(ip, batches, recognizers["vr"], task)
    unseen = evaluate(ip, batches, recognizers["unseen"], task)
    tiles = evaluate(ip, tile_batches)
    return {
        "psnr": own["psnr"], "ssim": own["ssim"],
        "vr_own": _metric(own, task), "vr_fixed": _metric(fixed, task), "unseen": _metric(unseen, task),
        "dicom_psnr": tiles["psnr"], "dicom_ssim": tiles["ssim"],
        "input_psnr": own["input_psnr"], "input_ssim": own["input_ssim"],
        "input_vr": _metric(fixed, task, "input_"), "input_unseen": _metric(unseen, task, "input_"),
        "input_dicom_psnr": tiles["input_psnr"], "input_dicom_ssim": tiles["input_ssim"],
    }


def _run_id(seed: int, setting: str, task: str, supervision: str, strategy: str) -> str:
    return f"seed{seed}|{setting}|{task}|{supervision}|{strategy}"


def _save_runs(path: Path, key: str, runs: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"config_key": key, "meta": meta, "runs": runs}))
    os.replace(tmp, path)


def run_benchmark(config: Config, out_dir: Path, cache_root: Path, log=print) -> dict[str, Any]:
    """Train and score every (seed, setting, experiment, strategy); resumable through ``out_dir/runs.json``."""
    import torch
    from monai.utils import set_determinism

    key = config.key()
    runs_path = out_dir / "runs.json"
    runs: list[dict[str, Any]] = []
    if runs_path.is_file():
        saved = json.loads(runs_path.read_text())
        if saved.get("config_key") == key:
            runs = saved["runs"]
            log(f"resuming: {len(runs)} runs already in {runs_path}")
    done = {r["id"] for r in runs}
    resumed = len(runs)
    cache = cache_root / key
    begin = time.perf_counter()
    data = build_mni_data(config)
    TRAIN_CACHE["crops"] = data["train"]
    tiles = dicom_tiles(config.crop)
    meta = {"config": dataclasses.asdict(config), "data": data["info"], "networks": _describe_networks(config),
            "dicom_tiles": {name: sum(t["source"] == name for t in tiles) for name in sorted({t["source"] for t in tiles})},
            "hardware": _hardware(), "torch_threads": torch.get_num_threads(), "commit": _git_commit()}
    total = len(config.seeds) * len(config.settings) * (
        1 + sum(s != "plain" for s in config.strategies) * len(config.experiments))
    count = len(done)
    for seed in config.seeds:
        set_determinism(seed=seed)
        recognizers = _trained_recognizers(config, seed, cache)
        clean = fixed_batches(data["test"], "none", seed=config.test_seed)
        meta.setdefault("clean_scores", {})[str(seed)] = {
            task: {role: _metric(evaluate(torch.nn.Identity(), clean, net, task), task) for role, net in nets.items()}
            for task, nets in recognizers.items()}
        for setting in config.settings:
            batches = fixed_batches(data["test"], setting, seed=config.test_seed)
            tile_batches = fixed_batches(tiles, setting, seed=config.test_seed, keys=())
            warm_ip, warm_opt = _warm_ip(config, setting, seed, cache)
            plain_ip = None
            for strategy in config.strategies:
                for task, supervision in (config.experiments if strategy != "plain" else [(None, None)]):
                    rid = _run_id(seed, setting, task or "-", supervision or "-", strategy)
                    if rid in done:
                        continue
                    step_begin = time.perf_counter()
                    vr = copy.deepcopy(recognizers[task]["vr"]) if task else None
                    ip, vr, t_net, _, recorder, train_seconds = train_ip(
                        config, setting, seed, copy.deepcopy(warm_ip), warm_opt, strategy, task,
                        supervision or "supervised", vr=vr, loader_seed=_seed_for("train", setting, seed))
                    if strategy == "plain":
                        plain_ip = ip
                        scores = {t: _score_ip(ip, t, recognizers[t], recognizers[t]["vr"], None, batches, tile_batches)
                                  for t in sorted({t for t, _ in config.experiments})}
                    else:
                        scores = {task: _score_ip(ip, task, recognizers[task], vr, t_net, batches, tile_batches)}
                    record = {"id": rid, "seed": seed, "setting": setting, "task": task, "supervision": supervision,
                              "strategy": strategy, "scores": scores, **_gate_stats(recorder),
                              "train_seconds": train_seconds, "seconds": time.perf_counter() - step_begin}
                    runs.append(record)
                    done.add(rid)
                    count += 1
                    _save_runs(runs_path, key, runs, meta)
                    elapsed = time.perf_counter() - begin
                    log(f"[{count}/{total}] {rid}: PSNR {next(iter(scores.values()))['psnr']:.2f} "
                        f"({record['seconds']:.1f} s; {elapsed / 60:.1f} min in this invocation)")
            del plain_ip
    meta["wall_minutes"] = (time.perf_counter() - begin) / 60
    meta["runs_from_earlier_invocations"] = resumed
    _save_runs(runs_path, key, runs, meta)
    return {"config_key": key, "meta": meta, "runs": runs}


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs visible, {platform.system()} {platform.release()}"


# ------------------------------------------------------------------------------------------------ the report
COLUMNS = (  # (score key, header, digits)
    ("psnr", "PSNR", 2), ("ssim", "SSIM", 3), ("vr_own", "VR own", 3), ("vr_fixed", "VR clean-trained", 3),
    ("unseen", "unseen recognizer", 3), ("dicom_psnr", "CT/MR PSNR", 2), ("dicom_ssim", "CT/MR SSIM", 3),
)
# The GradProm paper's ordering, as adjacent pairs (better, worse), and the RA paper's claim
ORDER_PAIRS = (("gradprom_hard", "frozen"), ("frozen", "joint"), ("joint", "plain"))


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values: Sequence[float], digits: int) -> str:
    mean, std = _mean_std(values)
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _scores(runs: Sequence[Mapping[str, Any]], setting: str, task: str, supervision: str, strategy: str) -> dict[int, dict]:
    """``{seed: scores}`` of one cell; plain's (task-independent) run is scored under every task."""
    out = {}
    for r in runs:
        if r["setting"] != setting or r["strategy"] != strategy:
            continue
        if strategy == "plain" or (r["task"] == task and r["supervision"] == supervision):
            if task in r["scores"]:
                out[r["seed"]] = dict(r["scores"][task], gate_open_rate=r.get("gate_open_rate"))
    return out


def _paired(a: Mapping[int, dict], b: Mapping[int, dict], key: str) -> list[float]:
    return [a[s][key] - b[s][key] for s in sorted(set(a) & set(b))]


def _verdict(diffs: Sequence[float]) -> str:
    if not diffs:
        return "n/a"
    if all(abs(d) < 1e-9 for d in diffs):
        return "equal"
    if all(d > 0 for d in diffs):
        return "holds"
    if all(d < 0 for d in diffs):
        return "reversed"
    return "mixed"


def _experiment_title(task: str, supervision: str) -> str:
    return f"{TASK_TITLES[task]}, {supervision}"


def _bars_figure(runs, config: Config, task: str, supervision: str, path: Path) -> None:
    """PSNR and VR (own) per strategy and setting, mean with std error bars over seeds."""
    from monai_gradprom.analysis._common import pyplot, save_figure

    plt = pyplot()
    keys = (("psnr", "PSNR (dB)"), ("vr_own", f"VR own ({TASKS[task]['metric']})"), ("unseen", "unseen recognizer"))
    fig, axes = plt.subplots(len(keys), len(config.settings), figsize=(3.2 * len(config.settings), 2.6 * len(keys)),
                             squeeze=False)
    names = list(config.strategies)
    for col, setting in enumerate(config.settings):
        for row, (key, label) in enumerate(keys):
            ax = axes[row][col]
            cells = [_scores(runs, setting, task, supervision, s) for s in names]
            stats = [_mean_std([v[key] for v in c.values()]) for c in cells]
            ax.bar(range(len(names)), [m for m, _ in stats], yerr=[s for _, s in stats], capsize=3, alpha=0.8,
                   color=[f"C{i}" for i in range(len(names))])
            base = _mean_std([v["input_psnr" if key == "psnr" else ("input_vr" if key == "vr_own" else "input_unseen")]
                              for v in cells[0].values()])[0]
            if math.isfinite(base):
                ax.axhline(base, color="gray", linestyle="--", linewidth=1, label="no processing")
            finite = [m for m, s in stats if math.isfinite(m)] + ([base] if math.isfinite(base) else [])
            spread = [m + s for m, s in stats if math.isfinite(m)] + [m - s for m, s in stats if math.isfinite(m)]
            if finite:
                low, high = min(finite + spread), max(finite + spread)
                ax.set_ylim(low - 0.15 * (high - low + 1e-6), high + 0.1 * (high - low + 1e-6))
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names if row == len(keys) - 1 else [], rotation=40, ha="right", fontsize=7)
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(setting, fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(_experiment_title(task, supervision), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _git_commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_report(result: Mapping[str, Any], config: Config, path: Path, figure_dir: Path, command: str) -> Path:
    """The markdown report (tables, figures, claim checks, reading) generated from the runs."""
    runs, meta = result["runs"], result["meta"]
    figure_dir.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(figure_dir, path.parent)
    n_seeds = len(config.seeds)
    lines: list[str] = []
    add = lines.append
    add("# Strategies on real images: do the papers' claims hold?")
    add("")
    add(f"*Generated by `{command}` (runs made at commit {meta.get('commit', 'not recorded')}, this page written "
        f"at commit {_git_commit()} on {time.strftime('%Y-%m-%d')}); do not edit by hand: re-run the command, or add "
        "`--report-only` to redraw it from the saved runs.*")
    add("")
    wall = meta.get("wall_minutes")
    earlier = meta.get("runs_from_earlier_invocations") or 0
    add(f"Hardware: {meta['hardware']}; torch threads {meta['torch_threads']}. "
        + (f"Wall time of the generating invocation: {wall:.1f} min" if wall is not None else "")
        + (f" (it resumed {earlier} runs saved by an earlier one)." if earlier else "."))
    add("")
    add("## What is measured")
    add("")
    info = meta["data"]
    add("- **Data.** nilearn's MNI152 2009a T1 template and its grey / white matter probability maps (shipped "
        f"in the package, nothing downloaded), resampled to {config.mm} mm (volume {info['volume_shape']}). "
        f"Axial and coronal slices are split into bands ({len(info['train_slices']['axial'])} + "
        f"{len(info['train_slices']['coronal'])} training slices, {len(info['test_slices']['axial'])} + "
        f"{len(info['test_slices']['coronal'])} test slices, 4-slice gaps between bands, see `band_split`); "
        f"{config.train_crops} training and {config.test_crops} test crops of {config.crop} x {config.crop} pixels with "
        "at least 50 % tissue.")
    fr = info["class_fractions_train"]
    add(f"- **Segmentation labels** (4 classes): background (T1 <= {HEAD_THRESHOLD}), grey matter (GM probability "
        f">= {TISSUE_THRESHOLD} and > WM), white matter (WM >= {TISSUE_THRESHOLD} and >= GM), other tissue; pixel "
        f"shares in training crops {', '.join(f'{n} {f:.2f}' for n, f in zip(SEG_CLASSES, fr))}.")
    add(f"- **Diagnosis label** (2 classes): 1 when a crop's white-matter share of its tissue exceeds the training "
        f"median {info['wm_threshold']:.3f} (label rate {info['train_label_rate']:.2f} train, "
        f"{info['test_label_rate']:.2f} test). It can only be read by telling white from grey matter.")
    tiles = ", ".join(f"{n} ({c} tile{'s' if c != 1 else ''})" for n, c in meta["dicom_tiles"].items())
    add(f"- **Other modalities.** pydicom's test images, windowed to their 0.5-99.5 percentiles and cut into "
        f"{config.crop}-pixel tiles: {tiles}. The MNI-trained IP is applied to them unchanged (column CT/MR).")
    add("- **Degradations** (`monai_gradprom.transforms`, fixed levels, clipped to [0, 1]): "
        + ", ".join(f"`{s}`" for s in config.settings) + "; the test sets are degraded once with a fixed seed, so "
        "every strategy and seed sees the same noisy test images.")
    add("- **Networks.** " + "; ".join(f"{k}: {v}" for k, v in meta["networks"].items()) + ".")
    add(f"- **Schedule** (per seed {list(config.seeds)}): VR and the unseen recognizer are trained on clean crops "
        f"for {config.pretrain_steps} steps (Adam 1e-3, batch {config.batch}); IP is trained alone (plain) for "
        f"{config.warmup_steps} steps per setting; then every strategy continues from copies of the same IP, its "
        f"Adam state and the same VR for {config.steps} steps on the same batches and noise (IP lr {config.ip_lr}, "
        f"co-trained VR lr {config.vr_lr}, T lr {config.t_lr}), so strategies are compared pairwise within a seed. "
        f"lam = {config.lam_supervised} (supervised) and {config.lam_unsupervised} (unsupervised: softmax L2 between "
        "VR(IP(x)) and a frozen copy of the clean-trained VR on the clean image).")
    add("- **Metrics** (`EnhancementEvaluator`): PSNR (data range 1) and SSIM (MONAI `SSIMMetric`, 11 x 11 Gaussian "
        "window, sigma 1.5) of IP's output against the clean crop; Dice (mean over grey matter, white matter, other "
        "tissue; background excluded) or accuracy. *VR own*: the recognizer the strategy ends with (co-trained for "
        "joint / GradProm / PCGrad, the fixed clean-trained one for frozen, VR after T for transformer). "
        "*VR clean-trained*: the clean-trained VR on IP's output for every strategy (the same judge for all). "
        "*Unseen recognizer*: another architecture, trained on clean crops, never seen by IP (the transfer check). "
        "*No processing*: the same recognizers on the degraded input (bicubic-upsampled for `sr:x2`).")
    add("- **Gate-open rate**: share of GradProm / PCGrad steps with cos(G_IP, G_VR) >= 0.")
    add("")
    add("All numbers are mean ± sample standard deviation over the seeds. Verdicts compare strategies **within** a "
        "seed (same data, start and noise): *holds* = better in every seed, *reversed* = worse in every seed, "
        "*mixed* = the sign changes between seeds, i.e. the difference is inside the seed-to-seed spread; *equal* = "
        "identical numbers (e.g. GradProm with its gate open at every step is joint, and transformer leaves IP as plain "
        "does).")
    add("")
    add("## Clean recognizers")
    add("")
    add("| task | VR (clean test crops) | unseen recognizer |")
    add("|---|---|---|")
    clean = meta.get("clean_scores", {})
    for task in sorted({t for t, _ in config.experiments}):
        vals = {role: [clean[s][task][role] for s in clean if task in clean[s]] for role in ("vr", "unseen")}
        add(f"| {TASK_TITLES[task]} | {_fmt(vals['vr'], 3)} | {_fmt(vals['unseen'], 3)} |")
    add("")

    verdicts: list[dict[str, Any]] = []
    for task, supervision in config.experiments:
        add(f"## {_experiment_title(task, supervision)}")
        add("")
        fig_name = f"strategies_{task}_{supervision}.png"
        _bars_figure(runs, config, task, supervision, figure_dir / fig_name)
        add(f"![{task} {supervision}]({rel}/{fig_name})")
        add("")
        for setting in config.settings:
            cells = {s: _scores(runs, setting, task, supervision, s) for s in config.strategies}
            add(f"### `{setting}`")
            add("")
            add("| strategy | " + " | ".join(h for _, h, _ in COLUMNS) + " | gate open |")
            add("|---|" + "---|" * (len(COLUMNS) + 1))
            base = cells.get("plain") or next(iter(cells.values()))
            inputs = {"psnr": "input_psnr", "ssim": "input_ssim", "vr_own": "input_vr", "vr_fixed": "input_vr",
                      "unseen": "input_unseen", "dicom_psnr": "input_dicom_psnr", "dicom_ssim": "input_dicom_ssim"}
            add("| no processing | " + " | ".join(_fmt([v[inputs[k]] for v in base.values()], d) for k, _, d in COLUMNS)
                + " | - |")
            for strategy, cell in cells.items():
                gate = _fmt([v["gate_open_rate"] for v in cell.values() if v.get("gate_open_rate") is not None], 2)
                add(f"| {strategy} | " + " | ".join(_fmt([v[k] for v in cell.values()], d) for k, _, d in COLUMNS)
                    + f" | {gate} |")
            add("")
            add("| claim (paired over seeds) | ΔPSNR | ΔSSIM | ΔVR own | ΔVR clean-trained | Δunseen | verdict PSNR / VR own |")
            add("|---|---|---|---|---|---|---|")
            pairs = list(ORDER_PAIRS) + [("gradprom_soft", "gradprom_hard"), ("pcgrad", "gradprom_hard"),
                                         ("transformer", "plain"), ("gradprom_hard", "plain")]
            for better, worse in pairs:
                if better not in cells or worse not in cells:
                    continue
                diffs = {k: _paired(cells[better], cells[worse], k) for k in ("psnr", "ssim", "vr_own", "vr_fixed", "unseen")}
                v_psnr, v_vr = _verdict(diffs["psnr"]), _verdict(diffs["vr_own"])
                verdicts.append({"task": task, "supervision": supervision, "setting": setting, "better": better,
                                 "worse": worse, "psnr": v_psnr, "vr_own": v_vr, "unseen": _verdict(diffs["unseen"]),
                                 "vr_fixed": _verdict(diffs["vr_fixed"]),
                                 "dpsnr": _mean_std(diffs["psnr"])[0], "dvr": _mean_std(diffs["vr_own"])[0]})
                add(f"| {better} > {worse} | " + " | ".join(
                    _fmt(diffs[k], 2 if k == "psnr" else 3) for k in ("psnr", "ssim", "vr_own", "vr_fixed", "unseen"))
                    + f" | {v_psnr} / {v_vr} |")
            add("")
    add("## Reading")
    add("")
    add(_reading(verdicts, config, n_seeds, runs))
    add("")
    add("## Reproduce")
    add("")
    add("```bash")
    add("bash scripts/setup_env.sh                      # once: the environment (nilearn comes with the test extra)")
    add(".venv/bin/python benchmarks/strategies.py       # the full run: writes this file and docs/results/")
    add(".venv/bin/python benchmarks/strategies.py --quick   # 2 settings, 5 strategies, 2 seeds: a smoke check")
    add("```")
    add("")
    add("The runs are saved one by one to `docs/results/runs.json` (an interrupted run resumes; "
        "`--report-only` redraws this page from it). Pretrained recognizers and warmed-up IPs are cached under "
        "`outputs/benchmarks/strategies_cache/`.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def _count(verdicts: Sequence[Mapping[str, Any]], better: str, worse: str, key: str, supervision: str | None = None
           ) -> tuple[dict[str, int], int]:
    chosen = [v for v in verdicts if v["better"] == better and v["worse"] == worse
              and (supervision is None or v["supervision"] == supervision)]
    counts = {k: sum(v[key] == k for v in chosen) for k in ("holds", "mixed", "reversed", "equal")}
    return counts, len(chosen)


def _extremes(runs: Sequence[Mapping[str, Any]], config: Config) -> list[str]:
    """Sentences on the gate-open rate per experiment and each strategy's worst mean PSNR loss against plain."""
    out = []
    rates = []
    for task, supervision in config.experiments:
        values = [r["gate_open_rate"] for r in runs if r["strategy"] == "gradprom_hard" and r["task"] == task
                  and r["supervision"] == supervision and r.get("gate_open_rate") is not None]
        if values:
            rates.append(f"{_experiment_title(task, supervision)} {statistics.fmean(values):.2f}")
    if rates:
        out.append("Gate-open rate of hard GradProm over training (mean over settings and seeds): " + "; ".join(rates)
                   + ". Where the gate is open at every step, GradProm computes exactly what joint does.")
    worst = []
    for strategy in config.strategies:
        if strategy == "plain":
            continue
        cells = []
        for task, supervision in config.experiments:
            for setting in config.settings:
                diffs = _paired(_scores(runs, setting, task, supervision, strategy),
                                _scores(runs, setting, task, supervision, "plain"), "psnr")
                if diffs:
                    cells.append((statistics.fmean(diffs), task, supervision, setting))
        if cells:
            d, task, supervision, setting = min(cells)
            worst.append((d, f"{strategy} {d:+.2f} dB ({_experiment_title(task, supervision)}, `{setting}`)"))
    if worst:
        out.append("Largest mean PSNR change against plain per strategy: " + "; ".join(t for _, t in worst) + ".")
        if min(d for d, _ in worst) < -3:
            out.append("A likely reason for the large losses: IP is trained with Adam, which normalises each "
                       "parameter's step, so lam sets the mix of directions but not the step length; where the "
                       "recognition term dominates the direction (a fixed VR, cross-entropy on a classifier), a "
                       "small lam does not keep IP near its L_IP optimum.")
    return out


def _reading(verdicts: Sequence[Mapping[str, Any]], config: Config, n_seeds: int,
             runs: Sequence[Mapping[str, Any]] = ()) -> str:
    """The verdicts summarised in sentences: how often each claimed ordering holds, is mixed, or is reversed."""
    cells = len(config.settings) * len(config.experiments)
    out = [f"Counted over the {cells} cells (settings x experiments) above, each with {n_seeds} paired seeds. "
           "A claim *holds* in a cell only if it holds in every seed."]
    out.append("")
    out.append("| ordering tested | PSNR holds / mixed / reversed | VR own holds / mixed / reversed | "
               "unseen recognizer holds / mixed / reversed | mean ΔPSNR | mean ΔVR own |")
    out.append("|---|---|---|---|---|---|")
    for better, worse in list(ORDER_PAIRS) + [("gradprom_hard", "plain"), ("transformer", "plain"),
                                             ("gradprom_soft", "gradprom_hard"), ("pcgrad", "gradprom_hard")]:
        row = []
        for key in ("psnr", "vr_own", "unseen"):
            counts, n = _count(verdicts, better, worse, key)
            if not n:
                break
            row.append(f"{counts['holds']} / {counts['mixed']} / {counts['reversed']}"
                       + (f" ({counts['equal']} equal)" if counts["equal"] else ""))
        if len(row) < 3:
            continue
        chosen = [v for v in verdicts if v["better"] == better and v["worse"] == worse]
        dp = statistics.fmean(v["dpsnr"] for v in chosen if math.isfinite(v["dpsnr"]))
        dv = statistics.fmean(v["dvr"] for v in chosen if math.isfinite(v["dvr"]))
        out.append(f"| {better} > {worse} | " + " | ".join(row) + f" | {dp:+.2f} dB | {dv:+.3f} |")
    out.append("")
    full = [v for v in verdicts if (v["better"], v["worse"]) in ORDER_PAIRS]
    by_cell: dict[tuple, list] = {}
    for v in full:
        by_cell.setdefault((v["task"], v["supervision"], v["setting"]), []).append(v)
    whole_psnr = sum(all(v["psnr"] == "holds" for v in vs) and len(vs) == len(ORDER_PAIRS) for vs in by_cell.values())
    whole_vr = sum(all(v["vr_own"] == "holds" for v in vs) and len(vs) == len(ORDER_PAIRS) for vs in by_cell.values())
    out.append(f"The GradProm paper's full ordering gradprom > frozen > joint > plain holds in every seed in "
               f"{whole_psnr} of {len(by_cell)} cells for PSNR and in {whole_vr} of {len(by_cell)} for VR own.")
    ra = [v for v in verdicts if v["better"] == "joint" and v["worse"] == "plain"]
    if ra:
        vr_gain = sum(v["vr_fixed"] == "holds" for v in ra)
        unseen_gain = sum(v["unseen"] == "holds" for v in ra)
        cost = statistics.fmean(-v["dpsnr"] for v in ra if math.isfinite(v["dpsnr"]))
        out.append(f"The RA paper's claim (recognition-aware training, here `joint`, raises recognition over plain "
                   f"processing at a small PSNR cost): the clean-trained VR scores higher on joint's output in every "
                   f"seed in {vr_gain} of {len(ra)} cells, the unseen recognizer (transfer) in {unseen_gain} of "
                   f"{len(ra)}; the PSNR cost averages {cost:.2f} dB.")
    out.append("")
    extremes = _extremes(runs, config)
    if extremes:
        out.extend(extremes)
        out.append("")
    out.append("How much of a difference is real depends on the seed-to-seed spread in the tables: a mean "
               "difference smaller than the ± of the strategies' own numbers is not evidence either way. This is a "
               f"small CPU-sized run ({config.steps} steps per strategy after a shared {config.warmup_steps}-step "
               f"warm-up, {config.crop}-pixel crops, a {config.ip_channels}-channel IP): it tests whether the "
               "orderings appear at this scale on these images, not whether they hold at the papers' scale.")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 settings, 5 strategies, seg supervised, 2 seeds (< 5 min)")
    parser.add_argument("--report-only", action="store_true", help="regenerate the report from the saved runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default docs/results.md; --quick: outputs/benchmarks/strategies_quick/results.md)")
    parser.add_argument("--cache", type=Path, default=REPO / "outputs" / "benchmarks" / "strategies_cache")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    config = quick_config() if args.quick else Config()
    if args.seeds:
        config = dataclasses.replace(config, seeds=tuple(args.seeds))
    report = args.out or (REPO / "outputs" / "benchmarks" / "strategies_quick" / "results.md" if args.quick
                          else REPO / "docs" / "results.md")
    data_dir = report.parent / ("results" if not args.quick else "")
    runs_path = data_dir / "runs.json"
    command = "python benchmarks/strategies.py" + (" --quick" if args.quick else "") + (
        f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds else "")
    if args.report_only:
        if not runs_path.is_file():
            raise FileNotFoundError(f"no saved runs at {runs_path}: run the benchmark first")
        result = json.loads(runs_path.read_text())
        if result.get("config_key") != config.key():
            raise ValueError(f"{runs_path} holds runs of another configuration ({result.get('config_key')}, "
                             f"expected {config.key()}); pass the same --quick / --seeds as the run")
    else:
        result = run_benchmark(config, data_dir, args.cache)
    write_report(result, config, report, data_dir, command)
    print(f"report written to {report}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
