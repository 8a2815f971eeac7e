"""SRResNet (Ledig et al., 2017): the enhancement network IP of both papers, for denoising and super-resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import SubpixelUpsample
from monai.networks.layers.factories import Conv, Norm
from torch import nn

__all__ = ["SRResNet", "SRResidualBlock"]

_OUTPUTS = ("clamp", "sigmoid")


def _norm(norm: str | None, spatial_dims: int, channels: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm != "batch":
        raise ValueError(f"norm must be 'batch' or None, got {norm!r}")
    return Norm[Norm.BATCH, spatial_dims](channels)


class SRResidualBlock(nn.Module):
    """SRResNet's residual block: conv 3x3 - norm - PReLU - conv 3x3 - norm, plus the identity."""

    def __init__(self, spatial_dims: int, channels: int, norm: str | None = "batch") -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        bias = norm is None  # a bias in front of a norm layer is cancelled by it: a parameter with no gradient
        self.body = nn.Sequential(
            conv(channels, channels, 3, padding=1, bias=bias),
            _norm(norm, spatial_dims, channels),
            nn.PReLU(channels),
            conv(channels, channels, 3, padding=1, bias=bias),
            _norm(norm, spatial_dims, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """SRResNet (Ledig et al., 2017) with output in [0, 1]: the enhancement network IP.

    head conv 9x9 + PReLU; ``num_blocks`` residual blocks (conv 3x3 - norm - PReLU - conv 3x3 - norm, plus the
    identity); conv 3x3 - norm plus a long skip from the head; one sub-pixel convolution stage (MONAI
    ``SubpixelUpsample``, x2) + PReLU per factor of 2 of ``upscale``; tail conv 9x9.

    Args:
        spatial_dims: 2 or 3.
        in_channels / out_channels: image channels (``out_channels`` defaults to ``in_channels``).
        channels, num_blocks: width and depth; the defaults (64, 16) are the papers'.
        upscale: 1 (denoising), 2 or 4 (super-resolution).
        output: ``"clamp"`` (default) predicts a residual over the (bilinearly / trilinearly, align_corners=False)
            upsampled input and clamps to [0, 1]. Its tail convolution starts at zero, so an untrained network is
            exactly that upsampled input (enhancement starts from "do no harm", and denoising converges fast); the
            other parameters receive gradients from the first optimiser step on. Without a residual to add
            (``out_channels != in_channels``) it only clamps. ``"sigmoid"`` maps the tail through a sigmoid.
        norm: ``"batch"`` (SRResNet's BatchNorm) or None (no normalisation, e.g. for batch size 1).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: int = 64,
        num_blocks: int = 16,
        upscale: int = 1,
        output: str = "clamp",
        norm: str | None = "batch",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if upscale not in (1, 2, 4):
            raise ValueError(f"upscale must be 1, 2 or 4, got {upscale!r}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        out_channels = in_channels if out_channels is None else out_channels
        if min(in_channels, out_channels, channels) < 1 or num_blocks < 0:
            raise ValueError(
                "in_channels, out_channels and channels must be >= 1 and num_blocks >= 0, got "
                f"{in_channels}, {out_channels}, {channels} and {num_blocks}"
            )
        conv = Conv[Conv.CONV, spatial_dims]
        self.spatial_dims, self.upscale, self.output = spatial_dims, upscale, output
        self.head = nn.Sequential(conv(in_channels, channels, 9, padding=4), nn.PReLU(channels))
        self.blocks = nn.Sequential(*[SRResidualBlock(spatial_dims, channels, norm) for _ in range(num_blocks)])
        self.body_tail = nn.Sequential(
            conv(channels, channels, 3, padding=1, bias=norm is None), _norm(norm, spatial_dims, channels)
        )
        stages: list[nn.Module] = []
        for _ in range({1: 0, 2: 1, 4: 2}[upscale]):  # x2 sub-pixel stages, as in the paper
            stages += [SubpixelUpsample(spatial_dims, channels, channels, scale_factor=2), nn.PReLU(channels)]
        self.upsample = nn.Sequential(*stages)
        self.tail = conv(channels, out_channels, 9, padding=4)
        self.residual = output == "clamp" and out_channels == in_channels
        if self.residual:  # start at the (upsampled) identity
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        features = features + self.body_tail(self.blocks(features))
        out = self.tail(self.upsample(features))
        if self.output == "sigmoid":
            return torch.sigmoid(out)
        if self.residual:
            if self.upscale > 1:
                mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
                # a float factor: TorchScript's interpolate takes no int scale_factor (same values in eager)
                x = F.interpolate(x, scale_factor=float(self.upscale), mode=mode, align_corners=False)
            out = out + x
        return out.clamp(0.0, 1.0)
