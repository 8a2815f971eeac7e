"""One factory for the recognition network VR: classifiers and segmenters with ResNet backbones.

The default back end is MONAI's own networks (``monai.networks.nets.ResNet`` and ``FlexibleUNet`` with a ResNet
encoder), which need no torchvision. segmentation-models-pytorch is an option where it can be imported (it
imports torchvision, which fails on machines whose torchvision wheel does not match torch).
"""

from __future__ import annotations

import torch
from monai.networks import nets
from torch import nn

from monai_gradprom.utils import optional_module

__all__ = ["build_recognizer", "RECOGNIZER_ARCHS", "RECOGNIZER_TASKS", "RECOGNIZER_BACKENDS"]

RECOGNIZER_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")
RECOGNIZER_TASKS = ("classification", "segmentation")
RECOGNIZER_BACKENDS = ("monai", "smp")


class _DivisibleInput(nn.Module):
    """Wraps a 5-level encoder-decoder with a clear error when the input size is not divisible by 32."""

    def __init__(self, network: nn.Module, divisor: int = 32) -> None:
        super().__init__()
        self.network = network
        self.divisor = divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = [s for s in x.shape[2:] if s % self.divisor]
        if bad:
            raise ValueError(
                f"segmentation recognizer needs spatial sizes divisible by {self.divisor}, got {tuple(x.shape[2:])}"
                " (pad or resize the images, e.g. with monai.transforms.DivisiblePadd)"
            )
        return self.network(x)


def _check(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")


def _monai_recognizer(task: str, arch: str, spatial_dims: int, in_channels: int, num_classes: int,
                      pretrained: bool, **kwargs) -> nn.Module:
    if task == "classification":
        if pretrained:
            raise ValueError(
                "pretrained MONAI ResNet weights must be downloaded, which is not possible here: "
                "load a trained recognizer checkpoint instead (vr_checkpoint / load_network_weights)"
            )
        factory = getattr(nets, arch)
        return factory(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs)
    network = nets.FlexibleUNet(
        in_channels=in_channels, out_channels=num_classes, backbone=arch, pretrained=pretrained,
        spatial_dims=spatial_dims, **kwargs,
    )
    return _DivisibleInput(network)


def _smp_recognizer(task: str, arch: str, spatial_dims: int, in_channels: int, num_classes: int,
                    pretrained: bool, **kwargs) -> nn.Module:
    smp, reason = optional_module("segmentation_models_pytorch")
    if smp is None:
        raise RuntimeError(
            f"backend 'smp' needs segmentation_models_pytorch, which cannot be imported here ({reason}); "
            "use backend='monai'"
        )
    if spatial_dims != 2:
        raise ValueError(f"backend 'smp' supports spatial_dims=2 only, got {spatial_dims}")
    weights = "imagenet" if pretrained else None
    if task == "segmentation":
        return _DivisibleInput(smp.Unet(encoder_name=arch, encoder_weights=weights, in_channels=in_channels,
                                        classes=num_classes, **kwargs))
    unet = smp.Unet(encoder_name=arch, encoder_weights=weights, in_channels=in_channels, classes=1,
                    aux_params={"classes": num_classes}, **kwargs)
    return _SmpClassifier(unet.encoder, unet.classification_head)


class _SmpClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)[-1])


def build_recognizer(
    task: str,
    arch: str = "resnet18",
    spatial_dims: int = 2,
    in_channels: int = 1,
    num_classes: int = 2,
    backend: str = "monai",
    pretrained: bool = False,
    **kwargs,
) -> nn.Module:
    """A classifier (logits ``(B, num_classes)``) or a segmenter (logits ``(B, num_classes, *spatial)``).

    ``task``: ``"classification"`` (MONAI ResNet) or ``"segmentation"`` (UNet with a ResNet encoder: MONAI
    FlexibleUNet; input sizes divisible by 32). ``arch``: one of :data:`RECOGNIZER_ARCHS`. ``backend``:
    ``"monai"`` (default, no torchvision needed) or ``"smp"``. Extra keyword arguments go to the network.
    Pretrained weights are off by default; they cannot be downloaded on machines without internet.
    """
    _check("task", task, RECOGNIZER_TASKS)
    _check("arch", arch, RECOGNIZER_ARCHS)
    _check("backend", backend, RECOGNIZER_BACKENDS)
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    build = _monai_recognizer if backend == "monai" else _smp_recognizer
    return build(task, arch, spatial_dims, in_channels, num_classes, pretrained, **kwargs)
