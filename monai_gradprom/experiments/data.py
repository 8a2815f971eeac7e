"""Any bundle's data as the protocol needs it: clean tensors per split, a seeded training stream, fixed test noise.

The bundle decides what the data are (its ``datalists``, ``load_transforms``, ``degradation``, recognition task
and networks); the protocol decides how they are drawn, so that every strategy of a seed sees the same batches
and the same noise, and every strategy of every seed the same degraded validation and test images.
Augmentation is left out on purpose: the comparison isolates the training objective.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from monai_gradprom.data.reproducible import derive_seed

__all__ = ["BundleData", "load_bundle", "bundle_config_files", "DegradedStream", "degrade_fixed"]

_REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def bundle_config_files(bundle: str | os.PathLike) -> list[str]:
    """``demo`` -> ``[bundles/demo/train.json]``; a folder or a ``train.json`` path is used as it is."""
    path = Path(bundle)
    if path.suffix == ".json":
        candidates = [path]
    elif path.is_dir():
        candidates = [path / "train.json"]
    else:
        candidates = [_REPO_BUNDLES / str(bundle) / "train.json"]
    for candidate in candidates:
        if candidate.is_file():
            return [str(candidate)]
    known = sorted(p.name for p in _REPO_BUNDLES.iterdir() if (p / "train.json").is_file()) if _REPO_BUNDLES.is_dir() else []
    raise FileNotFoundError(f"bundle {str(bundle)!r}: no train.json found (known bundles: {known}, or pass a path)")


@dataclass
class BundleData:
    """Clean images and recognition targets of each split, with what the protocol needs to know of the bundle."""

    parser: Any
    splits: dict[str, dict[str, torch.Tensor]]
    task_key: str
    num_classes: int
    degradation: str
    spatial_dims: int

    @property
    def recognizer_task(self) -> str:
        return "classification" if self.task_key == "label" else "segmentation"


def _stack_split(items: Sequence[Mapping], transform, task_key: str, where: str) -> dict[str, torch.Tensor]:
    from monai.data import DataLoader, Dataset

    if not items:
        raise ValueError(f"{where} is empty")
    loader = DataLoader(Dataset(list(items), transform), batch_size=64, shuffle=False, num_workers=0)
    images, targets = [], []
    for batch in loader:
        image = batch["image"]
        images.append(image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image))
        if task_key not in batch:
            raise KeyError(f"{where}: items have no {task_key!r} key after loading (keys: {sorted(batch)})")
        target = torch.as_tensor(batch[task_key])
        targets.append(target.as_tensor() if hasattr(target, "as_tensor") else target)
    out = {"clean": torch.cat(images).float(), task_key: torch.cat(targets)}
    if task_key == "label":
        out[task_key] = out[task_key].reshape(-1).long()
    else:
        out[task_key] = out[task_key].long()
    low, high = float(out["clean"].min()), float(out["clean"].max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"{where}: clean images must lie in [0, 1] after the bundle's load_transforms, got [{low}, {high}]")
    return out


def load_bundle(
    bundle: str | os.PathLike,
    dataset_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    user_overrides: Mapping[str, Any] | None = None,
) -> BundleData:
    """Read the bundle's config and load its ``training`` / ``validation`` / ``test`` datalists through its
    ``load_transforms`` (plus ``eval_crop_transforms`` where the bundle has them) into clean tensors.

    ``overrides`` (a scale's sizes) are applied where the bundle defines the key and skipped elsewhere (not every
    bundle has ``num_train``); ``user_overrides`` must name keys the bundle defines: a typo is an error naming
    the closest key, never silently ignored.
    """
    import difflib

    from monai.transforms import Compose

    from monai_gradprom.workflow import get_config, load_bundle_config

    files = bundle_config_files(bundle)
    parser = load_bundle_config(files)
    if dataset_dir is not None:
        parser["dataset_dir"] = str(dataset_dir)
    for key, value in (overrides or {}).items():
        if key in parser or "#" in key:
            parser[key] = value
    for key, value in (user_overrides or {}).items():
        if key.split("#")[0] not in parser:
            close = difflib.get_close_matches(key, [str(k) for k in parser.get()], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"bundle {files[0]} defines no key {key!r}{hint}")
        parser[key] = value
    task_key = str(get_config(parser, "vr_target_key", "label"))
    num_classes = int(get_config(parser, "num_classes", 2))
    datalists = get_config(parser, "datalists")
    transforms = list(get_config(parser, "load_transforms"))
    if "eval_crop_transforms" in parser:
        transforms += list(get_config(parser, "eval_crop_transforms"))
    transform = Compose(transforms)
    splits = {}
    for split in ("training", "validation", "test"):
        items = datalists.get(split) or []
        if split == "validation" and not items:
            continue  # filled from the training split below
        splits[split] = _stack_split(items, transform, task_key, f"split {split!r} of bundle {files[0]}")
    if "validation" not in splits:
        n = max(1, len(splits["training"]["clean"]) // 5)
        splits["validation"] = {k: v[-n:] for k, v in splits["training"].items()}
        splits["training"] = {k: v[:-n] for k, v in splits["training"].items()}
    spatial_dims = splits["training"]["clean"].ndim - 2
    return BundleData(parser, splits, task_key, num_classes, str(get_config(parser, "degradation")), spatial_dims)


def _degrade(images: torch.Tensor, degradation: str, seed: int) -> torch.Tensor:
    from monai_gradprom.transforms import build_degradation

    transform = build_degradation(degradation)
    out = []
    for i, image in enumerate(images):
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=derive_seed(seed, i))
        value = transform(image)
        out.append(torch.as_tensor(value.as_tensor() if hasattr(value, "as_tensor") else value).float())
    return torch.stack(out)


def degrade_fixed(split: Mapping[str, torch.Tensor], degradation: str, seed: int) -> dict[str, torch.Tensor]:
    """The split with ``image`` = its clean images degraded once from ``seed`` (image i always gets the same
    noise) and ``target`` = the clean images: the batch layout of :class:`~monai_gradprom.engines.GradPromTrainer`."""
    out = {k: v for k, v in split.items() if k != "clean"}
    out["image"] = _degrade(split["clean"], degradation, seed)
    out["target"] = split["clean"]
    return out


class DegradedStream:
    """An endless stream of training batches that depends only on ``(seed, step)``: which images, and their noise.

    Strategies that start from the same seed therefore train on identical batches, and so their differences are
    paired. ``start`` continues a stream (fine-tuning picks up after the plain IP's steps).
    """

    def __init__(self, split: Mapping[str, torch.Tensor], degradation: str, batch_size: int, seed: int, start: int = 0):
        self.split, self.degradation = split, degradation
        self.batch_size, self.seed, self.step = int(batch_size), int(seed), int(start)
        self.size = len(split["clean"])
        if self.size < 1:
            raise ValueError("the training split is empty")

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, step))
        index = torch.randint(0, self.size, (self.batch_size,), generator=generator)
        chosen = {k: v[index] for k, v in self.split.items()}
        return degrade_fixed(chosen, self.degradation, derive_seed(self.seed, step, 1))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            self.step += 1
            yield self.batch(self.step)
