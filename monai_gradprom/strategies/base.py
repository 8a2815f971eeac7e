"""The strategy interface: which gradients reach which parameters in one training step.

A strategy never runs a forward pass and never steps an optimizer. The trainer does the forward passes (IP,
then VR on whatever :meth:`Strategy.vr_input` returns) and hands the losses over in a :class:`StepContext`.
The strategy then

1. :meth:`Strategy.compute` runs the backward passes it needs and returns :class:`GradientTerms` (gradients
   as plain tensor lists, so that micro-batches can be summed and ranks averaged *before* any decision), and
2. :meth:`Strategy.apply` combines the (accumulated, reduced) terms, writes ``param.grad`` and returns the
   statistics to log (0-dim tensors on the device; nothing here synchronises with the host).

The trainer calls these two methods and never branches on the strategy's name (LibMTL's ``weighting/``
is the model: one method, one class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from monai_gradprom.gradients import assign_grads, grads_of

__all__ = ["StepContext", "GradientTerms", "Strategy"]


def _identity(loss: torch.Tensor) -> torch.Tensor:
    return loss


@dataclass
class StepContext:
    """What one training step hands to a strategy.

    ``vr_losses`` maps a recognition task (the batch key it is supervised by, e.g. ``"label"`` or ``"seg"``) to
    its loss, computed on VR's prediction for :meth:`Strategy.vr_input`. ``vr_params`` holds the *trainable*
    parameters of each task's VR (empty lists when VR is frozen). ``scale`` is the AMP loss scaler's
    ``scale`` (identity without one): every loss goes through it before a backward pass.
    """

    ip_params: list[torch.nn.Parameter]
    loss_ip: torch.Tensor
    lam: float
    vr_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    vr_params: dict[str, list[torch.nn.Parameter]] = field(default_factory=dict)
    transformer_params: list[torch.nn.Parameter] = field(default_factory=list)
    enhanced: torch.Tensor | None = None
    scale: Callable[[torch.Tensor], torch.Tensor] = _identity


@dataclass
class GradientTerms:
    """Gradients of one step, kept apart until :meth:`Strategy.apply` combines them.

    ``ip``: gradient reaching IP's parameters from the strategy's main objective; ``ip_aux[task]``: the
    recognition gradient w.r.t. IP's parameters (only strategies that gate it keep it apart);
    ``vr[task]``: gradients of that task's VR parameters; ``transformer``: gradients of T's parameters.
    """

    ip: list[torch.Tensor] = field(default_factory=list)
    ip_aux: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    vr: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    transformer: list[torch.Tensor] = field(default_factory=list)

    def lists(self) -> list[list[torch.Tensor]]:
        """Every gradient list, in a fixed order (for accumulation and all-reduce)."""
        out = [self.ip]
        out += [self.ip_aux[k] for k in sorted(self.ip_aux)]
        out += [self.vr[k] for k in sorted(self.vr)]
        out.append(self.transformer)
        return out

    def add_(self, other: GradientTerms) -> GradientTerms:
        """Accumulate another micro-batch's terms into these (in place)."""
        for mine, theirs in zip(self.lists(), other.lists()):
            if len(mine) != len(theirs):
                raise ValueError("cannot accumulate gradient terms of different structure")
            if len(mine):
                torch._foreach_add_(mine, theirs)
        return self

    def div_(self, value: float) -> GradientTerms:
        for grads in self.lists():
            if len(grads):
                torch._foreach_div_(grads, value)
        return self


class Strategy:
    """Base class of training strategies. Subclasses set the class attributes and implement ``compute``.

    Attributes:
        name: the string that selects the strategy in configs.
        uses_vr: whether the step needs VR's forward pass at all (``plain`` does not).
        trains_vr: whether VR's parameters receive gradients and its optimizer steps (VR runs in train mode).
        needs_transformer: whether the RA transformer T sits between IP and VR.
        reports_gate: whether ``apply`` returns the ``cos`` and ``gate`` statistics.
    """

    name: str = ""
    uses_vr: bool = True
    trains_vr: bool = False
    needs_transformer: bool = False
    reports_gate: bool = False

    def __init__(self, lam: float = 1e-4, gate: str = "hard") -> None:
        if not isinstance(lam, (int, float)) or isinstance(lam, bool) or lam < 0 or lam != lam:
            raise ValueError(f"lam must be a non-negative number, got {lam!r}")
        self.lam = float(lam)
        self.gate = gate

    @property
    def stateful(self) -> bool:
        """Whether the strategy carries state from step to step that a checkpoint must hold (then it has
        ``state_dict`` / ``load_state_dict`` and the trainer saves it under ``"strategy"``)."""
        return callable(getattr(self, "state_dict", None))

    # -- forward wiring -------------------------------------------------------------------------------------
    def vr_input(self, enhanced: torch.Tensor, transformer: torch.nn.Module | None = None) -> torch.Tensor:
        """What VR sees: by default IP's output as it is, so the recognition loss reaches IP."""
        return enhanced

    # -- backward -------------------------------------------------------------------------------------------
    def compute(self, ctx: StepContext) -> GradientTerms:
        raise NotImplementedError

    def apply(self, terms: GradientTerms, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Write the gradients into ``.grad``; the default adds nothing to IP's gradient."""
        self._assign_common(terms, ctx)
        return {}

    # -- helpers shared by the strategies --------------------------------------------------------------------
    @staticmethod
    def _assign_common(terms: GradientTerms, ctx: StepContext) -> None:
        assign_grads(ctx.ip_params, terms.ip)
        for task, grads in terms.vr.items():
            assign_grads(ctx.vr_params[task], grads)
        if terms.transformer:
            assign_grads(ctx.transformer_params, terms.transformer)

    @staticmethod
    def _total_vr_loss(ctx: StepContext) -> torch.Tensor:
        if not ctx.vr_losses:
            raise ValueError("this strategy needs at least one recognition loss, got none")
        return torch.stack([loss.float() for loss in ctx.vr_losses.values()]).sum()

    @staticmethod
    def _split(grads: list[torch.Tensor], sizes: list[int]) -> list[list[torch.Tensor]]:
        out, start = [], 0
        for size in sizes:
            out.append(grads[start : start + size])
            start += size
        return out

    def _joint_backward(self, ctx: StepContext, objective: torch.Tensor, vr_tasks: list[str]) -> GradientTerms:
        """One backward of ``objective`` over IP's parameters and the given tasks' VR parameters."""
        groups = [ctx.ip_params] + [ctx.vr_params.get(task, []) for task in vr_tasks]
        flat = [p for group in groups for p in group]
        grads = self._split(grads_of(ctx.scale(objective), flat), [len(g) for g in groups])
        terms = GradientTerms(ip=grads[0])
        for task, task_grads in zip(vr_tasks, grads[1:]):
            if task_grads:
                terms.vr[task] = task_grads
        return terms

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lam={self.lam}, gate={self.gate!r})"
