"""Recognition losses L_VR: supervised (labels / masks) and unsupervised (match a frozen teacher).

Every loss is called as ``loss(prediction, target)``: for supervised losses ``target`` is the class index
(``(B,)``) or the mask (``(B, 1, *spatial)``); for unsupervised losses ``target`` is the teacher's logits on the
clean image (the trainer computes those under ``no_grad``).
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss
from torch import nn

__all__ = [
    "ClassificationCELoss",
    "SegmentationDiceCELoss",
    "SoftmaxL2Loss",
    "SoftmaxKLLoss",
    "default_vr_loss",
    "UNSUPERVISED_LOSSES",
]


class ClassificationCELoss(nn.Module):
    """Cross-entropy on class indices; accepts labels shaped ``(B,)``, ``(B, 1)`` or float-typed."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss(**kwargs)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = torch.as_tensor(target, device=prediction.device)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        if target.ndim != 1:
            raise ValueError(f"classification target must be (B,) class indices, got shape {tuple(target.shape)}")
        return self.ce(prediction.float(), target.long())


class SegmentationDiceCELoss(DiceCELoss):
    """MONAI's Dice + cross-entropy for a softmax segmenter and an index mask ``(B, 1, *spatial)``."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("to_onehot_y", True)
        kwargs.setdefault("softmax", True)
        super().__init__(**kwargs)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = torch.as_tensor(target, device=prediction.device)
        if target.ndim == prediction.ndim - 1:
            target = target.unsqueeze(1)
        return super().forward(prediction.float(), target.float())


class SoftmaxL2Loss(nn.Module):
    """Unsupervised RA loss: squared difference between the softmax outputs, averaged over classes *and*
    samples (and pixels for a segmenter), i.e. ``nn.MSELoss()`` on the two softmaxes.

    This is the normalisation of the RA paper's code (Transferable_RA ``train.py``, ``ra_unsupervised``:
    ``criterion_sr(Softmax(output), Softmax(teacher))`` with ``criterion_sr = nn.MSELoss()``), which its lam = 10
    was tuned for. Summing over the K classes instead would make the loss K times larger (1000 x on ImageNet),
    so the paper's lam would not transfer.
    """

    def forward(self, prediction: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if prediction.shape != teacher_logits.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and teacher logits {tuple(teacher_logits.shape)} differ in shape"
            )
        diff = prediction.float().softmax(dim=1) - teacher_logits.float().softmax(dim=1)
        return diff.pow(2).mean()


class SoftmaxKLLoss(nn.Module):
    """Unsupervised alternative: KL(teacher || student) of the softmax outputs, averaged over samples/pixels."""

    def forward(self, prediction: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        log_p = prediction.float().log_softmax(dim=1)
        log_q = teacher_logits.float().log_softmax(dim=1)
        return (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()


UNSUPERVISED_LOSSES = {"l2": SoftmaxL2Loss, "kl": SoftmaxKLLoss}


def default_vr_loss(task_key: str, supervision: str = "supervised", unsupervised: str = "l2") -> nn.Module:
    """The default L_VR for a task key: ``"label"`` -> cross-entropy, ``"seg"`` -> Dice + CE; unsupervised ->
    softmax L2 (mean over classes, as the RA code) or KL against the teacher whatever the task."""
    if supervision == "unsupervised":
        if unsupervised not in UNSUPERVISED_LOSSES:
            raise ValueError(f"unknown unsupervised loss {unsupervised!r}; choose one of {sorted(UNSUPERVISED_LOSSES)}")
        return UNSUPERVISED_LOSSES[unsupervised]()
    if supervision != "supervised":
        raise ValueError(f"vr_supervision must be 'supervised' or 'unsupervised', got {supervision!r}")
    if task_key == "label":
        return ClassificationCELoss()
    if task_key == "seg":
        return SegmentationDiceCELoss()
    raise ValueError(
        f"no default recognition loss for task key {task_key!r}: pass vr_loss_function explicitly "
        "(defaults exist for 'label' (cross-entropy) and 'seg' (Dice + cross-entropy))"
    )
