"""Cheaper GradProm gating: decide at IP's output, or decide every k steps and reuse the decision in between.

Exact GradProm needs G_IP and G_VR w.r.t. IP's parameters apart: one IP backward more than joint training
(``benchmarks/step_cost.py`` measures about 1.46x joint at the demo's size). Both modes here pay for one IP
backward per step, like joint training, by backpropagating through IP once with a *combined cotangent* at IP's
output ``y``: ``dL_IP/dy + lam * sum_t w_t dL_VR_t/dy``. Because the backward through IP is linear in the
cotangent, the resulting parameter gradient is exactly ``G_IP + lam * sum_t w_t G_VR_t`` for the chosen
weights; only how ``w_t`` is decided differs from exact GradProm:

- ``gradprom_image``: ``w_t`` from the cosine of ``dL_IP/dy`` and ``dL_VR_t/dy`` (image space) instead of the
  cosine in parameter space. The two cosines differ (IP's Jacobian does not preserve angles), so the decision
  can differ: ``audit=True`` also computes the exact gate each step and logs it as ``gate_exact`` /
  ``cos_exact``, so the agreement rate can be measured on a real run (``benchmarks/gating_modes.py``).
- ``gradprom_every`` (``every=k``): the exact decision every k-th optimizer step (same cost as ``gradprom``);
  the other steps reuse it at joint cost. Its step counter and last decision are saved in checkpoints
  (:meth:`state_dict`), so a resumed run decides on the same steps.

Under DDP the image-space cosine is computed from the all-reduced dot product and squared norms, i.e. over the
global batch, so every rank takes the same decision. With gradient accumulation the image-space decision is
taken per micro-batch (the cotangents of different micro-batches live on different outputs ``y``).
"""

from __future__ import annotations

from typing import Any

import torch

from monai_gradprom.gradients import GATES, all_reduce_mean_, cosine, gate_weight, gradprom_combine_, grads_of
from monai_gradprom.strategies.base import GradientTerms, StepContext
from monai_gradprom.strategies.gated import GradPromStrategy, _SeparatedGradients

__all__ = ["ImageSpaceGradPromStrategy", "PeriodicGradPromStrategy"]


def _output_cotangents(
    ctx: StepContext,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, list[torch.Tensor]]]:
    """``dL_IP/dy``, ``dL_VR_t/dy`` per task, and each VR's own gradient of ``L_VR_t`` (one VR backward each)."""
    y = ctx.enhanced
    if y is None or not y.requires_grad:
        raise ValueError("output-space gating needs IP's output with its graph (StepContext.enhanced)")
    if not ctx.vr_losses:
        raise ValueError("this strategy needs at least one recognition loss, got none")
    g_ip = torch.autograd.grad(ctx.scale(ctx.loss_ip), y, retain_graph=True)[0]
    g_vr: dict[str, torch.Tensor] = {}
    vr_grads: dict[str, list[torch.Tensor]] = {}
    for task, loss in ctx.vr_losses.items():
        params = ctx.vr_params.get(task, [])
        grads = grads_of(ctx.scale(loss), [y, *params], retain_graph=True)
        g_vr[task] = grads[0]
        if params:
            vr_grads[task] = grads[1:]
    return g_ip, g_vr, vr_grads


def _backward_through_ip(ctx: StepContext, cotangent: torch.Tensor) -> list[torch.Tensor]:
    """The one backward through IP: ``J_IP^T cotangent`` for every IP parameter (zeros where unreached)."""
    grads = torch.autograd.grad(ctx.enhanced, ctx.ip_params, grad_outputs=cotangent, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(ctx.ip_params, grads)]


def _combined_cotangent(g_ip: torch.Tensor, g_vr: dict[str, torch.Tensor], weights: torch.Tensor, lam: float):
    combined = g_ip.clone()
    for weight, grad in zip(weights.to(g_ip.dtype), g_vr.values()):
        combined.add_(grad * weight, alpha=lam)
    return combined


def _exact_gate(ctx: StepContext, gate: str) -> dict[str, torch.Tensor]:
    """The exact (parameter-space) decision, for auditing a cheaper mode: two extra IP backwards."""
    g_ip = grads_of(ctx.scale(ctx.loss_ip), ctx.ip_params, retain_graph=True)
    all_reduce_mean_(g_ip)
    cosines = []
    for loss in ctx.vr_losses.values():
        g_vr = grads_of(ctx.scale(loss), ctx.ip_params, retain_graph=True)
        all_reduce_mean_(g_vr)
        cosines.append(cosine(g_ip, g_vr))
    cos = torch.stack(cosines)
    return {"cos_exact": cos.mean(), "gate_exact": gate_weight(cos, gate).mean()}


class _AuditedStats:
    """Statistics of the micro-batches of one optimizer step, averaged when the step is applied."""

    def __init__(self) -> None:
        self._pending: list[dict[str, torch.Tensor]] = []

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        self._pending.append(stats)

    def pop(self) -> dict[str, torch.Tensor]:
        pending, self._pending = self._pending, []
        if not pending:
            return {}
        return {key: torch.stack([s[key] for s in pending]).mean() for key in pending[0]}


class ImageSpaceGradPromStrategy(GradPromStrategy):
    """GradProm gated by the cosine at IP's output (joint training's cost); see the module docstring."""

    name = "gradprom_image"

    def __init__(self, lam: float = 1e-4, gate: str = "hard", audit: bool = False) -> None:
        super().__init__(lam=lam, gate=gate)
        self.audit = bool(audit)
        self._stats_of_step = _AuditedStats()

    def compute(self, ctx: StepContext) -> GradientTerms:
        g_ip, g_vr, vr_grads = _output_cotangents(ctx)
        parts = []  # dot, |a|^2, |b|^2 per task, summed over ranks before the cosine
        for grad in g_vr.values():
            a, b = g_ip.float(), grad.float()
            parts.append(torch.stack([(a * b).sum(), (a * a).sum(), (b * b).sum()]))
        parts_list = [torch.stack(parts)]
        all_reduce_mean_(parts_list)
        dots, norm_a, norm_b = parts_list[0].unbind(1)
        denominator = (norm_a * norm_b).sqrt()
        cosines = torch.where(denominator > 0, dots / denominator.clamp_min(1e-30), torch.zeros_like(dots))
        weights = gate_weight(cosines, self.gate)
        stats = self._stats(list(g_vr), cosines, weights)
        if self.audit:
            stats.update(_exact_gate(ctx, self.gate))
        self._stats_of_step.add(stats)
        cotangent = _combined_cotangent(g_ip, g_vr, weights, self.lam)
        return GradientTerms(ip=_backward_through_ip(ctx, cotangent), vr=vr_grads)

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        self._assign_common(terms, ctx)
        return self._stats_of_step.pop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lam={self.lam}, gate={self.gate!r}, audit={self.audit})"


class PeriodicGradPromStrategy(_SeparatedGradients):
    """Exact GradProm every ``every`` optimizer steps, the last decision reused in between (joint's cost)."""

    name = "gradprom_every"

    def __init__(self, lam: float = 1e-4, gate: str = "hard", every: int = 4, audit: bool = False) -> None:
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        super().__init__(lam=lam, gate=gate)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every, self.audit = every, bool(audit)
        self._steps = 0
        self._weights: torch.Tensor | None = None
        self._stats_of_step = _AuditedStats()

    def _deciding(self) -> bool:
        return self._weights is None or self._steps % self.every == 0

    def compute(self, ctx: StepContext) -> GradientTerms:
        if self._deciding():
            return super().compute(ctx)
        g_ip, g_vr, vr_grads = _output_cotangents(ctx)
        if self.audit:
            self._stats_of_step.add(_exact_gate(ctx, self.gate))
        weights = self._weights.to(g_ip.device)
        cotangent = _combined_cotangent(g_ip, g_vr, weights, self.lam)
        return GradientTerms(ip=_backward_through_ip(ctx, cotangent), vr=vr_grads)

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        tasks = list(ctx.vr_losses)
        if terms.ip_aux:  # a deciding step: exact GradProm
            cosines, weights = gradprom_combine_(terms.ip, [terms.ip_aux[t] for t in tasks], self.lam, self.gate)
            self._weights = weights.detach().clone()
            stats = self._stats(tasks, cosines, weights)
            if self.audit:  # the exact decision is the decision
                stats.update(cos_exact=stats["cos"], gate_exact=stats["gate"])
        else:
            stats = {"gate": self._weights.mean(), **self._stats_of_step.pop()}
        self._assign_common(terms, ctx)
        self._steps += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Step counter and last decision: a resumed run decides on the same steps with the same weights."""
        return {"steps": self._steps, "weights": None if self._weights is None else self._weights.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._steps = int(state["steps"])
        self._weights = None if state["weights"] is None else torch.as_tensor(state["weights"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lam={self.lam}, gate={self.gate!r}, every={self.every}, audit={self.audit})"
