"""Optional ``torch.compile`` of the networks, safe for the two-gradient path and for checkpoints."""

from __future__ import annotations

from torch import nn

__all__ = ["compiled"]


def compiled(network: nn.Module, enable: bool = True) -> nn.Module:
    """``network`` with its forward compiled by ``torch.compile`` in place (``nn.Module.compile``), or unchanged.

    In place, so that state-dict keys and checkpoints stay those of the plain network (``torch.compile(net)``
    would prefix them with ``_orig_mod.``). Gating backpropagates twice through one graph (``retain_graph``),
    which compiled backward functions refuse while they donate their saved buffers, so donation is switched
    off. On the demo's CPU sizes this makes a training step about a quarter faster (``docs/performance.md``);
    the first steps pay the compilation.
    """
    if not enable:
        return network
    import torch._functorch.config

    torch._functorch.config.donated_buffer = False
    network.compile()
    return network

