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
    """IP and VR both learn L_IP + lam L_VR in one backward pass (GradProm paper's "joint training")."""

    name = "joint"
    trains_vr = True

    def compute(self, ctx: StepContext) -> GradientTerms:
        objective = ctx.loss_ip + self.lam * self._total_vr_loss(ctx)
        return self._joint_backward(ctx, objective, list(ctx.vr_losses))


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
