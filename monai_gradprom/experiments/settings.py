"""The comparison protocol's settings: one dataclass, three presets (``quick``, ``cpu``, ``paper``), and the
regimes (arms) it compares the strategies in.

Every number that decides what the comparison can detect lives here, so a report can print all of them, a user
can change one without reading the protocol's code, and :meth:`ProtocolSettings.validate` can refuse a bad one
before anything trains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["ProtocolSettings", "Arm", "preset", "SCALES", "REGIMES", "VR_STARTS", "VR_SUPERVISIONS", "STRATEGY_OF"]

SCALES = ("quick", "cpu", "paper")
REGIMES = ("finetune", "cascade")
VR_STARTS = ("naive", "judge")
VR_SUPERVISIONS = ("supervised", "unsupervised")
# a regime's VR start unless the user names one: fine-tuning co-trains the clean-trained judge (the old protocol);
# the cascade follows the GradProm paper, whose VR has never seen the medical task when it is cascaded
DEFAULT_VR_START = {"finetune": "judge", "cascade": "naive"}
# a protocol strategy name -> the trainer's strategy and gate
STRATEGY_OF = {
    "plain": ("plain", "hard"),
    "frozen": ("frozen", "hard"),
    "joint": ("joint", "hard"),
    "gradprom_hard": ("gradprom", "hard"),
    "gradprom_soft": ("gradprom", "soft"),
}


@dataclass(frozen=True)
class Arm:
    """One regime of the comparison: where IP and the co-trained VR start, and how VR is supervised.

    - ``finetune``: every strategy fine-tunes the plain IP trained to its PSNR plateau (``finetune_steps``).
    - ``cascade``: the GradProm paper's order: one plain warm-up of IP (``warmup_steps`` at ``warmup_lr``), then
      every strategy trains IP and VR together from that point (``cascade_steps``).
    - ``vr_start``: ``judge`` (the co-trained VR starts as the clean-trained fixed judge) or ``naive`` (random
      initialisation, or ``naive_vr_steps`` of clean pretraining: well below the judge's score).
    - ``vr_supervision``: ``supervised`` (labels / masks) or ``unsupervised`` (VR(IP(x)) matched to the fixed
      judge on the clean image: the RA / GradProm teacher form).
    ``frozen`` always trains through the fixed judge: RA processing needs a recognizer that recognises.
    """

    regime: str
    vr_start: str
    vr_supervision: str

    @property
    def name(self) -> str:
        return f"{self.regime}/{self.vr_start}/{self.vr_supervision}"

    def as_dict(self) -> dict[str, str]:
        return {"regime": self.regime, "vr_start": self.vr_start, "vr_supervision": self.vr_supervision}


@dataclass
class ProtocolSettings:
    """What the protocol trains, for how long, and what it compares.

    Recognizers: the fixed VR (the bundle's ``vr_network_def``) and an unseen recognizer of another architecture
    are trained on clean images for at most ``vr_max_steps`` steps and must reach ``min_clean_score`` (accuracy, or
    foreground Dice) on the clean validation images, else the run stops with an error naming the score.

    ``finetune`` regime: plain IP is trained until its validation PSNR gains less than ``plateau_db`` over
    ``patience`` evaluations (``eval_every`` steps apart), at most ``ip_max_steps`` steps; each strategy then
    fine-tunes a copy of it for ``finetune_steps`` steps. ``cascade`` regime: IP is warmed up alone for
    ``warmup_steps`` at ``warmup_lr`` and every strategy trains on from there for ``cascade_steps``. Both use a
    fresh Adam at ``finetune_lr`` (the papers' 1e-4; a co-trained VR at ``finetune_vr_lr``), plain continuing
    alongside as the control. lambda = rho / r, r = ||grad L_VR|| / ||grad L_IP|| over IP's parameters through
    the VR that sends IP its recognition gradient (the fixed judge for ``frozen``, the co-trained VR at its start
    for ``joint`` and GradProm), measured on ``calibration_batches`` batches at the regime's starting IP: one r
    per seed, arm and VR, so every co-training strategy at one rho uses the same lambda. The matched-lambda controls (joint and hard GradProm
    at GradProm's effective lambda) run at ``matched_rhos``; the smoothed gate (``cos_ema`` =
    ``smoothed_gate_beta``) at ``smoothed_gate_rho``.
    """

    scale: str = "cpu"
    seeds: tuple[int, ...] = (0, 1, 2)
    regimes: tuple[str, ...] = REGIMES
    vr_starts: tuple[str, ...] | None = None  # None: each regime's default (DEFAULT_VR_START)
    vr_supervisions: tuple[str, ...] = ("supervised",)
    rhos: tuple[float, ...] = (1.0,)
    strategies: tuple[str, ...] = ("frozen", "joint", "gradprom_hard", "gradprom_soft")
    matched_rhos: tuple[float, ...] = (1.0,)
    smoothed_gate_rho: float | None = None
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
    warmup_lr: float = 1e-4
    warmup_steps: int = 300
    cascade_steps: int = 400
    naive_vr_steps: int = 0
    curve_every: int = 25
    calibration_batches: int = 8
    agreement_batches: int = 32
    eval_seed: int = 1234
    bundle_overrides: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    def arms(self) -> list[Arm]:
        """Every (regime, VR start, VR supervision) combination this comparison runs, in a fixed order."""
        arms = []
        for regime in self.regimes:
            starts = self.vr_starts or (DEFAULT_VR_START[regime],)
            for start in starts:
                for supervision in self.vr_supervisions:
                    arms.append(Arm(regime, start, supervision))
        return arms

    def steps_of(self, arm: Arm) -> int:
        return self.finetune_steps if arm.regime == "finetune" else self.cascade_steps

    def validate(self) -> ProtocolSettings:
        """Refuse settings no comparison can run with, naming the setting and its value; returns ``self``."""
        def fail(name: str, value: Any, want: str) -> None:
            raise ValueError(f"protocol setting {name}={value!r}: {want}")

        if self.scale not in SCALES:
            fail("scale", self.scale, f"must be one of {SCALES}")
        if not self.seeds:
            fail("seeds", self.seeds, "at least one seed is needed (--seeds 1 or more)")
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                fail("seeds", self.seeds, "seeds are whole numbers >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            fail("seeds", self.seeds, "a seed is listed twice")
        for name, values, known in (("regimes", self.regimes, REGIMES), ("vr_starts", self.vr_starts or (), VR_STARTS),
                                    ("vr_supervisions", self.vr_supervisions, VR_SUPERVISIONS)):
            if name != "vr_starts" and not values:
                fail(name, values, f"name at least one of {known}")
            for value in values:
                if value not in known:
                    fail(name, values, f"{value!r} is not one of {known}")
        for name in ("rhos", "matched_rhos"):
            for rho in getattr(self, name):
                if not _positive(rho):
                    fail(name, getattr(self, name), "each rho must be a finite number > 0 (--rho)")
        if not self.rhos:
            fail("rhos", self.rhos, "at least one rho is needed")
        for rho in self.matched_rhos:
            if not any(math.isclose(rho, r) for r in self.rhos):
                fail("matched_rhos", self.matched_rhos, f"{rho} is not among rhos {list(self.rhos)}")
        if self.smoothed_gate_rho is not None and not any(math.isclose(self.smoothed_gate_rho, r) for r in self.rhos):
            fail("smoothed_gate_rho", self.smoothed_gate_rho, f"must be one of rhos {list(self.rhos)} or None")
        if not 0 <= self.smoothed_gate_beta < 1:
            fail("smoothed_gate_beta", self.smoothed_gate_beta, "must lie in [0, 1)")
        for name in self.strategies:
            if name not in STRATEGY_OF:
                fail("strategies", self.strategies, f"{name!r} is not one of {sorted(STRATEGY_OF)}")
        for name in ("vr_lr", "ip_lr", "finetune_lr", "finetune_vr_lr", "warmup_lr"):
            if not _positive(getattr(self, name)):
                fail(name, getattr(self, name), "a learning rate is a finite number > 0")
        for name in ("batch_size", "vr_batch_size", "vr_max_steps", "vr_eval_every", "ip_max_steps", "eval_every",
                     "patience", "finetune_steps", "cascade_steps", "curve_every", "calibration_batches",
                     "agreement_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(name, value, "must be a whole number >= 1")
        for name in ("warmup_steps", "naive_vr_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                fail(name, value, "must be a whole number >= 0")
        if not (isinstance(self.plateau_db, (int, float)) and math.isfinite(self.plateau_db) and self.plateau_db >= 0):
            fail("plateau_db", self.plateau_db, "must be a finite number >= 0")
        if self.min_clean_score is not None and not (0 <= self.min_clean_score <= 1):
            fail("min_clean_score", self.min_clean_score, "a clean score lies in [0, 1]")
        return self


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# Network and data sizes per scale, applied to a bundle only where it defines the key (every dataset bundle
# defines image_size / ip_channels / ip_blocks / vr_arch; the demo also num_train / num_val / num_test / vr_width).
_CPU_SIZES = {"image_size": 64, "ip_channels": 16, "ip_blocks": 2, "vr_arch": "resnet10",
              "num_train": 512, "num_val": 96, "num_test": 256}
_QUICK_SIZES = {"image_size": 64, "ip_channels": 8, "ip_blocks": 1, "vr_arch": "resnet10",
                "num_train": 256, "num_val": 64, "num_test": 128}


def preset(scale: str, **changes: Any) -> ProtocolSettings:
    """The settings of ``scale`` with ``changes`` applied (unknown fields are an error naming them); not yet
    validated (call :meth:`ProtocolSettings.validate`)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "paper":
        # the papers' sizes (SRResNet 64 x 16 at the bundle's image size, ResNet-18 VR) and schedule (Adam 1e-4,
        # batch 8, GradProm paper Sec. 4): hours per seed on one GPU
        base = ProtocolSettings(scale=scale, batch_size=8, vr_lr=1e-4, vr_batch_size=8, vr_max_steps=20000,
                                vr_eval_every=500, ip_lr=1e-4, ip_max_steps=40000, eval_every=1000,
                                finetune_steps=5000, warmup_steps=10000, cascade_steps=20000, curve_every=250,
                                agreement_batches=64, rhos=(0.3, 1.0, 3.0), smoothed_gate_rho=1.0)
    elif scale == "quick":
        base = ProtocolSettings(scale=scale, seeds=(0,), rhos=(1.0,), vr_max_steps=600, vr_eval_every=50,
                                ip_max_steps=150, eval_every=50, finetune_steps=30, warmup_steps=60,
                                cascade_steps=40, curve_every=10, calibration_batches=2, agreement_batches=8,
                                matched_rhos=(), bundle_overrides=dict(_QUICK_SIZES))
    else:
        base = ProtocolSettings(scale=scale, bundle_overrides=dict(_CPU_SIZES))
    unknown = sorted(set(changes) - set(asdict(base)))
    if unknown:
        raise ValueError(f"unknown protocol settings {unknown}; known: {sorted(asdict(base))}")
    return replace(base, **changes)


def as_tuple(value: Any) -> tuple | Any:
    """A list from the command line as the tuple a setting holds (other values unchanged)."""
    return tuple(value) if isinstance(value, (list, Sequence)) and not isinstance(value, str) else value
