"""Scores of one enhancer on fixed degraded images: PSNR / SSIM (MONAI metrics) and each judge's recognition.

Settings as in :mod:`monai_gradprom.engines.evaluator`: PSNR with data range 1; SSIM with MONAI's 11 x 11
Gaussian window (sigma 1.5); accuracy, or Dice over the foreground classes (an empty class predicted empty
counts 1). IP's output is clamped to [0, 1] before anything is measured; the unprocessed input is resized to the
target's size (bicubic) for super-resolution.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from monai.metrics import PSNRMetric, SSIMMetric
from torch import nn

from monai_gradprom.experiments.recognizers import score
from monai_gradprom.workflow import enhance

__all__ = ["enhancement_scores", "evaluate_images", "reference_scores"]


def _image_metrics(images: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    spatial_dims = target.ndim - 2
    psnr = PSNRMetric(max_val=1.0)(images, target)
    ssim = SSIMMetric(spatial_dims=spatial_dims, data_range=1.0, kernel_type="gaussian", win_size=11)(images, target)
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean())}


def enhancement_scores(ip: nn.Module | None, split: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """PSNR and SSIM of ``ip``'s output (``None``: the unprocessed input) on a degraded split."""
    return _image_metrics(enhance(ip, split["image"], split["target"]), split["target"])


def evaluate_images(
    images: torch.Tensor,
    split: Mapping[str, torch.Tensor],
    judges: Mapping[str, nn.Module],
    task_key: str,
    num_classes: int,
    with_image_metrics: bool = True,
) -> dict[str, float]:
    """``{psnr, ssim, <judge name>: mean recognition score, ...}`` of ``images`` against the split's clean target
    and recognition truth."""
    out = _image_metrics(images, split["target"]) if with_image_metrics else {}
    for name, judge in judges.items():
        out[name] = float(score(judge, images, split[task_key], task_key, num_classes).mean())
    return out


def reference_scores(
    split: Mapping[str, torch.Tensor], judges: Mapping[str, nn.Module], task_key: str, num_classes: int
) -> dict[str, dict[str, float]]:
    """The judges on the degraded input (``noisy``, with its PSNR / SSIM) and on the clean image (``clean``)."""
    noisy = enhance(None, split["image"], split["target"])
    return {
        "noisy": evaluate_images(noisy, split, judges, task_key, num_classes),
        "clean": evaluate_images(split["target"], split, judges, task_key, num_classes, with_image_metrics=False),
    }
