"""The comparison protocol for one seed: judges, then per arm (regime x VR start x VR supervision) the starting
IP, a calibrated lambda, the gate's noise, and every strategy trained from that IP and scored on the same degraded
test images.

Every piece is kept in a :class:`~monai_gradprom.experiments.store.PieceStore` under the settings it depends on,
so an interrupted comparison picks up where it stopped and a changed setting is never served a stale piece.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from monai_gradprom import __version__
from monai_gradprom.experiments.controls import matched_lambda
from monai_gradprom.experiments.data import BundleData, DegradedStream, degrade_fixed
from monai_gradprom.experiments.evaluation import enhancement_scores, evaluate_images, reference_scores
from monai_gradprom.experiments.recognizers import (
    JudgeNotReadyError,
    build_unseen_recognizer,
    default_min_clean_score,
    pretrain_judge,
    score,
)
from monai_gradprom.experiments.schedule import RunSpec, fine_tune, train_plain_to_plateau, train_warmup
from monai_gradprom.experiments.settings import STRATEGY_OF, Arm, ProtocolSettings
from monai_gradprom.experiments.store import PieceStore, settings_digest, tensor_digest
from monai_gradprom.workflow import build_network, enhance

__all__ = ["run_seed", "train_judges", "base_specs", "calibrate", "gate_noise", "data_record", "STRATEGY_OF",
           "summarize_references"]

logger = logging.getLogger("monai_gradprom.experiments")

# measurements draw their batches from steps that training never reaches, so its batches stay untouched
_MEASURE_STEP = 1_000_000_000



def base_specs(strategies: tuple[str, ...], lam: float, frozen_lam: float | None = None) -> list[RunSpec]:
    """The run of each named strategy at ``lam`` (``gradprom_hard`` -> strategy gradprom, gate hard); ``frozen``
    at ``frozen_lam`` when given (it trains through another VR than the co-training strategies)."""
    specs = []
    for name in strategies:
        if name not in STRATEGY_OF:
            raise ValueError(f"unknown protocol strategy {name!r}; known: {sorted(STRATEGY_OF)}")
        strategy, gate = STRATEGY_OF[name]
        specs.append(RunSpec(name, strategy, frozen_lam if strategy == "frozen" and frozen_lam is not None else lam,
                             gate))
    return specs


def data_record(data: BundleData, source: Mapping[str, Any]) -> dict[str, Any]:
    """What every piece of a comparison depends on through its data: the source (bundle, data folder, size
    overrides), a digest of every clean image and recognition target of every split, the degradation, the task
    and the package version."""
    tensors = {f"{split}.{key}": value for split, d in data.splits.items() for key, value in d.items()}
    return {**dict(source), "digest": tensor_digest(tensors), "degradation": data.degradation,
            "task_key": data.task_key, "num_classes": data.num_classes, "package": __version__}


def _architecture(network: nn.Module) -> str:
    """A digest of the network's printed structure and parameter shapes: a changed size is another network."""
    shapes = [(name, tuple(p.shape)) for name, p in network.state_dict().items()]
    return settings_digest({"repr": repr(network), "shapes": shapes})


def _trainer_for_measurements(ip: nn.Module, vr: nn.Module, strategy: str, device, task_key: str,
                              vr_supervision: str = "supervised", teacher: nn.Module | None = None) -> Any:
    from monai_gradprom.engines import GradPromTrainer

    trainer = GradPromTrainer(
        device=device, max_epochs=1, train_data_loader=[], ip_network=ip,
        ip_optimizer=torch.optim.SGD(ip.parameters(), lr=0.0), vr_network=vr,
        vr_optimizer=torch.optim.SGD(vr.parameters(), lr=0.0), strategy=strategy, vr_target_key=task_key,
        vr_supervision=vr_supervision, vr_teacher=copy.deepcopy(teacher) if teacher is not None else None,
    )
    if vr_supervision == "unsupervised":
        trainer._make_teachers()  # normally at STARTED; measurements run no epoch
    return trainer


def calibrate(ip: nn.Module, vr: nn.Module, stream: DegradedStream, num_batches: int, device,
              task_key: str = "label", vr_supervision: str = "supervised", teacher: nn.Module | None = None) -> float:
    """r = ||grad L_VR|| / ||grad L_IP|| over IP's parameters through ``vr`` as it is now (held fixed), averaged
    over ``num_batches`` batches of the stream (from steps training never reaches). Unsupervised, VR(IP(x)) is
    matched to ``teacher`` on the clean image (default: ``vr`` itself)."""
    held = copy.deepcopy(vr).eval()
    trainer = _trainer_for_measurements(copy.deepcopy(ip), held, "frozen", device, task_key, vr_supervision,
                                        vr if teacher is None else teacher)
    batches = [stream.batch(_MEASURE_STEP + i) for i in range(num_batches)]
    return float(trainer.measure_gradient_ratio(batches, num_batches=num_batches))


def gate_noise(ip: nn.Module, vr: nn.Module, stream: DegradedStream, num_batches: int, device,
               task_key: str = "label", vr_supervision: str = "supervised",
               teacher: nn.Module | None = None) -> dict[str, Any]:
    """How often a minibatch's cos(G_IP, G_VR) has the sign of the cosine over all ``num_batches`` batches."""
    from monai_gradprom.analysis.gate_agreement import gate_sign_agreement

    trainer = _trainer_for_measurements(copy.deepcopy(ip), copy.deepcopy(vr), "gradprom", device, task_key,
                                        vr_supervision, teacher)
    batches = [stream.batch(_MEASURE_STEP + 10_000 + i) for i in range(num_batches)]
    result = gate_sign_agreement(trainer, batches)
    return {k: (float(v) if k != "cosines" else [float(c) for c in v]) for k, v in result.items()}


@dataclass
class Judges:
    """The seed's two clean-trained recognizers, their stored records and training metadata."""

    networks: dict[str, nn.Module]
    records: dict[str, dict[str, Any]]
    meta: dict[str, dict[str, Any]]
    min_score: float


@dataclass
class SeedContext:
    data: BundleData
    settings: ProtocolSettings
    seed: int
    store: PieceStore
    data_rec: dict[str, Any]
    device: Any = "cpu"
    validation: dict[str, torch.Tensor] = field(default_factory=dict)
    test: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"seed{self.seed}"

    def arm_folder(self, arm: Arm) -> str:
        """``seed0/cascade-naive-supervised``: an arm's calibration, gate noise and runs."""
        return f"{self.folder}/{arm.name.replace('/', '-')}"


def _context(data: BundleData, settings: ProtocolSettings, seed: int, store: PieceStore, data_rec: Mapping[str, Any],
             device) -> SeedContext:
    ctx = SeedContext(data, settings, seed, store, dict(data_rec), device)
    ctx.validation = degrade_fixed(data.splits["validation"], data.degradation, settings.eval_seed)
    ctx.test = degrade_fixed(data.splits["test"], data.degradation, settings.eval_seed + 1)
    return ctx


def _timed(fn):
    def wrapped():
        t0 = time.time()
        result = fn()
        result["seconds"] = round(time.time() - t0, 1)
        result["torch_threads"] = torch.get_num_threads()
        return result
    return wrapped


def train_judges(ctx: SeedContext) -> Judges:
    """The fixed judge (the bundle's VR) and the unseen judge, trained on clean images until they recognise
    (stored per seed; a stored judge below today's ``min_clean_score`` is an error, not a silent reuse)."""
    data, s = ctx.data, ctx.settings
    train, val_clean = data.splits["training"], data.splits["validation"]
    task, k = data.task_key, data.num_classes
    min_score = s.min_clean_score
    if min_score is None:
        min_score = default_min_clean_score(task, k, train[task] if task == "label" else None)
    torch.manual_seed(ctx.seed)
    fixed = build_network(data.parser, "vr_network_def", ctx.device)
    unseen = build_unseen_recognizer(task, data.spatial_dims, int(train["clean"].shape[1]), k).to(ctx.device)
    networks, records, meta = {"fixed_vr": fixed, "unseen_vr": unseen}, {}, {}
    for name, net, salt in (("fixed_vr", fixed, 1), ("unseen_vr", unseen, 2)):
        record = {"data": ctx.data_rec, "architecture": _architecture(net), "seed": ctx.seed * 10 + salt,
                  "vr_lr": s.vr_lr, "vr_batch_size": s.vr_batch_size, "vr_max_steps": s.vr_max_steps,
                  "vr_eval_every": s.vr_eval_every}

        def train_judge(name=name, net=net, salt=salt):
            return pretrain_judge(net, name, train, val_clean, task, k, 0.0, s.vr_max_steps, s.vr_eval_every,
                                  s.vr_batch_size, s.vr_lr, ctx.seed * 10 + salt, ctx.device)

        meta[name] = ctx.store.network_piece(ctx.folder, f"judge_{name}", record, net, _timed(train_judge))
        records[name] = record
        net.eval()
        if not meta[name]["clean_score"] >= min_score:
            raise JudgeNotReadyError(
                f"recognizer {name!r} (seed {ctx.seed}) reached a best clean validation score of "
                f"{meta[name]['clean_score']:.3f} in {meta[name]['steps_trained']} steps, below the required "
                f"{min_score:.3f}: a comparison judged by it would not mean anything. Train longer (vr_max_steps), "
                "use more data, or lower min_clean_score knowingly.")
    return Judges(networks, records, meta, min_score)


def _start_ip(ctx: SeedContext, arm: Arm) -> tuple[nn.Module, dict[str, Any], dict[str, Any], int]:
    """The arm's starting IP: the plain IP at its plateau (finetune) or after the shared warm-up (cascade), with
    its record, metadata and the training step the runs continue from."""
    data, s = ctx.data, ctx.settings
    torch.manual_seed(ctx.seed + 100)
    ip = build_network(data.parser, "ip_network_def", ctx.device)
    stream = DegradedStream(data.splits["training"], data.degradation, s.batch_size, ctx.seed)
    common = {"data": ctx.data_rec, "architecture": _architecture(ip), "seed": ctx.seed, "batch_size": s.batch_size,
              "eval_seed": s.eval_seed}
    if arm.regime == "finetune":
        record = {**common, "kind": "plateau", "ip_lr": s.ip_lr, "eval_every": s.eval_every,
                  "ip_max_steps": s.ip_max_steps, "plateau_db": s.plateau_db, "patience": s.patience}
        meta = ctx.store.network_piece(ctx.folder, "plain_ip", record, ip, _timed(
            lambda: train_plain_to_plateau(ip, stream, ctx.validation, s.ip_lr, s.eval_every, s.ip_max_steps,
                                           s.plateau_db, s.patience, ctx.device)))
    else:
        record = {**common, "kind": "warmup", "warmup_lr": s.warmup_lr, "warmup_steps": s.warmup_steps}
        meta = ctx.store.network_piece(ctx.folder, "warmup_ip", record, ip, _timed(
            lambda: train_warmup(ip, stream, s.warmup_lr, s.warmup_steps, ctx.validation, ctx.device)))
    return ip.eval(), record, meta, int(meta["steps"])


def _start_vr(ctx: SeedContext, arm: Arm, judges: Judges) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The co-trained VR's starting point: the fixed judge, or a naive VR (random, or briefly pretrained)."""
    if arm.vr_start == "judge":
        return judges.networks["fixed_vr"], {"judge": judges.records["fixed_vr"]}, {
            "clean_score": judges.meta["fixed_vr"]["clean_score"]}
    data, s = ctx.data, ctx.settings
    torch.manual_seed(ctx.seed + 200)
    vr = build_network(data.parser, "vr_network_def", ctx.device)
    record = {"data": ctx.data_rec, "architecture": _architecture(vr), "seed": ctx.seed + 200,
              "naive_vr_steps": s.naive_vr_steps, **({"vr_lr": s.vr_lr, "vr_batch_size": s.vr_batch_size}
                                                      if s.naive_vr_steps else {})}

    def make():
        if s.naive_vr_steps:
            return pretrain_judge(vr, "naive VR", data.splits["training"], data.splits["validation"], data.task_key,
                                  data.num_classes, 0.0, s.naive_vr_steps, s.naive_vr_steps, s.vr_batch_size,
                                  s.vr_lr, ctx.seed + 200, ctx.device)
        from monai_gradprom.experiments.recognizers import clean_score

        return {"clean_score": clean_score(vr, data.splits["validation"], data.task_key, data.num_classes),
                "steps": 0, "steps_trained": 0}

    meta = ctx.store.network_piece(ctx.folder, "naive_vr", record, vr, _timed(make))
    return vr.eval(), {"naive": record}, meta


def run_arm(ctx: SeedContext, arm: Arm, judges: Judges) -> dict[str, Any]:
    """Every strategy of one arm for one seed: ``{"rows", "curves", "start", "vr_start", "calibration",
    "gate_noise", "plain_start"}``."""
    data, s = ctx.data, ctx.settings
    task, k = data.task_key, data.num_classes
    train = data.splits["training"]
    fixed = judges.networks["fixed_vr"]
    ip, ip_record, ip_meta, start_step = _start_ip(ctx, arm)
    vr, vr_record, vr_meta = _start_vr(ctx, arm, judges)
    stream = DegradedStream(train, data.degradation, s.batch_size, ctx.seed)
    sup = arm.vr_supervision
    folder = ctx.arm_folder(arm)

    def measure_ratios() -> dict[str, float]:
        # r through the VR that sends IP its recognition gradient: the fixed judge for frozen, the co-trained VR
        # at its start for joint / GradProm (a naive VR's gradients differ from the judge's by orders of magnitude)
        ratio = calibrate(ip, fixed, stream, s.calibration_batches, ctx.device, task, sup)
        cotrained = ratio if arm.vr_start == "judge" else calibrate(
            ip, vr, stream, s.calibration_batches, ctx.device, task, sup, teacher=fixed)
        return {"ratio": ratio, "ratio_cotrained": cotrained}

    calibration = ctx.store.json_piece(folder, "calibration", {
        "start": ip_record, "vr": vr_record, "judge": judges.records["fixed_vr"], "vr_supervision": sup,
        "calibration_batches": s.calibration_batches}, measure_ratios)
    noise = ctx.store.json_piece(folder, "gate_noise", {
        "start": ip_record, "vr": vr_record, "judge": judges.records["fixed_vr"], "vr_supervision": sup,
        "agreement_batches": s.agreement_batches}, lambda: gate_noise(
        ip, vr, stream, s.agreement_batches, ctx.device, task, sup, fixed))
    plain_start = evaluate_images(enhance(ip, ctx.test["image"], ctx.test["target"]), ctx.test, judges.networks, task, k)

    def curve_fn(net: nn.Module) -> dict[str, float]:
        images = enhance(net, ctx.validation["image"], ctx.validation["target"])
        metrics = enhancement_scores(net, ctx.validation)
        metrics["fixed_vr"] = float(score(fixed, images, ctx.validation[task], task, k).mean())
        return metrics

    steps = s.steps_of(arm)
    run_common = {"start": ip_record, "vr": vr_record, "judges": judges.records, "vr_supervision": sup,
                  "regime": arm.regime, "steps": steps, "start_step": start_step, "lr": s.finetune_lr,
                  "vr_lr": s.finetune_vr_lr, "batch_size": s.batch_size, "curve_every": s.curve_every,
                  "eval_seed": s.eval_seed}
    rows: list[dict[str, Any]] = []
    curves: dict[str, list] = {}

    def run(spec: RunSpec, rho: float | None) -> dict[str, Any]:
        tag = spec.name if rho is None else f"{spec.name}_rho{rho:g}"
        record = {**run_common, "run": {"name": spec.name, "strategy": spec.strategy, "lam": spec.lam,
                                        "gate": spec.gate, "options": spec.options, "rho": rho}}

        def make() -> dict[str, Any]:
            run_stream = DegradedStream(train, data.degradation, s.batch_size, ctx.seed, start=start_step)
            t0 = time.time()
            result = fine_tune(spec, ip, vr, run_stream, steps, s.finetune_lr, s.finetune_vr_lr, s.curve_every,
                               curve_fn, ctx.device, task, judge=fixed, vr_supervision=sup)
            images = enhance(result.ip, ctx.test["image"], ctx.test["target"])
            metrics = evaluate_images(images, ctx.test, judges.networks, task, k)
            own = None
            if result.vr is not None:
                own = float(score(result.vr, images, ctx.test[task], task, k).mean())
            elif spec.strategy == "frozen":
                own = metrics["fixed_vr"]  # frozen's VR is the fixed judge
            out = {"strategy": spec.name, "seed": ctx.seed, "rho": rho, "lam": spec.lam, **arm.as_dict(),
                   "arm": arm.name, **metrics, "own_vr": own, "gate_rate": result.gate_rate,
                   "mean_gate_weight": result.mean_gate_weight, "curve": result.curve,
                   "seconds": round(time.time() - t0, 1), "torch_threads": torch.get_num_threads()}
            logger.info("seed %d %s %s: PSNR %.2f fixed VR %.3f unseen VR %.3f own VR %s gate %s (%.0f s)", ctx.seed,
                        arm.name, tag, out["psnr"], out["fixed_vr"], out["unseen_vr"],
                        "-" if own is None else f"{own:.3f}", out["gate_rate"], out["seconds"])
            return out

        result = dict(ctx.store.json_piece(folder, f"run_{tag}", record, make))
        curves[tag] = result.pop("curve")
        rows.append(result)
        return result

    run(RunSpec("plain", "plain", 0.0), None)

    def lam_of(rho: float, ratio: float) -> float:
        return rho / ratio if ratio > 0 else 0.0

    for rho in s.rhos:
        lam = lam_of(rho, calibration["ratio_cotrained"])
        specs = base_specs(s.strategies, lam, frozen_lam=lam_of(rho, calibration["ratio"]))
        results = {spec.name: run(spec, rho) for spec in specs}
        if any(abs(rho - m) < 1e-12 for m in s.matched_rhos):
            for gate in ("hard", "soft"):
                gated = results.get(f"gradprom_{gate}")
                if gated is not None and gated["mean_gate_weight"] is not None:
                    run(RunSpec(f"joint_matched_{gate}", "joint", matched_lambda(lam, gated["mean_gate_weight"])), rho)
            hard, soft = results.get("gradprom_hard"), results.get("gradprom_soft")
            if hard and soft and hard["mean_gate_weight"]:
                lam_h = matched_lambda(lam, soft["mean_gate_weight"], hard["mean_gate_weight"])
                run(RunSpec("gradprom_hard_matched_soft", "gradprom", lam_h, "hard"), rho)
        if s.smoothed_gate_rho is not None and abs(rho - s.smoothed_gate_rho) < 1e-12:
            run(RunSpec("gradprom_hard_ema", "gradprom", lam, "hard", {"cos_ema": s.smoothed_gate_beta}), rho)
    return {"rows": rows, "curves": curves, "start": ip_meta, "vr_start": vr_meta, "plain_start": plain_start,
            "calibration": {**calibration, "lam_per_rho": {str(r): lam_of(r, calibration["ratio_cotrained"])
                                                           for r in s.rhos},
                            "frozen_lam_per_rho": {str(r): lam_of(r, calibration["ratio"]) for r in s.rhos}},
            "gate_noise": noise}


def run_seed(data: BundleData, settings: ProtocolSettings, seed: int, store: PieceStore,
             data_rec: Mapping[str, Any], device: torch.device | str = "cpu",
             arms: Sequence[Arm] | None = None) -> dict[str, Any]:
    """Everything the comparison measures for one seed (``arms``: a subset of the settings' arms):
    ``{"judges", "references", "arms": {arm name: run_arm(...)}}``."""
    ctx = _context(data, settings, seed, store, data_rec, device)
    judges = train_judges(ctx)
    out = {"judges": {n: {**m, "min_clean_score": judges.min_score} for n, m in judges.meta.items()},
           "references": reference_scores(ctx.test, judges.networks, data.task_key, data.num_classes), "arms": {}}
    for arm in arms if arms is not None else settings.arms():
        out["arms"][arm.name] = run_arm(ctx, arm, judges)
    return out


def summarize_references(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean over seeds of each reference score (the judges differ per seed; the images do not)."""
    out: dict[str, dict[str, float]] = {}
    for ref in ("noisy", "clean"):
        keys = set.intersection(*(set(s["references"][ref]) for s in per_seed.values()))
        out[ref] = {key: sum(s["references"][ref][key] for s in per_seed.values()) / len(per_seed) for key in sorted(keys)}
    return out
