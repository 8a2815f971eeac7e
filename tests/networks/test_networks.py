"""Shapes, ranges, identity at initialisation, defaults and errors of the three networks."""

from __future__ import annotations

import pytest
import torch

from monai_gradprom.networks import RATransformer, SRResidualBlock, SRResNet, build_recognizer
from monai_gradprom.utils import optional_module


@pytest.mark.parametrize("upscale", [1, 2, 4])
def test_srresnet_upscales_and_stays_in_unit_range(upscale):
    net = SRResNet(channels=8, num_blocks=1, upscale=upscale)
    x = torch.rand(2, 1, 12, 10)
    assert net(x).shape == (2, 1, 12 * upscale, 10 * upscale)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 1)
    wild = net(10 * torch.randn(2, 1, 12, 10))
    assert float(wild.min()) >= 0 and float(wild.max()) <= 1


def test_srresnet_starts_at_the_identity_and_sigmoid_option():
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(SRResNet(channels=8, num_blocks=1)(x), x)
    out = SRResNet(channels=8, num_blocks=1, output="sigmoid")(x)
    assert float(out.min()) > 0 and float(out.max()) < 1


def test_srresnet_paper_defaults_and_3d():
    net = SRResNet()
    assert sum(isinstance(m, SRResidualBlock) for m in net.modules()) == 16
    assert net.head[0].out_channels == 64
    assert SRResNet(spatial_dims=3, channels=4, num_blocks=1, upscale=2)(torch.rand(1, 1, 6, 6, 6)).shape == (1, 1, 12, 12, 12)


def test_srresnet_gradient_reaches_every_parameter():
    net = SRResNet(channels=8, num_blocks=2, output="sigmoid")
    net(torch.rand(2, 1, 8, 8)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("kwargs, message", [({"upscale": 3}, "upscale"), ({"spatial_dims": 4}, "spatial_dims"),
                                             ({"output": "tanh"}, "output")])
def test_srresnet_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SRResNet(**kwargs)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_recognizer_factory_shapes(arch):
    clf = build_recognizer("classification", arch, in_channels=3, num_classes=7)
    assert clf(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    seg = build_recognizer("segmentation", arch, in_channels=1, num_classes=4)
    assert seg(torch.rand(1, 1, 64, 64)).shape == (1, 4, 64, 64)


def test_deep_recognizers_and_3d_build():
    assert build_recognizer("classification", "resnet50", num_classes=2)(torch.rand(1, 1, 32, 32)).shape == (1, 2)
    assert build_recognizer("classification", "resnet18", spatial_dims=3)(torch.rand(2, 1, 16, 16, 16)).shape == (2, 2)


def test_recognizer_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="'resnet7'"):
        build_recognizer("classification", "resnet7")
    with pytest.raises(ValueError, match="'detection'"):
        build_recognizer("detection")
    with pytest.raises(ValueError, match="divisible by 32"):
        build_recognizer("segmentation")(torch.rand(1, 1, 40, 40))
    with pytest.raises(ValueError, match="downloaded"):
        build_recognizer("classification", pretrained=True)


def test_smp_backend_works_or_says_why_not():
    smp, reason = optional_module("segmentation_models_pytorch")
    if smp is None:
        with pytest.raises(RuntimeError, match="backend='monai'"):
            build_recognizer("segmentation", backend="smp")
    else:
        net = build_recognizer("segmentation", backend="smp", num_classes=3)
        assert net(torch.rand(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_ra_transformer_starts_at_identity_and_handles_odd_sizes():
    t = RATransformer(channels=8, num_blocks=1)
    x = torch.rand(2, 1, 30, 33)
    torch.testing.assert_close(t(x), x)
    (t(x) * torch.rand_like(x)).sum().backward()
    assert t.tail.weight.grad.abs().sum() > 0
    assert RATransformer(spatial_dims=3, channels=4, num_blocks=1)(torch.rand(1, 1, 9, 8, 8)).shape == (1, 1, 9, 8, 8)
