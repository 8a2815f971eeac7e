"""Class activation maps of VR on each strategy's enhanced images (GradProm paper, Figure 5).

Where the recognizer looks says whether enhancement restored the evidence it needs (here, the lesion) or led it
astray. The maps come from MONAI's :class:`monai.visualize.GradCAM` / :class:`monai.visualize.CAM`, upsampled to
the image and min-max normalised to [0, 1] per image with 1 = most activation. (MONAI's own default
post-processing maps (min, max) to (1, 0), i.e. it flips the map; :func:`minmax_normalizer` does not.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from monai_gradprom.analysis.qualitative import to_display
from monai_gradprom.workflow import pyplot, save_figure, write_json

__all__ = ["default_target_layer", "class_activation_maps", "plot_cam_grid", "minmax_normalizer", "CAM_METHODS"]

CAM_METHODS = ("gradcam", "gradcam++", "cam")


def minmax_normalizer(maps: torch.Tensor) -> torch.Tensor:
    """Per-image linear scaling of (N, 1, *spatial) maps to [0, 1], min -> 0 and max -> 1 (MONAI's
    ``ScaleIntensity``); a constant map becomes 0."""
    from monai.transforms import ScaleIntensity

    scale = ScaleIntensity(minv=0.0, maxv=1.0)
    return torch.stack([torch.as_tensor(scale(m)) for m in maps.detach()]).to(maps.device)


def default_target_layer(model: nn.Module) -> str:
    """The layer whose activations the CAM uses: ``layer4`` for ResNets (MONAI's and torchvision's last stage),
    otherwise the last convolution in ``model.named_modules()``."""
    names = dict(model.named_modules())
    if "layer4" in names:
        return "layer4"
    convs = [n for n, m in names.items() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution layer; give target_layer explicitly")
    return convs[-1]


def class_activation_maps(
    model: nn.Module,
    images: torch.Tensor,
    target_layer: str | None = None,
    class_idx: int | torch.Tensor | None = None,
    method: str = "gradcam",
    fc_layer: str = "fc",
    batch_size: int = 16,
) -> torch.Tensor:
    """CAMs (N, 1, *spatial) in [0, 1] of ``model`` for ``images`` (N, C, *spatial).

    ``class_idx``: the class to explain, one int for all or a tensor (N,) per image (e.g. the true labels);
    ``None`` explains each image's predicted class. ``method``: ``"gradcam"`` (MONAI GradCAM), ``"gradcam++"``
    or ``"cam"`` (needs a linear ``fc_layer`` right after global pooling, as in ResNets). The model is put in
    eval mode and its parameters' ``requires_grad`` flags are left as they were.
    """
    from monai.visualize import CAM, GradCAM, GradCAMpp

    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {list(CAM_METHODS)}")
    layer = target_layer or default_target_layer(model)
    if layer not in dict(model.named_modules()):
        raise KeyError(f"target layer {layer!r} not found in {type(model).__name__}")
    model.eval()
    if method == "cam":
        cam = CAM(nn_module=model, target_layers=layer, fc_layers=fc_layer, postprocessing=minmax_normalizer)
    else:
        cam = (GradCAM if method == "gradcam" else GradCAMpp)(nn_module=model, target_layers=layer,
                                                              postprocessing=minmax_normalizer)
    device = next(model.parameters()).device
    maps = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float()
        if class_idx is None:
            idx = None
        elif isinstance(class_idx, int):
            idx = [class_idx] * len(x)
        else:
            idx = [int(c) for c in torch.as_tensor(class_idx).reshape(-1)[start : start + batch_size]]
        if method == "cam":  # MONAI's CAM takes one class per image (or None: the predicted ones)
            maps.append(cam(x, class_idx=None if idx is None else torch.tensor(idx, device=device)).detach().cpu())
        elif method == "gradcam" and (idx is None or len(set(idx)) == 1):  # one class for the whole batch
            maps.append(cam(x, class_idx=None if idx is None else idx[0]).detach().cpu())
        else:
            # one image per call: GradCAM takes one class per call, and MONAI's GradCAM++ broadcasts the (B,)
            # score against the (B, C, *spatial) gradient, which is only right for B = 1
            idx = idx or [None] * len(x)
            maps.append(torch.cat([cam(x[i : i + 1], class_idx=c).detach().cpu() for i, c in enumerate(idx)]))
    return torch.cat(maps).float()


def plot_cam_grid(
    columns: Mapping[str, torch.Tensor],
    cams: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    predictions: Mapping[str, torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
    contours: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.45,
    json_path: str | os.PathLike | None = None,
) -> dict:
    """Rows = images, columns = ``columns`` (input / each strategy / target): the image in gray with its CAM
    (``cams[column]``) overlaid in the jet colour map; an optional mask (``contours``, e.g. the lesion) outlined,
    and VR's prediction under each panel (green = correct). Also reports, per column, the fraction of CAM
    mass inside ``contours`` (how much of VR's attention falls on the lesion)."""
    plt = pyplot()
    names = list(columns)
    n = len(next(iter(columns.values())))
    fig, axes = plt.subplots(n, len(names), figsize=(1.9 * len(names), 2.1 * n), squeeze=False)
    inside: dict[str, list[float]] = {}
    for col, name in enumerate(names):
        if name not in cams:
            raise KeyError(f"no CAM for column {name!r} (have {sorted(cams)})")
        pred = (predictions or {}).get(name)
        if pred is not None and pred.ndim > 1:
            pred = pred.argmax(1)
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(to_display(columns[name][row]), cmap="gray", vmin=0, vmax=1)
            ax.imshow(to_display(cams[name][row]), cmap="jet", alpha=alpha, vmin=0, vmax=1)
            if contours is not None:
                ax.contour(to_display(contours[row].float()), levels=[0.5], colors="white", linewidths=0.7)
                mask = contours[row].float().reshape(-1) > 0.5
                weight = cams[name][row].float().reshape(-1)
                inside.setdefault(name, []).append(float(weight[mask].sum() / weight.sum().clamp_min(1e-12)))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if pred is not None:
                cls = int(pred[row])
                ok = labels is not None and cls == int(labels.reshape(-1)[row])
                text = "VR: " + (class_names[cls] if class_names and cls < len(class_names) else str(cls))
                if name in inside:
                    text += f"\nin lesion {inside[name][-1]:.0%}"
                ax.set_xlabel(text, fontsize=7, color=("green" if ok else "red") if labels is not None else "black")
    fig.tight_layout()
    save_figure(fig, path)
    payload = {"columns": names, "cam_mass_inside_mask": inside,
               "cam_mass_inside_mask_mean": {k: sum(v) / len(v) for k, v in inside.items() if v}}
    if json_path is not None:
        write_json(json_path, payload)
    return payload
