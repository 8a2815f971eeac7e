"""torch.distributed helpers for the manual gradient path.

GradPromTrainer does not wrap its networks in DistributedDataParallel: its gradients come from
``autograd.grad``, which bypasses DDP's reducer, so the trainer averages every gradient itself
(:func:`monai_gradprom.gradients.all_reduce_mean_`). What DDP would otherwise do on top of that is here:
start every rank from rank 0's weights, and keep buffers (BatchNorm running statistics) identical.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["is_distributed", "rank", "world_size", "broadcast_parameters", "broadcast_buffers"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _broadcast(tensors: list[torch.Tensor], src: int) -> None:
    for tensor in tensors:
        dist.broadcast(tensor.data, src=src)


def broadcast_parameters(*modules: nn.Module | None, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (no-op outside a process group)."""
    if not is_distributed():
        return
    for module in modules:
        if module is not None:
            _broadcast(list(module.parameters()) + list(module.buffers()), src)


def broadcast_buffers(*modules: nn.Module | None, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm running statistics) to every rank, as DDP does per forward."""
    if not is_distributed():
        return
    for module in modules:
        if module is not None:
            _broadcast([b for b in module.buffers() if b.dtype.is_floating_point or b.numel()], src)
