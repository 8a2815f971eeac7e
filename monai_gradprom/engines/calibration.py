"""Lambda that means the same thing on every loss: calibrate it from the measured gradient-norm ratio.

The recognition weight lam multiplies a gradient whose size depends on the losses' normalisations (per-pixel
Dice + CE barely moves IP, a per-image cross-entropy against MSE pulls about 400 times harder), so no value of
lam transfers between tasks or papers. Stating instead "recognition gets rho times the pull of fidelity" does:
with ``r`` the mean over a few training batches of ``||G_VR|| / ||G_IP||`` (both gradients w.r.t. IP's
parameters), ``lam = rho / r`` makes ``lam ||G_VR||`` about ``rho ||G_IP||``.

The measurement wires the losses exactly as training does (supervision mode, teacher, ``vr_input_transform``,
AMP autocast, VR in the mode the strategy trains it); for ``transformer`` the recognition loss reaches IP
through T without training's detach, since that path is the one a calibrated lam would weigh. It changes
nothing: gradients come from ``autograd.grad`` (no ``.grad`` written, no optimizer touched), the networks'
train/eval flags and buffers (BatchNorm running statistics) and the global RNGs are restored afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from monai_gradprom.data.reproducible import RNGStates
from monai_gradprom.engines.wiring import autocast, make_teachers, recognition_losses
from monai_gradprom.gradients import all_reduce_mean_, grads_of, norm
from monai_gradprom.strategies import Strategy, TransformerStrategy

#: A :class:`~monai_gradprom.engines.GradPromTrainer`, taken duck-typed: the trainer imports this module, so
#: this module names the trainer's type without importing it (the shared wiring lives in ``engines.wiring``).
_Trainer = Any

__all__ = [
    "preserved_training_state",
    "recognition_gradients",
    "gradient_norm_ratio",
    "apply_calibration",
    "CalibrationState",
]

logger = logging.getLogger(__name__)


class _ThroughTransformer(TransformerStrategy):
    """The transformer strategy's wiring without the detach: VR sees T(IP(x)) and its loss reaches IP."""

    def vr_input(self, enhanced: torch.Tensor, transformer: torch.nn.Module | None = None) -> torch.Tensor:
        if transformer is None:
            raise ValueError("strategy 'transformer' needs a transformer network T (transformer_network=...)")
        return transformer(enhanced)


def _modules(trainer: _Trainer) -> list[torch.nn.Module]:
    nets = [trainer.ip_network, *trainer.vr_networks.values(), trainer.transformer_network]
    return [m for m in nets if m is not None]


@contextlib.contextmanager
def preserved_training_state(trainer: _Trainer) -> Iterator[None]:
    """Restore on exit what a measuring forward pass may change: every submodule's train/eval flag, every
    buffer of IP, VR and T (BatchNorm running statistics and counters) and the global RNG states (dropout,
    a data loader's sampler), so that a measurement leaves training and its data stream as they were."""
    modules = _modules(trainer)
    flags = [(sub, sub.training) for m in modules for sub in m.modules()]
    buffers = [(b, b.detach().clone()) for m in modules for b in m.buffers()]
    rng = RNGStates().state_dict()
    try:
        yield
    finally:
        RNGStates().load_state_dict(rng)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for sub, flag in flags:
            sub.training = flag


def recognition_gradients(
    trainer: _Trainer, batchdata: Mapping[str, Any], strategy: Strategy | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(G_IP, G_VR)`` on one batch: the gradients of L_IP and of the total recognition loss (the sum over
    tasks) w.r.t. IP's trainable parameters, wired as ``strategy`` (default: the trainer's) trains, averaged
    over ranks under torch.distributed. Networks are left in training's modes; wrap calls in
    :func:`preserved_training_state` to restore them."""
    strategy = trainer.strategy if strategy is None else strategy
    if not strategy.uses_vr or not trainer.vr_networks:
        raise ValueError(f"strategy {strategy.name!r} does not use a recognition network: no G_VR to measure")
    batch = trainer.prepare_batch(batchdata, trainer.state.device, trainer.non_blocking, **trainer.to_kwargs)
    for key in (trainer.image_key, trainer.target_key):
        if key not in batch:
            raise KeyError(f"calibration batch has no key {key!r} (keys: {sorted(batch)})")
    trainer.ip_network.train()
    for net in trainer.vr_networks.values():
        net.train(strategy.trains_vr)
    if trainer.transformer_network is not None:
        trainer.transformer_network.train(strategy.needs_transformer)
    if trainer.vr_supervision == "unsupervised":
        make_teachers(trainer)
    wiring = _ThroughTransformer(lam=strategy.lam) if strategy.needs_transformer else strategy
    params = [p for p in trainer.ip_network.parameters() if p.requires_grad]
    # with a float16 gradient scaler, scale both losses alike (ratio and cosine are scale invariant) so that
    # small gradients do not underflow; get_scale() does not initialise or change the scaler
    scale = float(trainer.scaler.get_scale()) if trainer.scaler is not None else 1.0
    with torch.enable_grad():
        with autocast(trainer):
            enhanced = trainer.ip_network(batch[trainer.image_key])
            loss_ip = trainer.ip_loss_function(enhanced, batch[trainer.target_key])
            losses = recognition_losses(trainer, wiring, enhanced, batch)
        loss_vr = torch.stack([v.float() for v in losses.values()]).sum()
        g_ip = grads_of(loss_ip.float() * scale, params, retain_graph=True)
        g_vr = grads_of(loss_vr * scale, params)
    all_reduce_mean_(g_ip)
    all_reduce_mean_(g_vr)
    return g_ip, g_vr


def gradient_norm_ratio(trainer: _Trainer, batches: Iterable[Mapping[str, Any]], num_batches: int = 4) -> float:
    """Mean over the first ``num_batches`` of ``batches`` of ``||G_VR|| / ||G_IP||`` (see
    :func:`recognition_gradients`). Parameters, optimizers, buffers and RNGs are left as they were; batches are
    drawn from ``batches`` inside that protection, so drawing them from a data loader does not move its RNG."""
    if not isinstance(num_batches, int) or isinstance(num_batches, bool) or num_batches < 1:
        raise ValueError(f"num_batches must be a positive integer, got {num_batches!r}")
    norms = []
    with preserved_training_state(trainer):
        for batchdata in itertools.islice(iter(batches), num_batches):
            g_ip, g_vr = recognition_gradients(trainer, batchdata)
            norms.append(torch.stack([norm(g_ip), norm(g_vr)]))
    if not norms:
        raise ValueError("cannot measure the gradient-norm ratio: no batch was given")
    values = torch.stack(norms).double().cpu()  # one host synchronisation for all batches
    zero = (values[:, 0] == 0).nonzero().reshape(-1).tolist()
    if zero:
        raise ValueError(
            f"IP's own gradient ||G_IP|| is zero on calibration batch(es) {zero}: the ratio ||G_VR|| / ||G_IP|| "
            "is undefined (is IP already exact on these images, or are its parameters frozen?)"
        )
    ratio = float((values[:, 1] / values[:, 0]).mean())
    if not math.isfinite(ratio):
        raise ValueError(f"the gradient-norm ratio is not finite ({ratio}): a loss or gradient is inf/NaN")
    return ratio


def apply_calibration(trainer: _Trainer, ratio: float, lam_ratio: float) -> dict[str, float]:
    """Set ``lam = lam_ratio / ratio`` on the trainer's strategies, record ``trainer.calibration`` and log it."""
    if ratio <= 0:
        raise ValueError(
            f"the recognition gradient ||G_VR|| is zero on every calibration batch (ratio {ratio}): lam_ratio "
            "cannot set lam; check that L_VR reaches IP (vr_input_transform, a detached output)"
        )
    lam = float(lam_ratio) / float(ratio)
    trainer.strategy.lam = lam
    trainer._warmup_strategy.lam = lam
    trainer.calibration = {"ratio": float(ratio), "lam": lam, "lam_ratio": float(lam_ratio)}
    logger.info(
        "lam calibrated for strategy %r: ||G_VR|| / ||G_IP|| = %.6g over IP's parameters, lam = %.6g / %.6g = %.6g",
        trainer.strategy.name, ratio, lam_ratio, ratio, lam,
    )
    return trainer.calibration


class CalibrationState:
    """``trainer.calibration`` as a checkpointable object: a resumed run restores the calibrated lam instead of
    measuring again on a different IP (an empty dict: not calibrated yet)."""

    def __init__(self, trainer: _Trainer) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, float]:
        return dict(self.trainer.calibration or {})

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        if not state:
            self.trainer.calibration = None
            return
        missing = {"ratio", "lam", "lam_ratio"} - set(state)
        if missing:
            raise ValueError(f"checkpoint's calibration lacks {sorted(missing)}")
        if self.trainer.lam_ratio is not None and float(state["lam_ratio"]) != float(self.trainer.lam_ratio):
            logger.warning(
                "the checkpoint was calibrated with lam_ratio=%s, this run asks for %s: keeping the checkpoint's "
                "lam=%s (a resumed run does not recalibrate)", state["lam_ratio"], self.trainer.lam_ratio, state["lam"],
            )
        self.trainer.strategy.lam = float(state["lam"])
        self.trainer._warmup_strategy.lam = float(state["lam"])
        self.trainer.calibration = {k: float(state[k]) for k in ("ratio", "lam", "lam_ratio")}
        logger.info("lam restored from the checkpoint's calibration: %s", self.trainer.calibration)
