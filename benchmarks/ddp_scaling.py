"""Time per training step with 1 process vs N processes (torchrun, gloo on CPU / NCCL on GPU), same global batch.

One process trains on the global batch with all threads; N processes each train on 1/N of it with
threads / N threads each, averaging every gradient term before the gate (what GradProm needs under DDP).

    python benchmarks/ddp_scaling.py                 # demo size, gradprom, 2 processes on CPU
    python benchmarks/ddp_scaling.py --strategy joint --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(args) -> None:
    import torch
    import torch.distributed as dist
    from ignite.engine import Events

    from monai_gradprom.distributed import broadcast_parameters
    from monai_gradprom.engines import GradPromTrainer
    from monai_gradprom.networks import SRResNet, build_recognizer

    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    torch.manual_seed(0)
    ip = SRResNet(channels=32, num_blocks=4)
    vr = build_recognizer("classification", "resnet18", widen_factor=0.25, conv1_t_stride=1, no_max_pool=True)
    broadcast_parameters(ip, vr)
    g = torch.Generator().manual_seed(1)
    target = torch.rand(args.global_batch, 1, 64, 64, generator=g)
    batch = {"image": (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1), "target": target,
             "label": torch.randint(0, 2, (args.global_batch,), generator=g)}
    shard = {k: v[rank::world] for k, v in batch.items()}
    trainer = GradPromTrainer("cpu", 1, [shard] * (args.warmup + args.steps), ip,
                              torch.optim.Adam(ip.parameters(), 1e-4), vr, torch.optim.Adam(vr.parameters(), 1e-4),
                              strategy=args.strategy)
    times, start = [], {}
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: start.__setitem__("t", time.perf_counter()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: times.append(time.perf_counter() - start["t"]))
    trainer.run()
    if rank == 0:
        print(json.dumps({"world": world, "median_s": statistics.median(times[args.warmup:])}))
    if distributed:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="gradprom")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--global-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    common = ["--worker", "--strategy", args.strategy, "--global-batch", str(args.global_batch),
              "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))

    def run(cmd, threads):
        out = subprocess.run(cmd, env=dict(env, OMP_NUM_THREADS=str(threads)), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    single = run([sys.executable, str(HERE), *common], args.threads)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    multi = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc),
                 "--master_addr", "127.0.0.1", "--master_port", str(port), str(HERE), *common],
                max(1, args.threads // args.nproc))
    print(f"strategy {args.strategy}, global batch {args.global_batch}, demo-size networks, {args.threads} threads")
    print(f"1 process : {single['median_s'] * 1e3:.1f} ms per step")
    print(f"{args.nproc} processes: {multi['median_s'] * 1e3:.1f} ms per step "
          f"({single['median_s'] / multi['median_s']:.2f}x the single-process speed)")


if __name__ == "__main__":
    main()
