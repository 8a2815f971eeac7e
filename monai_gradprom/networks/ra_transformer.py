"""The RA transformer T (Liu et al.): a ResNet image generator placed between IP and a fixed VR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Norm
from torch import nn

__all__ = ["RATransformer"]


def _norm(norm: str | None, spatial_dims: int, channels: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm == "instance":
        return Norm[Norm.INSTANCE, spatial_dims](channels, affine=True)
    if norm == "batch":
        return Norm[Norm.BATCH, spatial_dims](channels)
    raise ValueError(f"norm must be 'instance', 'batch' or None, got {norm!r}")


class _ResBlock(nn.Module):
    def __init__(self, spatial_dims: int, channels: int, norm: str | None) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        bias = norm is None  # a bias in front of a norm layer is cancelled by it: a parameter with no gradient
        self.body = nn.Sequential(
            conv(channels, channels, 3, padding=1, padding_mode="reflect", bias=bias),
            _norm(norm, spatial_dims, channels),
            nn.ReLU(inplace=True),
            conv(channels, channels, 3, padding=1, padding_mode="reflect", bias=bias),
            _norm(norm, spatial_dims, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RATransformer(nn.Module):
    """The transformer T of Liu et al.'s recognition-aware processing, placed between IP and a fixed VR.

    An image-to-image ResNet generator in the style of Johnson et al. (2016): 7x7 conv, two stride-2
    convolutions (each doubling the width), ``num_blocks`` residual blocks, two upsampling stages (interpolation
    + 3x3 conv, which avoids the checkerboard artefacts of transposed convolutions), 7x7 conv.

    It predicts a residual whose last convolution starts at zero, so T begins as the identity and inserting it
    does not disturb the pretrained recognizer at the start of training. Output is clamped to [0, 1]; inputs
    whose spatial size is not divisible by 4 are replicate-padded and cropped back, so T preserves any shape
    (5 pixels a side or more: smaller inputs leave the reflect-padded convolutions at 1/4 resolution no room).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels (output has the same).
        channels: width of the first stage (the residual blocks work at ``4 * channels``).
        num_blocks: residual blocks at 1/4 resolution (6 in Johnson et al. for small images).
        norm: ``"instance"`` (default, as in Johnson et al.'s style-transfer networks), ``"batch"`` or None.
    """

    def __init__(
        self, spatial_dims: int = 2, in_channels: int = 1, channels: int = 64, num_blocks: int = 6,
        norm: str | None = "instance",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if min(in_channels, channels) < 1 or num_blocks < 0:
            raise ValueError(
                f"in_channels and channels must be >= 1 and num_blocks >= 0, got {in_channels}, {channels} and "
                f"{num_blocks}"
            )
        conv = Conv[Conv.CONV, spatial_dims]
        bias = norm is None  # see _ResBlock
        self.spatial_dims = spatial_dims
        layers: list[nn.Module] = [
            conv(in_channels, channels, 7, padding=3, padding_mode="reflect", bias=bias),
            _norm(norm, spatial_dims, channels),
            nn.ReLU(inplace=True),
        ]
        width = channels
        for _ in range(2):
            layers += [conv(width, width * 2, 3, stride=2, padding=1, bias=bias), _norm(norm, spatial_dims, width * 2),
                       nn.ReLU(inplace=True)]
            width *= 2
        layers += [_ResBlock(spatial_dims, width, norm) for _ in range(num_blocks)]
        mode = "bilinear" if spatial_dims == 2 else "trilinear"
        for _ in range(2):
            layers += [nn.Upsample(scale_factor=2, mode=mode, align_corners=False),
                       conv(width, width // 2, 3, padding=1, bias=bias), _norm(norm, spatial_dims, width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        self.body = nn.Sequential(*layers)
        self.tail = conv(width, in_channels, 7, padding=3, padding_mode="reflect")
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]  # pad each spatial size up to a multiple of 4 (two stride-2 stages), crop back after
        pad: list[int] = []
        for s in reversed(size):
            pad += [0, (-s) % 4]
        padded = F.pad(x, pad, mode="replicate") if any(pad) else x
        out = padded + self.tail(self.body(padded))
        crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in size)
        return out[crop].clamp(0.0, 1.0)
