"""build_recognizer: output shapes for every arch and task, clear errors, and the optional smp back end."""

from __future__ import annotations

import copy
import io
import types

import pytest
import torch
from monai.networks.nets import FlexibleUNet

import monai_gradprom.networks.recognizers as recognizers
from monai_gradprom.networks import RECOGNIZER_ARCHS, build_recognizer
from monai_gradprom.utils import optional_module


def _infer(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x)


@pytest.mark.parametrize("arch", RECOGNIZER_ARCHS)
def test_classifier_logits_shape(arch):
    net = build_recognizer("classification", arch, in_channels=3, num_classes=5)
    assert _infer(net, torch.rand(2, 3, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize("arch", RECOGNIZER_ARCHS)
def test_segmenter_logits_shape(arch):
    net = build_recognizer("segmentation", arch, in_channels=1, num_classes=3)
    assert isinstance(net, FlexibleUNet)
    assert _infer(net, torch.rand(1, 1, 32, 64)).shape == (1, 3, 32, 64)


def test_3d_classifier_and_segmenter():
    clf = build_recognizer("classification", "resnet18", spatial_dims=3, num_classes=4)
    assert _infer(clf, torch.rand(2, 1, 16, 16, 16)).shape == (2, 4)
    seg = build_recognizer("segmentation", "resnet18", spatial_dims=3, num_classes=2)
    assert _infer(seg, torch.rand(1, 1, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


def test_classifier_trains_end_to_end_with_small_image_options():
    """The demo's settings (quarter width, no max pool) on a 32 x 32 batch: the loss gradient reaches the stem."""
    net = build_recognizer("classification", widen_factor=0.25, no_max_pool=True)
    loss = torch.nn.functional.cross_entropy(net(torch.rand(4, 1, 32, 32)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert net.conv1.weight.grad.abs().sum() > 0


def test_segmenter_keeps_flexible_unet_state_dict_and_survives_copy_and_pickle():
    net = build_recognizer("segmentation", "resnet18", num_classes=2)
    plain = FlexibleUNet(in_channels=1, out_channels=2, backbone="resnet18", spatial_dims=2)
    assert net.state_dict().keys() == plain.state_dict().keys()
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(net), buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    with pytest.raises(ValueError, match="divisible by 32"):
        restored(torch.rand(2, 1, 48, 64))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"task": "classification", "arch": "resnet7"}, "'resnet7'; choose one of ['resnet10', 'resnet18'"),
        ({"task": "detection"}, "'detection'; choose one of ['classification', 'segmentation']"),
        ({"task": "segmentation", "backend": "timm"}, "'timm'; choose one of ['monai', 'smp']"),
        ({"task": "classification", "spatial_dims": 1}, "spatial_dims 1"),
        ({"task": "classification", "num_classes": 0}, "num_classes"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        build_recognizer(**kwargs)
    assert fragment in str(info.value)


def test_segmenter_explains_the_divisible_by_32_requirement():
    net = build_recognizer("segmentation")
    with pytest.raises(ValueError, match=r"divisible by 32, got \(40, 64\)"):
        net(torch.rand(2, 1, 40, 64))


def test_pretrained_explains_why_and_what_to_do_instead(monkeypatch):
    with pytest.raises(ValueError, match="checkpoint"):
        build_recognizer("classification", pretrained=True)
    with pytest.raises(ValueError, match="spatial_dims=3 and in_channels=1"):
        build_recognizer("segmentation", pretrained=True)

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("monai.networks.nets.resnet._load_state_dict", offline)
    with pytest.raises(RuntimeError, match="could not fetch.*no network.*checkpoint"):
        build_recognizer("segmentation", spatial_dims=3, pretrained=True)


def test_smp_backend_works_or_says_why_not():
    smp, reason = optional_module("segmentation_models_pytorch")
    if smp is None:
        with pytest.raises(RuntimeError, match="backend='monai'") as info:
            build_recognizer("segmentation", backend="smp")
        assert reason in str(info.value)
    else:
        assert _infer(build_recognizer("segmentation", backend="smp", num_classes=3),
                      torch.rand(1, 1, 64, 64)).shape == (1, 3, 64, 64)
        assert _infer(build_recognizer("classification", backend="smp", num_classes=3),
                      torch.rand(2, 1, 32, 32)).shape == (2, 3)


class _FakeUnet(torch.nn.Module):
    """Stands in for smp.Unet where torchvision is broken, to check how the factory calls it."""

    calls: list[dict] = []

    def __init__(self, encoder_name, encoder_weights, in_channels, classes, aux_params=None, **kwargs):
        super().__init__()
        self.calls.append({"encoder_name": encoder_name, "encoder_weights": encoder_weights, "aux_params": aux_params})
        self.conv = torch.nn.Conv2d(in_channels, 4, 3, padding=1)
        self.encoder = lambda x: [x, self.conv(x)]
        self.segmentation = torch.nn.Conv2d(4, classes, 1)
        if aux_params is not None:
            self.classification_head = torch.nn.Sequential(
                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, aux_params["classes"])
            )

    def forward(self, x):
        return self.segmentation(self.encoder(x)[-1])


def test_smp_wiring_with_a_stand_in_module(monkeypatch):
    _FakeUnet.calls.clear()
    monkeypatch.setattr(recognizers, "optional_module", lambda name: (types.SimpleNamespace(Unet=_FakeUnet), None))
    seg = build_recognizer("segmentation", "resnet34", backend="smp", num_classes=3)
    assert seg(torch.rand(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="divisible by 32"):
        seg(torch.rand(1, 1, 33, 32))
    clf = build_recognizer("classification", "resnet18", backend="smp", num_classes=5, pretrained=True)
    assert clf(torch.rand(2, 1, 24, 24)).shape == (2, 5)
    assert _FakeUnet.calls == [
        {"encoder_name": "resnet34", "encoder_weights": None, "aux_params": None},
        {"encoder_name": "resnet18", "encoder_weights": "imagenet", "aux_params": {"classes": 5}},
    ]
    with pytest.raises(ValueError, match="spatial_dims=2 only"):
        build_recognizer("segmentation", backend="smp", spatial_dims=3)
