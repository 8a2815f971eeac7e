"""Strategies without gradient gating: plain, joint, frozen (RA processing) and transformer (RA with T)."""

from __future__ import annotations

import torch

from monai_gradprom.gradients import grads_of
from monai_gradprom.strategies.base import GradientTerms, StepContext, Strategy

__all__ = ["PlainStrategy", "JointStrategy", "FrozenStrategy", "TransformerStrategy"]


class PlainStrategy(Strategy):
    """IP learns its own loss only (lam = 0 baseline of both papers); VR is not used in training."""

    name = "plain"
    uses_vr = False

    def compute(self, ctx: StepContext) -> GradientTerms:
        return GradientTerms(ip=grads_of(ctx.scale(ctx.loss_ip), ctx.ip_params))


class JointStrategy(Strategy):
    """GradProm paper's "joint training" (its Eq. 6): IP learns L_IP + lam L_VR, VR learns its own L_VR.

    One backward of L_IP + lam L_VR over IP's and VR's parameters gives VR ``lam * grad L_VR`` (L_IP does not
    depend on VR), so VR's gradients are divided by lam afterwards: exact, and no second pass. With lam = 0 the
    objective carries no VR gradient; VR's own is then taken from L_VR over VR's parameters alone (that backward
    stops at VR's input, it never runs through IP).
    """

    name = "joint"
    trains_vr = True

    def compute(self, ctx: StepContext) -> GradientTerms:
        vr_loss = self._total_vr_loss(ctx)
        tasks = list(ctx.vr_losses)
        if self.lam > 0:
            terms = self._joint_backward(ctx, ctx.loss_ip + self.lam * vr_loss, tasks)
            for grads in terms.vr.values():
                torch._foreach_div_(grads, self.lam)
            return terms
        terms = GradientTerms(ip=grads_of(ctx.scale(ctx.loss_ip), ctx.ip_params, retain_graph=True))
        groups = [ctx.vr_params.get(task, []) for task in tasks]
        flat = [p for group in groups for p in group]
        if flat:
            grads = self._split(grads_of(ctx.scale(vr_loss), flat), [len(g) for g in groups])
            terms.vr = {task: g for task, g in zip(tasks, grads) if g}
        return terms


class FrozenStrategy(Strategy):
    """IP learns L_IP + lam L_VR through a fixed, pretrained VR (RA processing / ESTR, "frozen params")."""

    name = "frozen"

    def compute(self, ctx: StepContext) -> GradientTerms:
        objective = ctx.loss_ip + self.lam * self._total_vr_loss(ctx)
        return self._joint_backward(ctx, objective, [])


class TransformerStrategy(Strategy):
    """RA processing "with transformer": IP learns L_IP only; a transformer T between IP and a fixed VR learns
    lam L_VR on IP's detached output, so recognition never pulls on IP."""

    name = "transformer"
    needs_transformer = True

    def vr_input(self, enhanced: torch.Tensor, transformer: torch.nn.Module | None = None) -> torch.Tensor:
        if transformer is None:
            raise ValueError("strategy 'transformer' needs a transformer network T (transformer_network=...)")
        return transformer(enhanced.detach())

    def compute(self, ctx: StepContext) -> GradientTerms:
        if not ctx.transformer_params:
            raise ValueError("strategy 'transformer' needs trainable transformer parameters, got none")
        terms = GradientTerms(ip=grads_of(ctx.scale(ctx.loss_ip), ctx.ip_params))
        terms.transformer = grads_of(ctx.scale(self.lam * self._total_vr_loss(ctx)), ctx.transformer_params)
        return terms
