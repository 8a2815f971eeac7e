"""SRResNet: paper-size defaults, shapes for every upscale in 2D and 3D, [0, 1] output, identity start, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_gradprom.networks import SRResidualBlock, SRResNet


def _randomise(net: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 1)


@pytest.mark.parametrize("upscale", [1, 2, 4])
@pytest.mark.parametrize("output", ["clamp", "sigmoid"])
def test_2d_output_size_and_unit_range_for_wild_inputs(upscale, output):
    net = SRResNet(channels=8, num_blocks=1, upscale=upscale, output=output)
    _randomise(net)
    with torch.no_grad():
        out = net(10 * torch.randn(2, 1, 12, 10))
    assert out.shape == (2, 1, 12 * upscale, 10 * upscale)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("upscale", [1, 2, 4])
def test_3d_output_size(upscale):
    net = SRResNet(spatial_dims=3, channels=4, num_blocks=1, upscale=upscale).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 5, 4, 6)).shape == (1, 1, 5 * upscale, 4 * upscale, 6 * upscale)


@torch.no_grad()
def test_clamp_output_starts_at_the_upsampled_input():
    x = torch.rand(2, 1, 16, 12)
    torch.testing.assert_close(SRResNet(channels=8, num_blocks=1)(x), x)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(SRResNet(channels=8, num_blocks=1, upscale=2)(x), expected)
    sigmoid = SRResNet(channels=8, num_blocks=1, output="sigmoid")(x)
    assert float(sigmoid.min()) > 0 and float(sigmoid.max()) < 1


def test_paper_defaults_64_channels_16_blocks_batch_norm():
    net = SRResNet()
    blocks = [m for m in net.modules() if isinstance(m, SRResidualBlock)]
    assert len(blocks) == 16
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    assert all(c.out_channels == 64 for c in convs[:-1])
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    plain = SRResNet(channels=8, num_blocks=3, norm=None)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, SRResidualBlock) for m in plain.modules()) == 3


@torch.no_grad()
def test_out_channels_other_than_in_channels():
    net = SRResNet(in_channels=3, out_channels=1, channels=8, num_blocks=1, upscale=2)
    out = net(torch.rand(2, 3, 8, 8))
    assert out.shape == (2, 1, 16, 16) and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("output", ["clamp", "sigmoid"])
def test_gradient_reaches_every_parameter(output):
    """sigmoid: on the first backward; clamp: after the first step (its zero-initialised tail opens the path)."""
    torch.manual_seed(0)
    net = SRResNet(channels=8, num_blocks=2, upscale=2, output=output)
    x, target = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 16, 16)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    if output == "clamp":
        F.mse_loss(net(x), target).backward()
        assert net.tail.weight.grad.abs().sum() > 0
        opt.step()
        opt.zero_grad()
    F.mse_loss(net(x), target).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"upscale": 3}, "upscale must be 1, 2 or 4, got 3"),
        ({"spatial_dims": 1}, "spatial_dims must be 2 or 3, got 1"),
        ({"output": "tanh"}, "'tanh'"),
        ({"norm": "group"}, "'group'"),
        ({"channels": 0}, "channels"),
    ],
)
def test_rejects_bad_arguments_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SRResNet(**kwargs)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("upscale", [1, 2, 4])
@pytest.mark.parametrize("output", ["clamp", "sigmoid"])
@torch.no_grad()
def test_torchscript_matches_eager_and_survives_save_load(spatial_dims, upscale, output):
    """``torch.jit.script`` failed on the int ``scale_factor`` of the residual's interpolation (issue 13.5)."""
    import io

    torch.manual_seed(0)
    net = SRResNet(spatial_dims=spatial_dims, channels=4, num_blocks=1, upscale=upscale, output=output).eval()
    for p in net.parameters():  # a non-zero tail: the residual path is not the bare upsampled input
        p.normal_(0, 0.1)
    x = torch.rand(2, 1, *([6] * spatial_dims))
    scripted = torch.jit.script(net)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    expected = net(x)
    assert expected.shape[2:] == tuple(6 * upscale for _ in range(spatial_dims))
    torch.testing.assert_close(scripted(x), expected)
    torch.testing.assert_close(loaded(x), expected)
