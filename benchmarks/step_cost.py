"""Cost of each strategy's training step, and the analytic bound for exact gating, measured in one run.

Exact GradProm needs G_IP and G_VR apart, which costs one extra backward through IP over joint training. The
bound is therefore ``1 + t(one IP backward) / t(one joint step)``, both measured here on the same model, batch
and machine. Targets (docs/performance.md): gradprom step <= bound x 1.05, peak memory <= 1.15 x joint.

Each strategy runs in its own subprocess so that peak memory (CUDA: max allocated; CPU: peak resident set
size of that process) belongs to that strategy alone.

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


def measure_strategy(args) -> dict:
    """Median step time and peak memory of one strategy (run in a fresh process)."""
    torch, device, ip, vr, transformer, batch = _setup(args)
    from ignite.engine import Events

    from monai_gradprom.engines import GradPromTrainer

    steps = args.warmup + args.steps
    uses_t = args.one == "transformer"
    trainer = GradPromTrainer(
        device=device, max_epochs=1, train_data_loader=[batch] * steps, ip_network=ip,
        ip_optimizer=torch.optim.Adam(ip.parameters(), 1e-4), vr_network=vr,
        vr_optimizer=torch.optim.Adam(vr.parameters(), 1e-4), strategy=args.one, lam=1e-4,
        transformer_network=transformer if uses_t else None,
        transformer_optimizer=torch.optim.Adam(transformer.parameters(), 1e-4) if uses_t else None,
        amp=args.amp, strategy_options={"every": args.every} if args.one == "gradprom_every" else None,
    )
    times: list[float] = []
    started = {}

    @trainer.on(Events.ITERATION_STARTED)
    def _start(engine):
        _sync(device)
        started["t"] = time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _stop(engine):
        _sync(device)
        times.append(time.perf_counter() - started["t"])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.run()
    # gradprom_every alternates one exact step with k - 1 cheap ones: its cost is the mean over whole cycles
    cycle = args.every if args.one == "gradprom_every" else 1
    measured = times[args.warmup:]
    cycles = [sum(measured[i:i + cycle]) / cycle for i in range(0, len(measured) - cycle + 1, cycle)]
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"strategy": args.one, "median_s": statistics.median(cycles), "peak_bytes": peak,
            "samples": len(measured), "images_per_s": SIZES[args.size]["batch"] / statistics.median(cycles)}


def measure_ip_backward(args) -> dict:
    """Median time of one backward through IP alone (the autograd.grad of L_IP that gating adds)."""
    torch, device, ip, vr, transformer, batch = _setup(args)
    from monai_gradprom.gradients import grads_of

    params = [p for p in ip.parameters() if p.requires_grad]
    ip.train()
    times = []
    for i in range(args.warmup + args.steps):
        loss = torch.nn.functional.mse_loss(ip(batch["image"]), batch["target"])
        _sync(device)
        start = time.perf_counter()
        grads_of(loss, params)
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return {"strategy": "ip_backward", "median_s": statistics.median(times), "peak_bytes": 0,
            "samples": len(times), "images_per_s": float("nan")}


def _child(args, name: str) -> dict:
    cmd = [sys.executable, __file__, "--one", name, "--size", args.size, "--device", args.device,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--every", str(args.every)]
    cmd += ["--amp"] if args.amp else []
    cmd += ["--channels-last"] if args.channels_last else []
    cmd += ["--compile"] if args.compile else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
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
        result = measure_ip_backward(args) if args.one == "ip_backward" else measure_strategy(args)
        print(json.dumps(result))
        return

    results = {name: _child(args, name) for name in ["ip_backward", *args.strategies.split(",")]}
    joint = results["joint"]
    bound = 1.0 + results["ip_backward"]["median_s"] / joint["median_s"]
    size = SIZES[args.size]
    print(f"step cost, size={args.size} {size}, device={args.device}, amp={args.amp}, "
          f"channels_last={args.channels_last}, compile={args.compile}, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
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
