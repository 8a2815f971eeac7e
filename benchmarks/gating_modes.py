"""How often the cheaper GradProm modes decide like the exact gate, and the PSNR they reach, on a real training run.

Trains the demo bundle (synthetic lesion phantom, `bundles/demo/train.json`) once per mode, in this process
through MONAI's own `monai.bundle.run`, every mode from the same pretrained VR and seed:

- `plain`, `joint`    references (no gate);
- `gradprom`          exact gate (the reference decision; about 1.5x joint's step cost);
- `gradprom_image`    gate from the cosine at IP's output (joint's cost), with `audit` on;
- `gradprom_every`    exact gate every k steps, reused in between, with `audit` on (k = 4 and 8).

With `audit`, each step also computes the exact gate and logs it (`gate_exact`) next to the mode's own decision
(`gate`); the agreement rate is the fraction of steps where they match (hard gate), also given over the steps
where the exact cosine is clearly away from zero (|cos| >= 0.05), where a wrong decision matters. The audit's extra backward
passes make these runs slower than the modes are: step costs come from `benchmarks/step_cost.py`.

    python benchmarks/gating_modes.py                 # demo bundle sizes, 6 epochs per mode (about 25 min on 2 CPU cores)
    python benchmarks/gating_modes.py --quick         # smoke sizes (about 2 min)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN, EVALUATE, SMOKE = (str(REPO / "bundles/demo" / f) for f in ("train.json", "evaluate.json", "smoke.json"))
MODES = {
    "plain": ("plain", {}),  # references: no recognition gradient, and joint training (the cost baseline)
    "joint": ("joint", {}),
    "gradprom": ("gradprom", {}),
    "gradprom_image": ("gradprom_image", {"audit": True}),
    "gradprom_every:4": ("gradprom_every", {"every": 4, "audit": True}),
    "gradprom_every:8": ("gradprom_every", {"every": 8, "audit": True}),
}


def _scalars(log_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return {}
    return {e.step: e.value for e in events.Scalars(tag)}


def run_mode(name: str, out: Path, files: list[str], extra: dict, vr_checkpoint: Path | None) -> dict:
    from monai.bundle import run

    strategy, options = MODES[name]
    out.mkdir(parents=True, exist_ok=True)
    if vr_checkpoint is not None:  # every mode starts from the same pretrained VR
        shutil.copy(vr_checkpoint, out / "vr_pretrained.pt")
    overrides = {"output_dir": str(out), "strategy": strategy, "strategy_options": options, **extra}
    start = time.perf_counter()
    run(run_id="training", config_file=files, **overrides)
    wall = time.perf_counter() - start
    run(run_id="evaluating", config_file=files[:1] + [EVALUATE] + files[1:], **overrides)
    metrics = json.loads((out / "metrics.json").read_text())
    gate, exact = _scalars(out / "tensorboard", "gate"), _scalars(out / "tensorboard", "gate_exact")
    steps = sorted(set(gate) & set(exact))
    agree = [gate[s] == exact[s] for s in steps]
    cos_exact = _scalars(out / "tensorboard", "cos_exact")
    clear = [gate[s] == exact[s] for s in steps if abs(cos_exact.get(s, 0.0)) >= 0.05]
    return {
        "mode": name, "train_wall_s": wall, "psnr": metrics["psnr"], "ssim": metrics["ssim"],
        "accuracy": metrics.get("accuracy"), "gate_rate": sum(gate.values()) / max(len(gate), 1),
        "exact_gate_rate": sum(exact.values()) / len(exact) if exact else None,
        "agreement": sum(agree) / len(agree) if agree else None, "audited_steps": len(steps),
        "agreement_clear": sum(clear) / len(clear) if clear else None, "clear_steps": len(clear),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the demo's smoke sizes")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--epochs", type=int, help="override max_epochs")
    parser.add_argument("--out", type=Path, default=REPO / "outputs/bench_gating")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    files = [TRAIN, SMOKE] if args.quick else [TRAIN]
    extra = {"max_epochs": args.epochs} if args.epochs else {}
    results, vr_checkpoint = [], None
    for name in args.modes.split(","):
        out = args.out / name.replace(":", "_k")
        print(f"training {name} -> {out}", flush=True)
        results.append(run_mode(name, out, files, extra, vr_checkpoint))
        vr_checkpoint = vr_checkpoint or out / "vr_pretrained.pt"
    print(f"\ngating modes on the demo bundle ({'smoke sizes' if args.quick else 'demo sizes'}), hard gate, "
          "same seed and pretrained VR")
    print(f"{'mode':<18} {'agreement':>9} {'|cos|>=.05':>10} {'gate rate':>9} {'exact rate':>10} {'PSNR':>7} "
          f"{'SSIM':>6} {'acc':>6} {'train s':>8}")
    for r in results:
        gated = r["mode"].startswith("gradprom")
        agreement = "-" if not gated else "exact" if r["agreement"] is None else f"{r['agreement']:.3f}"
        gate_rate = f"{r['gate_rate']:.3f}" if gated else "-"
        exact = "-" if r["exact_gate_rate"] is None else f"{r['exact_gate_rate']:.3f}"
        accuracy = float("nan") if r["accuracy"] is None else r["accuracy"]
        clear = "-" if r["agreement_clear"] is None else f"{r['agreement_clear']:.3f}"
        print(f"{r['mode']:<18} {agreement:>9} {clear:>10} {gate_rate:>9} {exact:>10} {r['psnr']:>7.2f} "
              f"{r['ssim']:>6.3f} {accuracy:>6.3f} {r['train_wall_s']:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
