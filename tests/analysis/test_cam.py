"""Class activation maps through MONAI's CAM classes, on a model whose evidence is known to lie in one square."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_gradprom.analysis.cam import class_activation_maps, default_target_layer, plot_cam_grid


class SquareDetector(nn.Module):
    """Feature = the image (1 x 1 conv, weight 1), global average pooling, fc: class 1 score = mean brightness.
    Both CAM and Grad-CAM of class 1 are then proportional to the image itself."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 1, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.fc.weight.copy_(torch.tensor([[-1.0], [1.0]]))

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _squares(n: int = 3, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.zeros(n, 1, size, size)
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        y, x = 2 + 3 * i, 1 + 2 * i
        images[i, :, y : y + 5, x : x + 5] = 0.8
        masks[i, :, y : y + 5, x : x + 5] = 1
    return images, masks


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "cam"])
def test_cam_mass_lies_on_the_evidence(method, tmp_path):
    model = SquareDetector()
    images, masks = _squares()
    cams = class_activation_maps(model, images, "features", class_idx=1, method=method)
    assert cams.shape == images.shape and float(cams.min()) >= 0 and float(cams.max()) <= 1
    inside = (cams * masks).flatten(1).sum(1) / cams.flatten(1).sum(1)
    assert inside.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    # per-image classes (a tensor) give the same maps as one class for all
    per_image = class_activation_maps(model, images, "features", class_idx=torch.tensor([1, 1, 1]), method=method)
    assert torch.allclose(per_image, cams)
    payload = plot_cam_grid({"input": images}, {"input": cams}, tmp_path / "cam.png",
                            predictions={"input": model(images)}, labels=torch.ones(3, dtype=torch.long),
                            contours=masks)
    assert payload["cam_mass_inside_mask_mean"]["input"] == pytest.approx(1.0, abs=1e-6)
    assert (tmp_path / "cam.png").stat().st_size > 1000


def test_cam_keeps_requires_grad_flags_and_names_bad_arguments():
    model = SquareDetector()
    model.fc.weight.requires_grad_(False)
    images, _ = _squares(1)
    class_activation_maps(model, images, "features", class_idx=1)
    assert model.features.weight.requires_grad and not model.fc.weight.requires_grad
    with pytest.raises(ValueError, match="unknown CAM method 'lime'"):
        class_activation_maps(model, images, "features", method="lime")
    with pytest.raises(KeyError, match="target layer 'layer9'"):
        class_activation_maps(model, images, "layer9")


def test_default_target_layer():
    from monai.networks.nets import ResNet

    resnet = ResNet("basic", [1, 1, 1, 1], [1, 1, 1, 1], spatial_dims=2, n_input_channels=1, num_classes=2,
                    widen_factor=0.25)
    assert default_target_layer(resnet) == "layer4"
    assert default_target_layer(SquareDetector()) == "features"
    with pytest.raises(ValueError, match="no convolution"):
        default_target_layer(nn.Linear(2, 2))
