"""The comparison protocol, one seed at a time: judges, plain IP to a plateau, calibrated lambda, gate noise,
then every strategy fine-tuned from the same IP, scored on the same degraded test images.

Each finished piece is saved under ``<output_dir>/seed<k>/`` (judges, plain IP, one JSON per run), so an
interrupted comparison picks up where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_gradprom.experiments.controls import matched_lambda
from monai_gradprom.experiments.data import BundleData, DegradedStream, degrade_fixed
from monai_gradprom.experiments.evaluation import enhancement_scores, evaluate_images, reference_scores
from monai_gradprom.experiments.recognizers import (
    build_unseen_recognizer,
    default_min_clean_score,
    pretrain_judge,
    score,
)
from monai_gradprom.experiments.schedule import RunSpec, fine_tune, train_plain_to_plateau
from monai_gradprom.experiments.settings import ProtocolSettings
from monai_gradprom.utils import atomic_save, atomic_write
from monai_gradprom.workflow import build_network, enhance

__all__ = ["run_seed", "base_specs", "calibrate", "gate_noise"]

logger = logging.getLogger("monai_gradprom.experiments")

# measurements draw their batches from steps that training never reaches, so its batches stay untouched
_MEASURE_STEP = 1_000_000_000

_STRATEGY_OF = {
    "plain": ("plain", "hard"),
    "frozen": ("frozen", "hard"),
    "joint": ("joint", "hard"),
    "gradprom_hard": ("gradprom", "hard"),
    "gradprom_soft": ("gradprom", "soft"),
}


def base_specs(strategies: tuple[str, ...], lam: float) -> list[RunSpec]:
    """The run of each named strategy at ``lam`` (``gradprom_hard`` -> strategy gradprom, gate hard)."""
    specs = []
    for name in strategies:
        if name not in _STRATEGY_OF:
            raise ValueError(f"unknown protocol strategy {name!r}; known: {sorted(_STRATEGY_OF)}")
        strategy, gate = _STRATEGY_OF[name]
        specs.append(RunSpec(name, strategy, lam, gate))
    return specs


def _trainer_for_measurements(ip: nn.Module, vr: nn.Module, strategy: str, device, task_key: str) -> Any:
    from monai_gradprom.engines import GradPromTrainer

    return GradPromTrainer(
        device=device, max_epochs=1, train_data_loader=[], ip_network=ip,
        ip_optimizer=torch.optim.SGD(ip.parameters(), lr=0.0), vr_network=vr,
        vr_optimizer=torch.optim.SGD(vr.parameters(), lr=0.0), strategy=strategy, vr_target_key=task_key,
    )


def calibrate(ip: nn.Module, vr: nn.Module, stream: DegradedStream, num_batches: int, device,
              task_key: str = "label") -> float:
    """r = ||grad L_VR|| / ||grad L_IP|| over IP's parameters, through the fixed judge (``frozen``'s view),
    averaged over ``num_batches`` batches of the stream (from steps training never reaches)."""
    trainer = _trainer_for_measurements(copy.deepcopy(ip), copy.deepcopy(vr).eval(), "frozen", device, task_key)
    batches = [stream.batch(_MEASURE_STEP + i) for i in range(num_batches)]
    return float(trainer.measure_gradient_ratio(batches, num_batches=num_batches))


def gate_noise(ip: nn.Module, vr: nn.Module, stream: DegradedStream, num_batches: int, device,
               task_key: str = "label") -> dict[str, Any]:
    """How often a minibatch's cos(G_IP, G_VR) has the sign of the cosine over all ``num_batches`` batches."""
    from monai_gradprom.analysis.gate_agreement import gate_sign_agreement

    trainer = _trainer_for_measurements(copy.deepcopy(ip), copy.deepcopy(vr), "gradprom", device, task_key)
    batches = [stream.batch(_MEASURE_STEP + 10_000 + i) for i in range(num_batches)]
    result = gate_sign_agreement(trainer, batches)
    return {k: (float(v) if k != "cosines" else [float(c) for c in v]) for k, v in result.items()}


def _cached_json(path: Path, make: Callable[[], dict]) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=1)))
    return value


def _cached_network(path: Path, network: nn.Module, train: Callable[[], dict], meta_path: Path) -> dict:
    """Load ``network``'s weights from ``path`` with the metadata saved beside them, or train and save both."""
    if path.is_file() and meta_path.is_file():
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return json.loads(meta_path.read_text())
    meta = train()
    atomic_save(network.state_dict(), path)
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return meta


def run_seed(data: BundleData, settings: ProtocolSettings, seed: int, output_dir: Path,
             device: torch.device | str = "cpu") -> dict[str, Any]:
    """Everything the comparison measures for one seed: ``{"rows", "references", "judges", "plain_ip",
    "calibration", "gate_noise", "curves"}``."""
    out_dir = Path(output_dir) / f"seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    parser, task, k = data.parser, data.task_key, data.num_classes
    train, val_clean, test_clean = data.splits["training"], data.splits["validation"], data.splits["test"]
    validation = degrade_fixed(val_clean, data.degradation, settings.eval_seed)
    test = degrade_fixed(test_clean, data.degradation, settings.eval_seed + 1)
    min_score = settings.min_clean_score
    if min_score is None:
        min_score = default_min_clean_score(task, k, train[task] if task == "label" else None)

    # 1. the judges, trained on clean images until they recognise well
    torch.manual_seed(seed)
    fixed = build_network(parser, "vr_network_def", device)
    in_channels = int(train["clean"].shape[1])
    unseen = build_unseen_recognizer(task, data.spatial_dims, in_channels, k).to(device)
    judges_meta = {}
    for name, net, salt in (("fixed_vr", fixed, 1), ("unseen_vr", unseen, 2)):
        def train_judge(name=name, net=net, salt=salt):
            return pretrain_judge(net, name, train, val_clean, task, k, min_score, settings.vr_max_steps,
                                  settings.vr_eval_every, settings.vr_batch_size, settings.vr_lr, seed * 10 + salt, device)
        judges_meta[name] = _cached_network(out_dir / f"{name}.pt", net, train_judge, out_dir / f"{name}.json")
        judges_meta[name]["min_clean_score"] = min_score
        net.eval()
    judges = {"fixed_vr": fixed, "unseen_vr": unseen}

    # 2. plain IP until its validation PSNR plateaus
    torch.manual_seed(seed + 100)
    ip = build_network(parser, "ip_network_def", device)
    plain_stream = DegradedStream(train, data.degradation, settings.batch_size, seed)
    plain_meta = _cached_network(
        out_dir / "plain_ip.pt", ip,
        lambda: train_plain_to_plateau(ip, plain_stream, validation, settings.ip_lr, settings.eval_every,
                                       settings.ip_max_steps, settings.plateau_db, settings.patience, device),
        out_dir / "plain_ip.json",
    )
    ip.eval()
    start_step = int(plain_meta["steps"])

    # 3. lambda from the measured gradient-norm ratio; 4. how noisy the minibatch gate is
    calibration = _cached_json(out_dir / "calibration.json", lambda: {
        "ratio": calibrate(ip, fixed, plain_stream, settings.calibration_batches, device, task)})
    noise = _cached_json(out_dir / "gate_noise.json", lambda: gate_noise(ip, fixed, plain_stream,
                                                                        settings.agreement_batches, device, task))

    references = reference_scores(test, judges, task, k)
    plain_start = evaluate_images(enhance(ip, test["image"], test["target"]), test, judges, task, k)

    def curve_fn(net: nn.Module) -> dict[str, float]:
        images = enhance(net, validation["image"], validation["target"])
        metrics = enhancement_scores(net, validation)
        metrics["fixed_vr"] = float(score(fixed, images, validation[task], task, k).mean())
        return metrics

    rows: list[dict[str, Any]] = []
    curves: dict[str, list] = {}

    def run(spec: RunSpec, rho: float | None) -> dict[str, Any]:
        tag = spec.name if rho is None else f"{spec.name}_rho{rho:g}"
        path = out_dir / "runs" / f"{tag}.json"
        if path.is_file():
            record = json.loads(path.read_text())
        else:
            stream = DegradedStream(train, data.degradation, settings.batch_size, seed, start=start_step)
            t0 = time.time()
            result = fine_tune(spec, ip, fixed, stream, settings.finetune_steps, settings.finetune_lr,
                               settings.finetune_vr_lr, settings.curve_every, curve_fn, device, task)
            metrics = evaluate_images(enhance(result.ip, test["image"], test["target"]), test, judges, task, k)
            record = {"strategy": spec.name, "seed": seed, "rho": rho, "lam": spec.lam, **metrics,
                      "gate_rate": result.gate_rate, "mean_gate_weight": result.mean_gate_weight,
                      "own_vr": None, "curve": result.curve, "seconds": round(time.time() - t0, 1)}
            if result.vr is not None:
                own = enhance(result.ip, test["image"], test["target"])
                record["own_vr"] = float(score(result.vr, own, test[task], task, k).mean())
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
            logger.info("seed %d %s: PSNR %.2f fixed VR %.3f unseen VR %.3f gate %s (%.0f s)", seed, tag,
                        record["psnr"], record["fixed_vr"], record["unseen_vr"], record["gate_rate"], record["seconds"])
        curves[tag] = record.pop("curve")
        rows.append(record)
        return record

    run(RunSpec("plain", "plain", 0.0), None)
    ratio = calibration["ratio"]
    for rho in settings.rhos:
        lam = rho / ratio if ratio > 0 else 0.0
        results = {spec.name: run(spec, rho) for spec in base_specs(settings.strategies, lam)}
        if any(abs(rho - m) < 1e-12 for m in settings.matched_rhos):
            for gate in ("hard", "soft"):
                gated = results.get(f"gradprom_{gate}")
                if gated is not None and gated["mean_gate_weight"] is not None:
                    run(RunSpec(f"joint_matched_{gate}", "joint", matched_lambda(lam, gated["mean_gate_weight"])), rho)
            hard, soft = results.get("gradprom_hard"), results.get("gradprom_soft")
            if hard and soft and hard["mean_gate_weight"]:
                lam_h = matched_lambda(lam, soft["mean_gate_weight"], hard["mean_gate_weight"])
                run(RunSpec("gradprom_hard_matched_soft", "gradprom", lam_h, "hard"), rho)
        if settings.smoothed_gate_rho is not None and abs(rho - settings.smoothed_gate_rho) < 1e-12:
            run(RunSpec("gradprom_hard_ema", "gradprom", lam, "hard", {"cos_ema": settings.smoothed_gate_beta}), rho)

    elapsed = time.time() - started
    logger.info("seed %d done in %.0f s", seed, elapsed)
    # the first complete pass's time is kept: a later invocation that only reads the saved runs takes seconds
    timing = _cached_json(out_dir / "timing.json", lambda: {"seconds": round(elapsed, 1), "torch_threads": torch.get_num_threads()})
    return {
        "timing": timing,
        "rows": rows, "references": references, "plain_start": plain_start, "judges": judges_meta,
        "plain_ip": plain_meta, "calibration": {**calibration, "lam_per_rho": {str(r): r / ratio for r in settings.rhos}},
        "gate_noise": noise, "curves": curves,
    }


def summarize_references(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean over seeds of each reference score (the judges differ per seed; the images do not)."""
    out: dict[str, dict[str, float]] = {}
    for ref in ("noisy", "clean"):
        keys = set.intersection(*(set(s["references"][ref]) for s in per_seed.values()))
        out[ref] = {key: sum(s["references"][ref][key] for s in per_seed.values()) / len(per_seed) for key in sorted(keys)}
    return out
