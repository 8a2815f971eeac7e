"""The judges: recognizers trained on clean images, checked before any comparison is made on them.

A comparison judged by a recognizer at chance measures nothing, so :func:`pretrain_judge` trains until the clean
validation score reaches a stated threshold and raises :class:`JudgeNotReadyError` (naming the score) when it
does not. The *fixed* judge is the bundle's own VR architecture (what RA processing trains through); the *unseen*
judge is another architecture that IP never sees (the papers' transfer check).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from torch import nn

from monai_gradprom.analysis.transfer import recognition_scores
from monai_gradprom.losses import default_vr_loss

__all__ = ["JudgeNotReadyError", "build_unseen_recognizer", "clean_score", "default_min_clean_score", "pretrain_judge", "score"]

logger = logging.getLogger("monai_gradprom.experiments")


class JudgeNotReadyError(RuntimeError):
    """A recognizer did not reach the clean score the comparison needs."""


def default_min_clean_score(task_key: str, num_classes: int, labels: torch.Tensor | None = None) -> float:
    """The clean score a judge must reach by default: accuracy 0.25 above the majority-class rate (at most 0.95;
    0.75 for two balanced classes) for classification, foreground Dice 0.6 for segmentation."""
    if task_key == "label":
        majority = 1.0 / num_classes
        if labels is not None and len(labels):
            majority = float(torch.bincount(labels.reshape(-1).long(), minlength=num_classes).max()) / len(labels)
        return min(0.95, majority + 0.25)
    return 0.6


def build_unseen_recognizer(task_key: str, spatial_dims: int, in_channels: int, num_classes: int) -> nn.Module:
    """A recognizer of another family than the bundle's ResNet-based VR: a small MONAI DenseNet classifier or a
    MONAI BasicUNet segmenter."""
    from monai.networks.nets import BasicUNet, DenseNet

    if task_key == "label":
        return DenseNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes,
                        init_features=16, growth_rate=8, block_config=(2, 4, 4), bn_size=2)
    return BasicUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes,
                     features=(8, 16, 32, 64, 128, 8))


@torch.no_grad()
def score(recognizer: nn.Module, images: torch.Tensor, truth: torch.Tensor, task_key: str, num_classes: int,
          batch_size: int = 32) -> torch.Tensor:
    """Per-image recognition scores (correctness, or foreground Dice) of ``recognizer`` on ``images``."""
    recognizer.eval()
    device = next(recognizer.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        logits = recognizer(images[i : i + batch_size].to(device).float()).float()
        out.append(recognition_scores(logits, truth[i : i + batch_size].to(device), task_key, num_classes).cpu())
    return torch.cat(out)


def clean_score(recognizer: nn.Module, split: Mapping[str, torch.Tensor], task_key: str, num_classes: int) -> float:
    """Mean score on the split's clean images."""
    return float(score(recognizer, split["clean"], split[task_key], task_key, num_classes).mean())


def pretrain_judge(
    recognizer: nn.Module,
    name: str,
    train: Mapping[str, torch.Tensor],
    validation: Mapping[str, torch.Tensor],
    task_key: str,
    num_classes: int,
    min_score: float,
    max_steps: int,
    eval_every: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device | str = "cpu",
    target_score: float = 0.97,
) -> dict[str, float | int]:
    """Train ``recognizer`` on clean training images with MONAI's SupervisedTrainer for at most ``max_steps``
    steps (early stop once the clean validation score, checked every ``eval_every`` steps, reaches
    ``target_score``) and keep the weights of its best validation score.

    Returns ``{"clean_score", "steps"}`` of the kept weights; raises :class:`JudgeNotReadyError` when even the
    best score stays below ``min_score``.
    """
    clean, truth = train["clean"], train[task_key]
    generator = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            index = torch.randint(0, len(clean), (batch_size,), generator=generator)
            yield {"image": clean[index], "label": truth[index]}

    def prepare(batch, device, non_blocking=False, **kwargs):
        return batch["image"].to(device), batch["label"].to(device)

    recognizer.to(device)
    trainer = SupervisedTrainer(
        device=torch.device(device), max_epochs=max(1, -(-max_steps // eval_every)), epoch_length=eval_every,
        train_data_loader=batches(), network=recognizer, optimizer=torch.optim.Adam(recognizer.parameters(), lr=lr),
        loss_function=default_vr_loss(task_key), prepare_batch=prepare, decollate=False,
    )
    best: dict[str, Any] = {"clean_score": float("-inf"), "steps": 0, "state": None}

    @trainer.on(Events.EPOCH_COMPLETED)
    def check(engine):
        value = clean_score(recognizer, validation, task_key, num_classes)
        logger.info("judge %s: clean validation score %.3f after %d steps", name, value, engine.state.iteration)
        recognizer.train()
        if value > best["clean_score"]:
            best.update(clean_score=value, steps=engine.state.iteration,
                        state={k: v.detach().clone() for k, v in recognizer.state_dict().items()})
        if value >= target_score:
            engine.terminate()

    trainer.run()
    if best["state"] is not None:
        recognizer.load_state_dict(best["state"])
    recognizer.eval()
    result = {"clean_score": float(best["clean_score"]), "steps": int(best["steps"]),
              "steps_trained": int(trainer.state.iteration)}
    if not result["clean_score"] >= min_score:
        raise JudgeNotReadyError(
            f"recognizer {name!r} reached a best clean validation score of {result['clean_score']:.3f} in "
            f"{result['steps_trained']} steps, below the required {min_score:.3f}: a comparison judged by it would "
            "not mean anything. Train longer (vr_max_steps), use more data, or lower min_clean_score knowingly."
        )
    return result
