"""Strategies that gate the recognition gradient against IP's own: GradProm and a PCGrad comparison.

Exact gating needs G_IP and G_VR (both w.r.t. IP's parameters) apart. The cost is one extra backward through
IP over joint training and no more: one ``autograd.grad`` of L_IP over IP's parameters (graph retained), then
one backward of each task's L_VR over IP's and that VR's parameters together.
"""

from __future__ import annotations

from typing import Any

import torch

from monai_gradprom.gradients import GATES, cosine, gate_weight, gradprom_combine_, grads_of, pcgrad_combine_
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
    max(0, cos) (soft); VR is trained on its own loss. Each task's G_VR is gated on its own.

    ``cos_ema = b > 0`` decides the gate on a smoothed cosine instead of the minibatch one: per task,
    ``ema_t = b ema_{t-1} + (1 - b) cos_t`` (``ema_0 = 0``), bias-corrected as ``ema_t / (1 - b^t)`` (Adam's
    correction, so the first step uses the raw cosine), t counting optimizer steps. The minibatch cosine of a
    small batch can be mostly noise (its sign flipping step to step) while the cosine of the expected gradients,
    which Lemma 3.1 is about, changes slowly; the average tracks the latter. The update is tensor math on the
    device, so no host synchronisation is added; the correction's denominator ``1 - b^t`` is kept as a tensor
    too, so that a step whose cosine is not finite (an AMP overflow, skipped by the scaler) leaves the average
    as it was instead of poisoning it. The logged ``cos`` stays the minibatch cosine; ``cos_smoothed`` is the
    value the gate used. Its state is saved in checkpoints (:meth:`state_dict`), so a resumed run gates as the
    uninterrupted one. ``cos_ema = 0`` is the paper's gate.
    """

    name = "gradprom"

    def __init__(self, lam: float = 1e-4, gate: str = "hard", cos_ema: float = 0.0) -> None:
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        if isinstance(cos_ema, bool) or not isinstance(cos_ema, (int, float)) or not 0.0 <= cos_ema < 1.0:
            raise ValueError(f"cos_ema must be a number in [0, 1), got {cos_ema!r}")
        super().__init__(lam=lam, gate=gate)
        self.cos_ema = float(cos_ema)
        self._ema: torch.Tensor | None = None  # (K,) running average of the cosines
        self._ema_norm: torch.Tensor | None = None  # (K,) its bias-correction denominator, 1 - b^t

    @property
    def stateful(self) -> bool:
        return self.cos_ema > 0

    def smooth(self, cosines: torch.Tensor) -> torch.Tensor:
        """Update the moving average with this step's cosines ``(K,)``; return the bias-corrected average."""
        b = self.cos_ema
        cosines = cosines.detach().float()
        if self._ema is None or self._ema_norm is None:
            self._ema, self._ema_norm = torch.zeros_like(cosines), torch.zeros_like(cosines)
        if self._ema.shape != cosines.shape:
            raise ValueError(f"cosine average has {tuple(self._ema.shape)} tasks, this step {tuple(cosines.shape)}")
        ema, ema_norm = self._ema.to(cosines.device), self._ema_norm.to(cosines.device)
        finite = torch.isfinite(cosines)
        self._ema = torch.where(finite, ema * b + torch.where(finite, cosines, 0.0) * (1.0 - b), ema)
        self._ema_norm = torch.where(finite, ema_norm * b + (1.0 - b), ema_norm)
        # before any finite step the raw (non-finite) cosine passes through: the gate shuts
        return torch.where(self._ema_norm > 0, self._ema / self._ema_norm.clamp_min(1e-30), cosines)

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        tasks = list(terms.ip_aux)
        g_vrs = [terms.ip_aux[t] for t in tasks]
        if self.cos_ema == 0:
            cosines, weights = gradprom_combine_(terms.ip, g_vrs, self.lam, self.gate)
            self._assign_common(terms, ctx)
            return self._stats(tasks, cosines, weights)
        cosines = torch.stack([cosine(terms.ip, g_vr) for g_vr in g_vrs])  # all against the original G_IP
        smoothed = self.smooth(cosines)
        weights = gate_weight(smoothed, self.gate)
        for g_vr, weight in zip(g_vrs, weights):
            torch._foreach_mul_(list(g_vr), (self.lam * weight).to(terms.ip[0].dtype))
            torch._foreach_add_(terms.ip, list(g_vr))
        self._assign_common(terms, ctx)
        stats = self._stats(tasks, cosines, weights)
        stats["cos_smoothed"] = smoothed.mean()
        if len(tasks) > 1:
            stats.update({f"cos_smoothed_{task}": smoothed[i] for i, task in enumerate(tasks)})
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The cosine average and its bias-correction denominator, for an exact resume."""
        return {
            "cos_ema": self.cos_ema,
            "ema": None if self._ema is None else self._ema.detach().cpu(),
            "ema_norm": None if self._ema_norm is None else self._ema_norm.detach().cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if float(state.get("cos_ema", self.cos_ema)) != self.cos_ema:
            raise ValueError(
                f"checkpoint's gradprom state has cos_ema={state.get('cos_ema')}, this run cos_ema={self.cos_ema}"
            )
        self._ema = None if state["ema"] is None else torch.as_tensor(state["ema"]).float()
        self._ema_norm = None if state["ema_norm"] is None else torch.as_tensor(state["ema_norm"]).float()

    def __repr__(self) -> str:
        extra = f", cos_ema={self.cos_ema}" if self.cos_ema else ""
        return f"{type(self).__name__}(lam={self.lam}, gate={self.gate!r}{extra})"


class PCGradStrategy(_SeparatedGradients):
    """Gradient surgery for comparison: a conflicting G_VR loses only its component along G_IP. The logged
    ``gate`` is 1 when no projection was needed (the fraction of steps where G_VR passed unchanged)."""

    name = "pcgrad"

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        tasks = list(terms.ip_aux)
        cosines, conflicts = pcgrad_combine_(terms.ip, [terms.ip_aux[t] for t in tasks], self.lam)
        self._assign_common(terms, ctx)
        return self._stats(tasks, cosines, 1.0 - conflicts)
