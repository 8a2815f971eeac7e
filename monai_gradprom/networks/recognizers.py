"""One factory for the recognition network VR: classifiers and segmenters with ResNet backbones.

The default back end is MONAI's own networks (``monai.networks.nets.ResNet`` and ``FlexibleUNet`` with a ResNet
encoder), which need no torchvision. segmentation-models-pytorch (``backend="smp"``) is an option where it can be
imported; it imports torchvision, which fails on machines whose torchvision wheel does not match torch, so it is
imported lazily, inside the factory, and this module stays importable without it.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks import nets
from torch import nn

from monai_gradprom.utils import optional_module

__all__ = [
    "build_recognizer",
    "RequireDivisibleInput",
    "RECOGNIZER_ARCHS",
    "RECOGNIZER_TASKS",
    "RECOGNIZER_BACKENDS",
    "SEGMENTATION_DIVISOR",
]

RECOGNIZER_ARCHS = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101")
RECOGNIZER_TASKS = ("classification", "segmentation")
RECOGNIZER_BACKENDS = ("monai", "smp")
SEGMENTATION_DIVISOR = 32  # five stride-2 stages in the ResNet encoder of the UNet

_NO_DOWNLOAD = (
    "build the network with pretrained=False and load a trained checkpoint instead "
    "(monai_gradprom.engines.load_network_weights, or the bundles' vr_checkpoint)"
)


class RequireDivisibleInput:
    """Forward pre-hook: a clear ``ValueError`` when a spatial size is not divisible by ``divisor``.

    Without it, a UNet fails deep inside its decoder with a tensor-concatenation error. A hook (rather than a
    wrapper module) keeps the network's class and state-dict keys, so checkpoints of the plain MONAI / smp model
    load unchanged; it is a module-level class so that ``copy.deepcopy`` and ``torch.save(model)`` still work.
    """

    def __init__(self, divisor: int = SEGMENTATION_DIVISOR) -> None:
        self.divisor = divisor

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        spatial = tuple(args[0].shape[2:])
        if any(s % self.divisor for s in spatial):
            raise ValueError(
                f"the segmentation recognizer needs spatial sizes divisible by {self.divisor}, got {spatial}; "
                "pad or resize the images (e.g. monai.transforms.DivisiblePadd(k=32))"
            )


class _SmpClassifier(nn.Module):
    """smp encoder + smp's pooling / linear classification head: logits ``(B, num_classes)``."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)[-1])


def _check(name: str, value: Any, valid: tuple[Any, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")


def _monai_recognizer(
    task: str, arch: str, spatial_dims: int, in_channels: int, num_classes: int, pretrained: bool, **kwargs: Any
) -> nn.Module:
    if task == "classification":
        if pretrained:
            raise ValueError(
                "MONAI has no pretrained ResNet classifiers (its MedicalNet weights are 3D feature extractors "
                f"without a classification head, and need a download): {_NO_DOWNLOAD}"
            )
        factory = getattr(nets, arch)
        return factory(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs)
    if pretrained and (spatial_dims != 3 or in_channels != 1):
        raise ValueError(
            "MONAI's pretrained ResNet encoders (MedicalNet) exist for spatial_dims=3 and in_channels=1 only, got "
            f"spatial_dims={spatial_dims}, in_channels={in_channels}: {_NO_DOWNLOAD}"
        )
    try:
        network = nets.FlexibleUNet(
            in_channels=in_channels, out_channels=num_classes, backbone=arch, pretrained=pretrained,
            spatial_dims=spatial_dims, **kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - a download fails in many ways; all get the same advice
        if not pretrained:
            raise
        raise RuntimeError(f"could not fetch MONAI's pretrained {arch} encoder weights ({exc}); {_NO_DOWNLOAD}") from exc
    network.register_forward_pre_hook(RequireDivisibleInput())
    return network


def _smp_recognizer(
    task: str, arch: str, spatial_dims: int, in_channels: int, num_classes: int, pretrained: bool, **kwargs: Any
) -> nn.Module:
    smp, reason = optional_module("segmentation_models_pytorch")
    if smp is None:
        raise RuntimeError(
            f"backend 'smp' needs segmentation_models_pytorch, which cannot be imported here ({reason}); "
            "use backend='monai' (the same ResNet architectures, no torchvision needed)"
        )
    if spatial_dims != 2:
        raise ValueError(f"backend 'smp' supports spatial_dims=2 only, got {spatial_dims}; use backend='monai'")
    weights = "imagenet" if pretrained else None
    try:
        if task == "segmentation":
            network = smp.Unet(
                encoder_name=arch, encoder_weights=weights, in_channels=in_channels, classes=num_classes, **kwargs
            )
            network.register_forward_pre_hook(RequireDivisibleInput())
            return network
        # smp's classification head (pooling, dropout, linear) sits on its UNet; only encoder and head are kept
        aux_params = {"classes": num_classes, **kwargs.pop("aux_params", {})}
        unet = smp.Unet(
            encoder_name=arch, encoder_weights=weights, in_channels=in_channels, classes=1, aux_params=aux_params,
            **kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - a download fails in many ways; all get the same advice
        if not pretrained:
            raise
        raise RuntimeError(f"could not fetch the ImageNet weights of {arch} ({exc}); {_NO_DOWNLOAD}") from exc
    return _SmpClassifier(unet.encoder, unet.classification_head)


def build_recognizer(
    task: str,
    arch: str = "resnet18",
    spatial_dims: int = 2,
    in_channels: int = 1,
    num_classes: int = 2,
    backend: str = "monai",
    pretrained: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build VR: a classifier (logits ``(B, num_classes)``) or a segmenter (logits ``(B, num_classes, *spatial)``).

    Args:
        task: ``"classification"`` (MONAI ``ResNet``) or ``"segmentation"`` (a UNet with a ResNet encoder:
            MONAI ``FlexibleUNet``). Segmenters need every spatial size divisible by 32 (five stride-2 stages);
            other sizes fail at the first forward with a ``ValueError`` saying so.
        arch: one of :data:`RECOGNIZER_ARCHS`.
        spatial_dims: 2 or 3 (the smp back end is 2D only).
        in_channels, num_classes: image channels and classes (for segmentation, the output channels).
        backend: ``"monai"`` (default; no torchvision needed) or ``"smp"`` (segmentation-models-pytorch, where it
            imports; otherwise a ``RuntimeError`` names the import failure and suggests ``"monai"``).
        pretrained: off by default. Weights would have to be downloaded; where the back end has none for the
            requested configuration, a ``ValueError`` says so, and a failed download a ``RuntimeError``: load a
            trained checkpoint instead.
        kwargs: passed to the network. For small 2D classification images, MONAI's ``conv1_t_stride=1`` (its
            default), ``no_max_pool=True`` and ``widen_factor`` are the useful ones (the demo bundle uses
            ``widen_factor=0.25, no_max_pool=True``).
    """
    _check("task", task, RECOGNIZER_TASKS)
    _check("arch", arch, RECOGNIZER_ARCHS)
    _check("backend", backend, RECOGNIZER_BACKENDS)
    _check("spatial_dims", spatial_dims, (2, 3))
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    build = _monai_recognizer if backend == "monai" else _smp_recognizer
    return build(task, arch, spatial_dims, in_channels, num_classes, bool(pretrained), **kwargs)
