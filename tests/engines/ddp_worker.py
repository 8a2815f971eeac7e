"""Worker for the DDP test: run under ``torchrun --nproc_per_node 2`` (gloo, CPU) or as a single process.

Every rank trains the same tiny IP / VR with GradPromTrainer on its shard of a fixed global batch and saves
its parameters; run without torchrun it trains on the whole global batch. The test compares the files.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from ignite.engine import Events

from monai_gradprom.distributed import broadcast_parameters
from monai_gradprom.engines import GradPromTrainer
from tests.conftest import NoBNClassifier as VR
from tests.conftest import TinyIP


def global_batches(steps: int, size: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(123)
    batches = []
    for _ in range(steps):
        target = torch.rand(size, 1, 12, 12, generator=g)
        image = (target + 0.3 * torch.randn(target.shape, generator=g)).clamp(0, 1)
        batches.append({"image": image, "target": target, "label": torch.randint(0, 2, (size,), generator=g)})
    return batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", default="gradprom")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1

    torch.manual_seed(rank)  # different initial weights per rank: broadcast_parameters must fix that
    ip, vr = TinyIP(), VR()
    broadcast_parameters(ip, vr)
    if not distributed:
        torch.manual_seed(0)
        ip, vr = TinyIP(), VR()
    batches = global_batches(args.steps)
    shard = [{k: v[rank::world] for k, v in b.items()} for b in batches]
    gates = []
    trainer = GradPromTrainer(
        "cpu", 1, shard, ip, torch.optim.SGD(ip.parameters(), lr=0.5), vr, torch.optim.SGD(vr.parameters(), lr=0.5),
        strategy=args.strategy, lam=1.0,
    )
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: gates.append(float(e.state.output.get("gate", -1))))
    trainer.run()
    state = {"ip": ip.state_dict(), "vr": vr.state_dict(), "gates": gates}
    torch.save(state, os.path.join(args.out, f"{args.strategy}_rank{rank}_of{world}.pt"))
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
