"""How a recognition loss is wired onto IP's output: AMP autocast, frozen teachers, the per-task losses.

One home for what the trainer's iteration and the lam calibration must do identically (a calibrated lam is
only meaningful when it is measured on the very losses training computes). Both import this module; the
calibration never imports the trainer. The functions take the engine duck-typed (:class:`WiredEngine`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import nn

from monai_gradprom.strategies import Strategy

__all__ = ["WiredEngine", "mark_pretrained", "is_pretrained", "autocast", "make_teachers", "recognition_losses"]

_PRETRAINED_FLAG = "_monai_gradprom_pretrained"


class WiredEngine(Protocol):
    """The attributes of a :class:`~monai_gradprom.engines.GradPromTrainer` that the wiring reads."""

    amp: bool
    amp_device_type: str
    amp_kwargs: dict[str, Any]
    target_key: str
    vr_supervision: str
    vr_networks: dict[str, nn.Module]
    vr_teachers: dict[str, nn.Module]
    vr_loss_functions: dict[str, Callable]
    vr_input_transform: Callable[[torch.Tensor], torch.Tensor] | None
    transformer_network: nn.Module | None


def mark_pretrained(network: nn.Module) -> nn.Module:
    """Record that ``network`` holds trained recognition weights (pretrained or loaded from a checkpoint), so it
    may serve as the frozen teacher of unsupervised recognition-aware training."""
    setattr(network, _PRETRAINED_FLAG, True)
    return network


def is_pretrained(network: nn.Module) -> bool:
    return bool(getattr(network, _PRETRAINED_FLAG, False))


def autocast(engine: WiredEngine) -> contextlib.AbstractContextManager:
    """``torch.autocast`` with the engine's AMP settings, or a no-op context without AMP."""
    if not engine.amp:
        return contextlib.nullcontext()
    return torch.autocast(engine.amp_device_type, **engine.amp_kwargs)


def make_teachers(engine: WiredEngine) -> None:
    """Freeze a frozen copy of each pretrained VR as its task's teacher (unsupervised supervision)."""
    for task, net in engine.vr_networks.items():
        if task in engine.vr_teachers:
            # a teacher passed by the user is frozen too: in train mode its BatchNorm statistics would drift
            # and its dropout would make the target random
            engine.vr_teachers[task].eval().requires_grad_(False)
            continue
        if not is_pretrained(net):
            raise ValueError(
                "vr_supervision='unsupervised' needs a pretrained teacher: pretrain VR on clean images "
                "(monai_gradprom.engines.pretrain_recognizer), load a VR checkpoint, or pass vr_teacher=... "
                f"(task {task!r} has an untrained VR)"
            )
        teacher = copy.deepcopy(net).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        engine.vr_teachers[task] = teacher


def recognition_losses(
    engine: WiredEngine, strategy: Strategy, enhanced: torch.Tensor, batch: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``{task: L_VR}`` on IP's output ``enhanced``, VR's input wired as ``strategy`` says (through T or not),
    against the batch's labels / masks or, unsupervised, the teacher's output on the clean target."""
    vr_input = strategy.vr_input(enhanced, engine.transformer_network)
    teacher_input = batch[engine.target_key]
    if engine.vr_input_transform is not None:
        vr_input = engine.vr_input_transform(vr_input)
        teacher_input = engine.vr_input_transform(teacher_input)
    losses = {}
    for task, net in engine.vr_networks.items():
        prediction = net(vr_input)
        if engine.vr_supervision == "unsupervised":
            with torch.no_grad():
                reference = engine.vr_teachers[task](teacher_input)
        else:
            if task not in batch:
                raise KeyError(f"the batch has no key {task!r} for VR's supervised loss (keys: {sorted(batch)})")
            reference = batch[task]
        losses[task] = engine.vr_loss_functions[task](prediction, reference)
    return losses
