"""The comparison protocol's settings: one dataclass, three presets (``quick``, ``cpu``, ``paper``).

Every number that decides what the comparison can detect lives here, so a report can print all of them and a
user can change one without reading the protocol's code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["ProtocolSettings", "preset", "SCALES"]

SCALES = ("quick", "cpu", "paper")


@dataclass
class ProtocolSettings:
    """What the protocol trains, for how long, and what it compares.

    Recognizers: the fixed VR (the bundle's ``vr_network_def``) and an unseen recognizer of another architecture
    are trained on clean images for at most ``vr_max_steps`` steps and must reach ``min_clean_score`` (accuracy, or
    foreground Dice) on the clean validation images, else the run stops with an error naming the score.

    Plain IP is trained until its validation PSNR gains less than ``plateau_db`` over ``patience`` evaluations
    (``eval_every`` steps apart), at most ``ip_max_steps`` steps. Each strategy then fine-tunes a copy of that IP
    for ``finetune_steps`` steps with a fresh Adam at ``finetune_lr`` (the papers' 1e-4), plain continuing
    alongside as the control. lambda = rho / r, r = ||grad L_VR|| / ||grad L_IP|| over IP's parameters measured
    on ``calibration_batches`` batches: one r per seed, so every strategy at one rho uses the same lambda.
    The matched-lambda controls (joint and hard GradProm at GradProm's effective lambda) run at ``matched_rhos``;
    the smoothed gate (``cos_ema`` = ``smoothed_gate_beta``) at ``smoothed_gate_rho``.
    """

    scale: str = "cpu"
    seeds: tuple[int, ...] = (0, 1, 2)
    rhos: tuple[float, ...] = (0.3, 1.0, 3.0)
    strategies: tuple[str, ...] = ("frozen", "joint", "gradprom_hard", "gradprom_soft")
    matched_rhos: tuple[float, ...] = (1.0,)
    smoothed_gate_rho: float | None = 1.0
    smoothed_gate_beta: float = 0.9
    batch_size: int = 8
    vr_lr: float = 1e-3
    vr_batch_size: int = 16
    vr_max_steps: int = 1500
    vr_eval_every: int = 100
    min_clean_score: float | None = None
    ip_lr: float = 1e-3
    ip_max_steps: int = 3000
    eval_every: int = 100
    plateau_db: float = 0.05
    patience: int = 2
    finetune_lr: float = 1e-4
    finetune_vr_lr: float = 1e-4
    finetune_steps: int = 200
    curve_every: int = 25
    calibration_batches: int = 8
    agreement_batches: int = 32
    eval_seed: int = 1234
    bundle_overrides: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"], out["rhos"], out["strategies"] = list(self.seeds), list(self.rhos), list(self.strategies)
        return out


# Network and data sizes per scale, applied to a bundle only where it defines the key (every dataset bundle
# defines image_size / ip_channels / ip_blocks / vr_arch; the demo also num_train / num_val / num_test / vr_width).
_CPU_SIZES = {"image_size": 64, "ip_channels": 16, "ip_blocks": 2, "vr_arch": "resnet10",
              "num_train": 512, "num_val": 96, "num_test": 256}
_QUICK_SIZES = {"image_size": 64, "ip_channels": 8, "ip_blocks": 1, "vr_arch": "resnet10",
                "num_train": 256, "num_val": 64, "num_test": 128}


def preset(scale: str, **changes: Any) -> ProtocolSettings:
    """The settings of ``scale`` with ``changes`` applied (unknown fields are an error naming them)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "paper":
        # the papers' sizes (SRResNet 64 x 16 at the bundle's image size, ResNet-18 VR) and schedule (Adam 1e-4,
        # batch 8, GradProm paper Sec. 4): hours per seed on one GPU
        base = ProtocolSettings(scale=scale, batch_size=8, vr_lr=1e-4, vr_batch_size=8, vr_max_steps=20000, vr_eval_every=500,
                                ip_lr=1e-4, ip_max_steps=40000, eval_every=1000, finetune_steps=5000,
                                curve_every=250, agreement_batches=64)
    elif scale == "quick":
        base = ProtocolSettings(scale=scale, seeds=(0,), rhos=(1.0,), vr_max_steps=600, vr_eval_every=50,
                                ip_max_steps=150, eval_every=50, finetune_steps=30, curve_every=15,
                                calibration_batches=2, agreement_batches=8, smoothed_gate_rho=None,
                                matched_rhos=(), bundle_overrides=dict(_QUICK_SIZES))
    else:
        base = ProtocolSettings(scale=scale, bundle_overrides=dict(_CPU_SIZES))
    unknown = sorted(set(changes) - set(asdict(base)))
    if unknown:
        raise ValueError(f"unknown protocol settings {unknown}; known: {sorted(asdict(base))}")
    return replace(base, **changes)
