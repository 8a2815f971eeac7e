"""The protocol's training schedule, on the project's own GradPromTrainer: plain IP to a plateau (the
``finetune`` regime's start) or a short plain warm-up (the ``cascade`` regime's start), then one run per strategy
from that IP with a fresh optimizer, plain continuing alongside as the control.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from ignite.engine import Events
from torch import nn

from monai_gradprom.engines import GradPromTrainer
from monai_gradprom.experiments.data import DegradedStream
from monai_gradprom.experiments.evaluation import enhancement_scores

__all__ = ["RunSpec", "FineTuneResult", "train_plain_to_plateau", "train_warmup", "fine_tune", "plateau_reached"]

logger = logging.getLogger("monai_gradprom.experiments")


def plateau_reached(history: list[float], plateau_db: float, patience: int) -> bool:
    """True when the last ``patience`` evaluations each gained less than ``plateau_db`` over the best before them.

    ``[20.0, 21.0, 21.02, 21.03]`` with 0.05 dB and patience 2: the last two gained 0.02 and 0.01 dB -> True.
    """
    if len(history) <= patience:
        return False
    best_before = max(history[: -patience])
    return all(value - best_before < plateau_db for value in history[-patience:])


def train_plain_to_plateau(
    ip: nn.Module,
    stream: DegradedStream,
    validation: Mapping[str, torch.Tensor],
    lr: float,
    eval_every: int,
    max_steps: int,
    plateau_db: float,
    patience: int,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Train IP alone (strategy ``plain``) until validation PSNR plateaus and keep the weights of the best
    validation PSNR (Adam at a high learning rate can blow up late: one seed fell from 32.9 to 7.3 dB in 100
    steps). Returns the PSNR history, the steps trained and the step whose weights were kept."""
    trainer = GradPromTrainer(
        device=device, max_epochs=max(1, math.ceil(max_steps / eval_every)), epoch_length=eval_every,
        train_data_loader=iter(stream), ip_network=ip, ip_optimizer=torch.optim.Adam(ip.parameters(), lr=lr),
        strategy="plain",
    )
    history: list[float] = []
    best: dict[str, Any] = {"psnr": float("-inf"), "step": 0, "state": None}

    @trainer.on(Events.EPOCH_COMPLETED)
    def check(engine):
        history.append(enhancement_scores(ip, validation)["psnr"])
        logger.info("plain IP: validation PSNR %.2f dB after %d steps", history[-1], engine.state.iteration)
        if history[-1] > best["psnr"]:
            best.update(psnr=history[-1], step=engine.state.iteration,
                        state={k: v.detach().clone() for k, v in ip.state_dict().items()})
        if plateau_reached(history, plateau_db, patience):
            engine.terminate()

    trainer.run()
    if best["state"] is not None:
        ip.load_state_dict(best["state"])
    plateaued = plateau_reached(history, plateau_db, patience)
    return {"val_psnr": history, "steps": trainer.state.iteration, "plateaued": plateaued,
            "kept_step": best["step"], "kept_val_psnr": best["psnr"]}


def train_warmup(ip: nn.Module, stream: DegradedStream, lr: float, steps: int,
                 validation: Mapping[str, torch.Tensor], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Train IP alone for ``steps`` steps at ``lr`` (the GradProm paper warms IP up "for some epochs" at 1e-4
    before VR is cascaded); no plateau, no weight selection. Returns the steps and the validation PSNR reached."""
    if steps > 0:
        trainer = GradPromTrainer(
            device=device, max_epochs=1, epoch_length=steps, train_data_loader=iter(stream), ip_network=ip,
            ip_optimizer=torch.optim.Adam(ip.parameters(), lr=lr), strategy="plain",
        )
        trainer.run()
    psnr = enhancement_scores(ip, validation)["psnr"]
    logger.info("IP warm-up: validation PSNR %.2f dB after %d steps", psnr, steps)
    return {"steps": int(steps), "val_psnr": psnr}


@dataclass
class RunSpec:
    """One fine-tuning run: a protocol name, the trainer's strategy / gate / options, and its lambda."""

    name: str
    strategy: str
    lam: float
    gate: str = "hard"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def trains_vr(self) -> bool:
        return self.strategy in ("joint", "gradprom", "pcgrad")


@dataclass
class FineTuneResult:
    ip: nn.Module
    vr: nn.Module | None
    curve: list[dict[str, float]]
    gate_rate: float | None
    mean_gate_weight: float | None


def fine_tune(
    spec: RunSpec,
    ip_start: nn.Module,
    vr_start: nn.Module,
    stream: DegradedStream,
    steps: int,
    lr: float,
    vr_lr: float,
    curve_every: int,
    curve_fn: Callable[[nn.Module], dict[str, float]],
    device: torch.device | str = "cpu",
    task_key: str = "label",
    judge: nn.Module | None = None,
    vr_supervision: str = "supervised",
) -> FineTuneResult:
    """Train a copy of ``ip_start`` under ``spec`` for ``steps`` steps with a fresh Adam (IP at ``lr``; a
    co-trained VR, a copy of ``vr_start``, at ``vr_lr``), VR supervised by the batch key ``task_key``, or, with
    ``vr_supervision="unsupervised"``, by the fixed ``judge`` on the clean image (its teacher).
    ``frozen`` trains through ``judge`` (default: ``vr_start``): RA processing needs a recognizer that works.
    ``curve_fn(ip)`` is recorded every ``curve_every`` steps.
    The gate statistics are the share of steps with cos >= 0 and the mean gate weight (GradProm-type runs)."""
    judge = vr_start if judge is None else judge
    ip = copy.deepcopy(ip_start).to(device)
    vr = copy.deepcopy(vr_start if spec.trains_vr else judge).to(device)
    if not spec.trains_vr:
        for p in vr.parameters():
            p.requires_grad_(False)
        vr.eval()
    trainer = GradPromTrainer(
        device=device, max_epochs=1, epoch_length=steps, train_data_loader=iter(stream),
        ip_network=ip, ip_optimizer=torch.optim.Adam(ip.parameters(), lr=lr),
        vr_network=vr if spec.strategy != "plain" else None,
        vr_optimizer=torch.optim.Adam(vr.parameters(), lr=vr_lr) if spec.trains_vr else None,
        strategy=spec.strategy, lam=spec.lam, gate=spec.gate, strategy_options=spec.options, vr_target_key=task_key,
        vr_supervision=vr_supervision if spec.strategy != "plain" else "supervised",
        vr_teacher=judge if vr_supervision == "unsupervised" and spec.strategy != "plain" else None,
    )
    curve = [{"step": 0, **curve_fn(ip)}]
    cosines: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        out = engine.state.output
        if "cos" in out:
            cosines.append(out["cos"].detach())
            weights.append(out["gate"].detach())
        if engine.state.iteration % curve_every == 0 or engine.state.iteration == steps:
            curve.append({"step": engine.state.iteration, **curve_fn(ip)})

    trainer.run()
    gate_rate = mean_weight = None
    if cosines:
        cos = torch.stack(cosines).float()
        gate_rate = float((cos >= 0).float().mean())
        mean_weight = float(torch.stack(weights).float().mean())
    return FineTuneResult(ip.eval(), vr.eval() if spec.trains_vr else None, curve, gate_rate, mean_weight)
