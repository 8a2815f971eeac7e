"""The RA transformer T: identity at initialisation, any input size, [0, 1] output, 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from monai_gradprom.networks import RATransformer


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (2, 1, 30, 33), (1, 2, 7, 5)])
def test_starts_at_the_identity_and_keeps_odd_sizes(shape):
    t = RATransformer(in_channels=shape[1], channels=8, num_blocks=1)
    x = torch.rand(shape)
    torch.testing.assert_close(t(x), x)


def test_3d_identity_and_odd_size():
    t = RATransformer(spatial_dims=3, channels=4, num_blocks=1)
    x = torch.rand(1, 1, 9, 8, 6)
    torch.testing.assert_close(t(x), x)


@pytest.mark.parametrize("norm", ["instance", "batch", None])
def test_trains_every_parameter_and_stays_in_unit_range(norm):
    torch.manual_seed(0)
    t = RATransformer(channels=4, num_blocks=1, norm=norm)
    x = torch.rand(2, 1, 13, 16)
    opt = torch.optim.SGD(t.parameters(), lr=1e-3)
    (t(x) * torch.randn_like(x)).sum().backward()
    assert t.tail.weight.grad.abs().sum() > 0  # the zero-initialised tail learns first ...
    opt.step()
    opt.zero_grad()
    (t(x) * torch.randn_like(x)).sum().backward()  # ... then the gradient reaches everything
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in t.parameters())
    with torch.no_grad():
        for p in t.parameters():
            p.normal_(0, 1)
        out = t(10 * torch.randn(2, 1, 13, 16))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [({"spatial_dims": 4}, "got 4"), ({"norm": "layer"}, "'layer'"), ({"num_blocks": -1}, "-1")],
)
def test_rejects_bad_arguments_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RATransformer(**kwargs)
