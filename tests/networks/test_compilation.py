"""compiled(): in place, so checkpoints keep the plain network's keys; off means untouched."""

from __future__ import annotations

import torch._functorch.config

from monai_gradprom.networks import SRResNet, compiled


def test_disabled_returns_the_network_untouched():
    net = SRResNet(channels=4, num_blocks=1)
    assert compiled(net, False) is net and getattr(net, "_compiled_call_impl", None) is None


def test_enabled_compiles_in_place_keeping_state_dict_keys_and_allows_retained_graphs():
    net = SRResNet(channels=4, num_blocks=1)
    keys = list(net.state_dict())
    assert compiled(net) is net
    assert net._compiled_call_impl is not None  # the forward goes through torch.compile from now on
    assert list(net.state_dict()) == keys and not any(k.startswith("_orig_mod") for k in keys)
    assert torch._functorch.config.donated_buffer is False  # needed by the second backward of gating
    torch._functorch.config.donated_buffer = True  # leave the process as the other tests expect it
