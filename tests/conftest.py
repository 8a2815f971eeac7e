"""Shared test fixtures: tiny IP / VR networks and batches that make a training step cost milliseconds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

torch.set_num_threads(2)


class TinyIP(nn.Module):
    """A residual 3x3 conv denoiser with output in [0, 1]."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, channels, 3, padding=1)

    def forward(self, x):
        return (x + self.conv2(torch.tanh(self.conv1(x)))).clamp(0, 1)


class TinyClassifier(nn.Module):
    """Conv + BatchNorm + global pool + linear: BatchNorm lets tests see running-stat changes too."""

    def __init__(self, channels: int = 1, num_classes: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


class NoBNClassifier(nn.Module):
    """Conv + global pool + linear, no BatchNorm: micro-batches and ranks then give the same gradients as
    the whole batch, which accumulation and DDP tests rely on."""

    def __init__(self, channels: int = 1, num_classes: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class TinySegmenter(nn.Module):
    def __init__(self, channels: int = 1, num_classes: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, num_classes, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


def make_batches(n_batches: int = 3, batch_size: int = 4, size: int = 16, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        target = torch.rand(batch_size, 1, size, size, generator=g)
        image = (target + 0.2 * torch.randn(target.shape, generator=g)).clamp(0, 1)
        label = torch.randint(0, 2, (batch_size,), generator=g)
        seg = (target > 0.5).long()
        batches.append({"image": image, "target": target, "label": label, "seg": seg})
    return batches


@pytest.fixture
def batches():
    return make_batches()
