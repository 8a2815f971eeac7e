"""Strategies that gate the recognition gradient against IP's own: GradProm and a PCGrad comparison.

Exact gating needs G_IP and G_VR (both w.r.t. IP's parameters) apart. The cost is one extra backward through
IP over joint training and no more: one ``autograd.grad`` of L_IP over IP's parameters (graph retained), then
one backward of each task's L_VR over IP's and that VR's parameters together.
"""

from __future__ import annotations

import torch

from monai_gradprom.gradients import GATES, gradprom_combine_, grads_of, pcgrad_combine_
from monai_gradprom.strategies.base import GradientTerms, StepContext, Strategy

__all__ = ["GradPromStrategy", "PCGradStrategy"]


class _SeparatedGradients(Strategy):
    """Computes G_IP and, per task, G_VR w.r.t. IP together with VR's own gradient of L_VR."""

    trains_vr = True
    reports_gate = True

    def compute(self, ctx: StepContext) -> GradientTerms:
        if not ctx.vr_losses:
            raise ValueError(f"strategy {self.name!r} needs at least one recognition loss, got none")
        n_ip = len(ctx.ip_params)
        terms = GradientTerms(ip=grads_of(ctx.scale(ctx.loss_ip), ctx.ip_params, retain_graph=True))
        tasks = list(ctx.vr_losses)
        for i, task in enumerate(tasks):
            vr_params = ctx.vr_params.get(task, [])
            grads = grads_of(
                ctx.scale(ctx.vr_losses[task]), ctx.ip_params + vr_params, retain_graph=i < len(tasks) - 1
            )
            terms.ip_aux[task] = grads[:n_ip]
            if vr_params:
                terms.vr[task] = grads[n_ip:]
        return terms

    @staticmethod
    def _stats(tasks: list[str], cosines: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        stats = {"cos": cosines.mean(), "gate": weights.mean()}
        if len(tasks) > 1:
            for i, task in enumerate(tasks):
                stats[f"cos_{task}"] = cosines[i]
                stats[f"gate_{task}"] = weights[i]
        return stats


class GradPromStrategy(_SeparatedGradients):
    """GradProm (Zhang & Cheng, TPAMI 2025): IP gets G_IP + lam w G_VR with w = 1[cos >= 0] (hard) or
    max(0, cos) (soft); VR is trained on its own loss. Each task's G_VR is gated on its own."""

    name = "gradprom"

    def __init__(self, lam: float = 1e-4, gate: str = "hard") -> None:
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        super().__init__(lam=lam, gate=gate)

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        tasks = list(terms.ip_aux)
        cosines, weights = gradprom_combine_(terms.ip, [terms.ip_aux[t] for t in tasks], self.lam, self.gate)
        self._assign_common(terms, ctx)
        return self._stats(tasks, cosines, weights)


class PCGradStrategy(_SeparatedGradients):
    """Gradient surgery for comparison: a conflicting G_VR loses only its component along G_IP. The logged
    ``gate`` is 1 when no projection was needed (the fraction of steps where G_VR passed unchanged)."""

    name = "pcgrad"

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        tasks = list(terms.ip_aux)
        cosines, conflicts = pcgrad_combine_(terms.ip, [terms.ip_aux[t] for t in tasks], self.lam)
        self._assign_common(terms, ctx)
        return self._stats(tasks, cosines, 1.0 - conflicts)
