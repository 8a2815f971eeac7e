"""Qualitative grids: the degraded input, each strategy's output and the clean target, side by side, with each
image's PSNR / SSIM against the target and the recognizer's prediction under it.

Numbers under the pictures matter: differences between strategies are often invisible at thumbnail size, while
the recognizer's verdict on each output is exactly what task-driven enhancement changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch

from monai_gradprom.workflow import pyplot, save_figure, write_json

__all__ = ["image_quality", "plot_qualitative_grid", "to_display"]


def image_quality(images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR and SSIM against ``target`` with the evaluator's settings (data range 1, Gaussian 11 x 11)."""
    from monai.metrics import PSNRMetric, SSIMMetric

    spatial_dims = images.ndim - 2
    psnr = PSNRMetric(max_val=1.0, reduction="none")(images.float(), target.float()).reshape(-1)
    ssim_fn = SSIMMetric(spatial_dims=spatial_dims, data_range=1.0, kernel_type="gaussian", win_size=11, reduction="none")
    ssim = ssim_fn(images.float(), target.float()).reshape(len(images), -1).mean(1)
    return psnr, ssim


def to_display(image: torch.Tensor):
    """(C, *spatial) -> a 2-D (gray) or H x W x 3 (RGB) numpy array; 3-D volumes show their central slice."""
    image = image.detach().float().cpu()
    while image.ndim > 3:
        image = image[..., image.shape[-1] // 2]
    if image.shape[0] == 3:
        return image.permute(1, 2, 0).clamp(0, 1).numpy()
    return image[0].numpy()


def plot_qualitative_grid(
    columns: Mapping[str, torch.Tensor],
    target: torch.Tensor,
    path: str | os.PathLike,
    predictions: Mapping[str, torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    json_path: str | os.PathLike | None = None,
) -> dict:
    """A grid with one row per image and the columns ``columns`` (``{"input": x, "plain": ..., ...}``, each
    (N, C, *spatial) in [0, 1]) followed by ``target``.

    Under each image: PSNR / SSIM against the target (not for the target itself) and, where ``predictions``
    has that column (class indices (N,) or logits (N, K)), the predicted class, in green when it equals
    ``labels`` and red otherwise. Returns (and with ``json_path`` writes) the per-image numbers.
    """
    if not columns:
        raise ValueError("no image columns given")
    n = len(target)
    for name, images in columns.items():
        if images.shape != target.shape:
            raise ValueError(f"column {name!r} has shape {tuple(images.shape)}, the target {tuple(target.shape)}")
    predictions = dict(predictions or {})
    quality = {name: image_quality(images, target) for name, images in columns.items()}
    names = list(columns) + ["target"]
    plt = pyplot()
    fig, axes = plt.subplots(n, len(names), figsize=(1.9 * len(names), 2.15 * n), squeeze=False)
    numbers: dict[str, dict[str, list]] = {}
    for col, name in enumerate(names):
        images = columns.get(name, target)
        pred = predictions.get(name)
        if pred is not None and pred.ndim > 1:
            pred = pred.argmax(1)
        numbers[name] = {"psnr": [], "ssim": [], "prediction": []}
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(to_display(images[row]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            text, color = [], "black"
            if name in quality:
                psnr, ssim = float(quality[name][0][row]), float(quality[name][1][row])
                numbers[name]["psnr"].append(psnr)
                numbers[name]["ssim"].append(ssim)
                text.append(f"{psnr:.1f} dB / {ssim:.3f}")
            if pred is not None:
                cls = int(pred[row])
                numbers[name]["prediction"].append(cls)
                text.append("VR: " + (class_names[cls] if class_names and cls < len(class_names) else str(cls)))
                if labels is not None:
                    color = "green" if cls == int(labels.reshape(-1)[row]) else "red"
            elif name == "target" and labels is not None:
                cls = int(labels.reshape(-1)[row])
                text.append("label: " + (class_names[cls] if class_names and cls < len(class_names) else str(cls)))
            ax.set_xlabel("\n".join(text), fontsize=7, color=color)
    fig.tight_layout()
    save_figure(fig, path)
    payload = {"columns": names, "per_image": numbers}
    if labels is not None:
        payload["labels"] = labels.reshape(-1).tolist()
    if json_path is not None:
        write_json(json_path, payload)
    return payload

