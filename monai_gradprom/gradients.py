"""Pure tensor math for gradient gating (GradProm, PCGrad) over lists of per-parameter gradients.

Everything here stays on the gradients' device as tensors: no ``.item()``, no Python ``if`` on a tensor, so a
CUDA training step that uses these functions needs no host synchronisation. Reductions use ``torch._foreach``
ops (one kernel launch per op over all parameters instead of one per parameter) and accumulate in float32.

This module imports torch only: no Ignite, no MONAI engine, so it can be reused in any training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = [
    "GATES",
    "grads_of",
    "dot",
    "norm",
    "cosine",
    "gate_weight",
    "gradprom_combine",
    "gradprom_combine_",
    "pcgrad_combine_",
    "all_finite",
    "all_reduce_mean_",
    "assign_grads",
]

GATES = ("hard", "soft")

TensorList = Sequence[torch.Tensor]


def grads_of(
    loss: torch.Tensor, params: Sequence[torch.Tensor], retain_graph: bool = False
) -> list[torch.Tensor]:
    """``autograd.grad`` of ``loss`` w.r.t. ``params``, with zeros for parameters the loss does not reach."""
    grads = torch.autograd.grad(loss, list(params), retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def _sum_of(values: list[torch.Tensor], like: TensorList) -> torch.Tensor:
    if not values:
        device = like[0].device if len(like) else torch.device("cpu")
        return torch.zeros((), dtype=torch.float32, device=device)
    return torch.stack([v.float() for v in values]).sum()


def dot(a: TensorList, b: TensorList) -> torch.Tensor:
    """Inner product of two gradient lists seen as one flat vector (0-dim float32 tensor)."""
    if len(a) != len(b):
        raise ValueError(f"gradient lists differ in length: {len(a)} vs {len(b)}")
    products = torch._foreach_mul([x.float() for x in a], [y.float() for y in b]) if len(a) else []
    return _sum_of([p.sum() for p in products], a)


def norm(a: TensorList) -> torch.Tensor:
    """Euclidean norm of a gradient list seen as one flat vector (0-dim float32 tensor)."""
    if not len(a):
        return torch.zeros((), dtype=torch.float32)
    norms = torch._foreach_norm([x.float() for x in a], 2)
    return torch.linalg.vector_norm(torch.stack(norms))


def cosine(a: TensorList, b: TensorList) -> torch.Tensor:
    """Cosine similarity of two gradient lists; 0 when either has zero norm (no direction to agree with)."""
    denominator = norm(a) * norm(b)
    numerator = dot(a, b)
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.zeros_like(numerator))


def gate_weight(cos: torch.Tensor, gate: str = "hard") -> torch.Tensor:
    """GradProm's weight on the recognition gradient: hard 1[cos >= 0], soft max(0, cos)."""
    if gate == "hard":
        return (cos >= 0).to(cos.dtype)
    if gate == "soft":
        return cos.clamp(min=0)
    raise ValueError(f"gate must be one of {GATES}, got {gate!r}")


def _check_pairs(g_ip: TensorList, g_vr: TensorList) -> None:
    if len(g_ip) != len(g_vr):
        raise ValueError(f"g_ip and g_vr must have the same length, got {len(g_ip)} and {len(g_vr)}")
    for i, (x, y) in enumerate(zip(g_ip, g_vr)):
        if x.shape != y.shape:
            raise ValueError(f"g_ip[{i}] has shape {tuple(x.shape)} but g_vr[{i}] has shape {tuple(y.shape)}")


def gradprom_combine(
    g_ip: TensorList, g_vr: TensorList, lam: float, gate: str = "hard"
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """GradProm (Zhang & Cheng, Lemma 3.1): ``combined[i] = g_ip[i] + lam * weight * g_vr[i]``.

    ``weight`` is 1 when ``cos(g_ip, g_vr) >= 0`` and 0 otherwise (``gate="hard"``), or ``max(0, cos)``
    (``gate="soft"``). Both gradients must be taken w.r.t. the same (IP's) parameters. Returns new tensors
    ``(combined, cos, weight)``; ``cos`` and ``weight`` are 0-dim tensors on the gradients' device.
    """
    _check_pairs(g_ip, g_vr)
    cos = cosine(g_ip, g_vr)
    weight = gate_weight(cos, gate)
    scale = (lam * weight).to(g_ip[0].dtype) if len(g_ip) else weight
    combined = list(torch._foreach_add(list(g_ip), torch._foreach_mul(list(g_vr), scale))) if len(g_ip) else []
    return combined, cos, weight


def gradprom_combine_(
    g_ip: list[torch.Tensor], g_vrs: Sequence[TensorList], lam: float, gate: str = "hard"
) -> tuple[torch.Tensor, torch.Tensor]:
    """In-place multi-task GradProm: ``g_ip += lam * sum_k w_k g_vr_k``, each ``w_k`` gated against ``g_ip``.

    Every auxiliary gradient is compared with the *original* ``g_ip`` (the paper adds each one when it is
    aligned with the main task), so the order of tasks does not matter. ``g_vrs`` are consumed (scaled in
    place). Returns the cosines and weights stacked, shape ``(K,)``.
    """
    cosines, weights = [], []
    for g_vr in g_vrs:
        _check_pairs(g_ip, g_vr)
        cos = cosine(g_ip, g_vr)
        cosines.append(cos)
        weights.append(gate_weight(cos, gate))
    for g_vr, weight in zip(g_vrs, weights):
        torch._foreach_mul_(list(g_vr), (lam * weight).to(g_ip[0].dtype))
        torch._foreach_add_(g_ip, list(g_vr))
    return torch.stack(cosines), torch.stack(weights)


def pcgrad_combine_(
    g_ip: list[torch.Tensor], g_vrs: Sequence[TensorList], lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient surgery (Yu et al. 2020) as a comparison to GradProm: when ``cos(g_ip, g_vr) < 0`` remove from
    ``g_vr`` only its component along ``g_ip`` instead of dropping it; then ``g_ip += lam * g_vr'``.

    Only the auxiliary gradient is projected: the enhancement task stays primary, as in GradProm. Returns the
    cosines and the conflict indicators (1 where a projection happened), shape ``(K,)``.
    """
    cosines, conflicts, projected = [], [], []
    ip_sq = dot(g_ip, g_ip)
    safe_sq = torch.where(ip_sq > 0, ip_sq, torch.ones_like(ip_sq))
    for g_vr in g_vrs:
        _check_pairs(g_ip, g_vr)
        cos = cosine(g_ip, g_vr)
        conflict = (cos < 0).float()
        coefficient = conflict * torch.where(ip_sq > 0, dot(g_ip, g_vr) / safe_sq, torch.zeros_like(ip_sq))
        # g_vr' = g_vr - coefficient * g_ip (coefficient is 0 when there is no conflict)
        projected.append(torch._foreach_sub(list(g_vr), torch._foreach_mul(g_ip, coefficient.to(g_ip[0].dtype))))
        cosines.append(cos)
        conflicts.append(conflict)
    for g_vr in projected:
        torch._foreach_mul_(g_vr, lam)
        torch._foreach_add_(g_ip, g_vr)
    return torch.stack(cosines), torch.stack(conflicts)


def all_finite(*grad_lists: TensorList) -> torch.Tensor:
    """0-dim bool tensor: every element of every gradient is finite (computed on the device)."""
    flags = [torch.isfinite(torch.stack(torch._foreach_norm(list(g), 2))).all() for g in grad_lists if len(g)]
    if not flags:
        return torch.ones((), dtype=torch.bool)
    return torch.stack(flags).all()


def all_reduce_mean_(grads: TensorList, group: dist.ProcessGroup | None = None) -> None:
    """Average gradients across ranks in place (no-op when torch.distributed is not initialised).

    ``autograd.grad`` bypasses DDP's reducer, so gradients computed that way must be averaged by hand before a
    cosine is taken; otherwise each rank would gate on its own local gradients and the replicas would diverge.
    The tensors are flattened into one buffer so the reduction is a single collective.
    """
    if not (dist.is_available() and dist.is_initialized()) or not len(grads):
        return
    world = dist.get_world_size(group)
    if world == 1:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    flat.div_(world)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def assign_grads(params: Sequence[torch.Tensor], grads: TensorList, accumulate: bool = False) -> None:
    """Write gradients into ``param.grad`` (adding to what is there when ``accumulate``)."""
    for p, g in zip(params, grads):
        if accumulate and p.grad is not None:
            p.grad.add_(g)
        else:
            p.grad = g.detach() if g.requires_grad else g
