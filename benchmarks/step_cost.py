"""Cost of each strategy's training step, and the analytic bound for exact gating, measured in one run.

Exact GradProm needs G_IP and G_VR apart, which costs one extra backward through IP over joint training. The
bound is therefore ``1 + t(one IP backward) / t(one joint step)``, both measured here on the same model, batch
and machine. Targets (docs/performance.md): gradprom step <= bound x 1.05, peak memory <= 1.15 x joint.

Times are measured in one process with the strategies interleaved step by step (a shared machine's drift hits
all alike); peak memory (CUDA: max allocated; CPU: peak resident set size) in one fresh process per strategy,
so that it belongs to that strategy alone.

    python benchmarks/step_cost.py                      # demo size on CPU
    python benchmarks/step_cost.py --size paper --device cuda
    python benchmarks/step_cost.py --channels-last        # or --compile: the same table with that option
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    # IP width x depth, image size, batch: the demo bundle's model and the papers' (SRResNet 64 x 16, batch 8)
    "demo": {"channels": 32, "blocks": 4, "image_size": 64, "batch": 8},
    "paper": {"channels": 64, "blocks": 16, "image_size": 128, "batch": 8},
    "tiny": {"channels": 8, "blocks": 1, "image_size": 32, "batch": 4},
}
STRATEGIES = ("plain", "joint", "frozen", "transformer", "gradprom", "pcgrad", "gradprom_image", "gradprom_every")


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(args):
    import torch

    from monai_gradprom.networks import RATransformer, SRResNet, build_recognizer

    torch.manual_seed(0)
    device = torch.device(args.device)
    size = SIZES[args.size]
    ip = SRResNet(channels=size["channels"], num_blocks=size["blocks"]).to(device)
    vr = build_recognizer("classification", "resnet18", num_classes=2, widen_factor=0.25, conv1_t_stride=1,
                          no_max_pool=True).to(device)
    n, s = size["batch"], size["image_size"]
    target = torch.rand(n, 1, s, s, device=device)
    batch = {"image": (target + 0.1 * torch.randn_like(target)).clamp(0, 1), "target": target,
             "label": torch.randint(0, 2, (n,), device=device)}
    transformer = RATransformer(channels=16, num_blocks=2).to(device)
    if args.channels_last:  # NHWC activations: faster convolutions on some CPUs / GPUs (tensor cores)
        ip, vr, transformer = (m.to(memory_format=torch.channels_last) for m in (ip, vr, transformer))
        batch = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}
    if args.compile:  # the networks, not the step: the two-gradient path is autograd.grad over compiled graphs
        # gating backpropagates twice through the same graph (retain_graph=True), which compiled backward
        # functions refuse while they donate their saved buffers; turning donation off is the documented fix
        import torch._functorch.config

        torch._functorch.config.donated_buffer = False
        ip, vr = torch.compile(ip), torch.compile(vr)
    return torch, device, ip, vr, transformer, batch


def _trainer(args, name: str, ip, vr, transformer, batch, steps: int):
    import copy

    import torch

    from monai_gradprom.engines import GradPromTrainer

    ip, vr = copy.deepcopy(ip), copy.deepcopy(vr)
    uses_t = name == "transformer"
    t = copy.deepcopy(transformer) if uses_t else None
    return GradPromTrainer(
        device=torch.device(args.device), max_epochs=1, train_data_loader=[batch] * steps, ip_network=ip,
        ip_optimizer=torch.optim.Adam(ip.parameters(), 1e-4), vr_network=vr,
        vr_optimizer=torch.optim.Adam(vr.parameters(), 1e-4), strategy=name, lam=1e-4,
        transformer_network=t, transformer_optimizer=torch.optim.Adam(t.parameters(), 1e-4) if uses_t else None,
        amp=args.amp, strategy_options={"every": args.every} if name == "gradprom_every" else None,
    )


def measure_times(args) -> dict:
    """Step times of every strategy and of one IP backward, interleaved in one process: round r runs one step of
    each in turn, so slow drifts of a shared machine hit all of them alike. A strategy's time is the median over
    rounds; gradprom_every (one exact step, then k - 1 cheap ones) is timed over whole cycles of k steps."""
    torch, device, ip, vr, transformer, batch = _setup(args)
    from ignite.engine import Events

    from monai_gradprom.gradients import grads_of

    names = args.strategies.split(",")
    trainers = {name: _trainer(args, name, ip, vr, transformer, batch, 1) for name in names}
    times: dict[str, list[float]] = {name: [] for name in [*names, "ip_backward"]}
    started = {}
    for name, trainer in trainers.items():
        trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: (_sync(device), started.update(t=time.perf_counter())))
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED,
            lambda e, name=name: (_sync(device), times[name].append(time.perf_counter() - started["t"])),
        )
    ip_alone = trainers[names[0]].ip_network
    params = [p for p in ip_alone.parameters() if p.requires_grad]
    for _ in range(args.warmup + args.steps):
        for name in names:
            cycle = args.every if name == "gradprom_every" else 1
            for _ in range(cycle):
                trainers[name].run()
        loss = torch.nn.functional.mse_loss(ip_alone(batch["image"]), batch["target"])
        _sync(device)
        begin = time.perf_counter()
        grads_of(loss, params)
        _sync(device)
        times["ip_backward"].append(time.perf_counter() - begin)
    out = {}
    for name, values in times.items():
        cycle = args.every if name == "gradprom_every" else 1
        per_round = [sum(values[i:i + cycle]) / cycle for i in range(0, len(values), cycle)][args.warmup:]
        out[name] = {"median_s": statistics.median(per_round), "samples": len(per_round),
                     "images_per_s": SIZES[args.size]["batch"] / statistics.median(per_round)}
    return out


def measure_memory(args) -> dict:
    """Peak memory of one strategy over a few steps, alone in a fresh process (CUDA: max allocated; CPU: peak
    resident set size, which includes the Python / torch runtime)."""
    torch, device, ip, vr, transformer, batch = _setup(args)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cycle = args.every if args.one == "gradprom_every" else 1
    _trainer(args, args.one, ip, vr, transformer, batch, 2 * cycle + 1).run()
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"strategy": args.one, "peak_bytes": peak}


def _child(args, mode: str) -> dict:
    cmd = [sys.executable, __file__, "--one", mode, "--size", args.size, "--device", args.device,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--every", str(args.every),
           "--strategies", args.strategies]
    cmd += ["--amp"] if args.amp else []
    cmd += ["--channels-last"] if args.channels_last else []
    cmd += ["--compile"] if args.compile else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--every", type=int, default=4, help="k of gradprom_every (exact gate every k steps)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--channels-last", action="store_true", help="networks and batch in channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile IP and VR (first steps compile)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_times(args) if args.one == "times" else measure_memory(args)))
        return

    results = _child(args, "times")
    for name in args.strategies.split(","):
        results[name]["peak_bytes"] = _child(args, name)["peak_bytes"]
    joint = results["joint"]
    bound = 1.0 + results["ip_backward"]["median_s"] / joint["median_s"]
    size = SIZES[args.size]
    print(f"step cost, size={args.size} {size}, device={args.device}, amp={args.amp}, "
          f"channels_last={args.channels_last}, compile={args.compile}, "
          f"median of {args.steps} interleaved rounds after {args.warmup} warm-up")
    print(f"one IP backward: {results['ip_backward']['median_s'] * 1e3:.1f} ms; joint step: "
          f"{joint['median_s'] * 1e3:.1f} ms; analytic bound for exact gating: {bound:.3f} x joint")
    print(f"{'strategy':<15} {'step ms':>9} {'img/s':>7} {'x joint':>8} {'x bound':>8} {'peak MB':>9} {'x joint':>8}")
    for name in args.strategies.split(","):
        r = results[name]
        ratio = r["median_s"] / joint["median_s"]
        memory = r["peak_bytes"] / joint["peak_bytes"] if joint["peak_bytes"] else float("nan")
        label = f"{name} k={args.every}" if name == "gradprom_every" else name
        print(f"{label:<15} {r['median_s'] * 1e3:>9.1f} {r['images_per_s']:>7.1f} {ratio:>8.3f} {ratio / bound:>8.3f} "
              f"{r['peak_bytes'] / 2**20:>9.1f} {memory:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps({"bound": bound, "results": results, "args": vars(args)}, indent=2,
                                        default=str))


if __name__ == "__main__":
    main()
