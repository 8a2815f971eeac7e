"""Bundle inference against the bare network, and sliding-window memory against image size, in one run.

1. Throughput: `enhance_directory` (what `python -m monai.bundle run inference` calls: read PNG, sliding window,
   write PNG atomically) on N images of the window's size, against N bare `network(x)` forward passes on the
   same tensors. Target: pipeline images/s >= 0.9 x bare.
2. Memory: peak resident memory of enhancing one grey image of 256, 512, 1024 and 2048 pixels a side (each in a
   fresh process, minus that process's resident memory after building the network and one warm-up window).
   Target: flat (the sliding window keeps the network's activations at one window batch; only the image and the
   output buffers grow, 4 bytes per pixel each).

    python benchmarks/inference_cost.py                   # demo model (SRResNet 32 x 4, 64-px window) on CPU
    python benchmarks/inference_cost.py --size paper --images 8 --sides ""   # paper model, throughput only
    python benchmarks/inference_cost.py --size paper --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "demo": {"channels": 32, "blocks": 4, "roi": 64},
    "paper": {"channels": 64, "blocks": 16, "roi": 128},
}
SIDES = (256, 512, 1024, 2048)


def _network(args):
    import torch

    from monai_gradprom.networks import SRResNet

    torch.manual_seed(0)
    size = SIZES[args.size]
    return SRResNet(channels=size["channels"], num_blocks=size["blocks"]).to(args.device).eval()


def throughput(args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from monai_gradprom.inference import enhance_directory

    network, roi = _network(args), SIZES[args.size]["roi"]
    rng = np.random.default_rng(0)
    arrays = [(rng.random((roi, roi)) * 255).astype(np.uint8) for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for i, array in enumerate(arrays):
            Image.fromarray(array, mode="L").save(inputs / f"{i:03d}.png")
        tensors = [torch.as_tensor(a, dtype=torch.float32, device=args.device)[None, None] / 255 for a in arrays]
        with torch.no_grad():  # warm-up of both paths
            network(tensors[0])
        enhance_directory(network, inputs, Path(tmp) / "warm", roi_size=(roi, roi), device=args.device,
                          progress=False)
        bare, pipeline = [], []
        for _ in range(args.repeats):  # alternate, so that machine noise hits both alike
            start = time.perf_counter()
            with torch.no_grad():
                for x in tensors:
                    network(x).cpu()
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            enhance_directory(network, inputs, Path(tmp) / "out", roi_size=(roi, roi), device=args.device,
                              progress=False)
            pipeline.append(time.perf_counter() - start)
    bare_rate, pipeline_rate = args.images / min(bare), args.images / min(pipeline)
    return {"bare_images_per_s": bare_rate, "pipeline_images_per_s": pipeline_rate,
            "ratio": pipeline_rate / bare_rate}


def memory_child(args) -> dict:
    """Peak RSS of enhancing one side x side image, over the RSS after building the network (fresh process)."""
    import numpy as np
    import torch
    from monai.inferers import SlidingWindowInferer

    from monai_gradprom.inference import enhance_array

    torch.set_num_threads(2)
    network, roi = _network(args), SIZES[args.size]["roi"]
    inferer = SlidingWindowInferer(roi_size=(roi, roi), sw_batch_size=4, overlap=0.25, mode="gaussian",
                                   padding_mode="replicate", device="cpu")
    enhance_array(network, np.random.default_rng(0).random((1, roi, roi), dtype=np.float32), inferer,
                  device=args.device)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    image = np.random.default_rng(1).random((1, args.side, args.side), dtype=np.float32)
    start = time.perf_counter()
    enhance_array(network, image, inferer, device=args.device)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else 0
    return {"side": args.side, "rss_over_baseline": max(peak - baseline, 0), "gpu_peak": gpu,
            "image_bytes": image.nbytes, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sides", default=",".join(map(str, SIDES)), help="image sides for the memory table ('' skips)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(memory_child(args)))
        return
    import torch

    torch.set_num_threads(2)
    result = {"throughput": throughput(args), "memory": []}
    t = result["throughput"]
    print(f"inference, size={args.size} {SIZES[args.size]}, device={args.device}, {args.images} images of the "
          f"window's size, best of {args.repeats}")
    print(f"bare forward {t['bare_images_per_s']:.1f} img/s; bundle pipeline (read, sliding window, write) "
          f"{t['pipeline_images_per_s']:.1f} img/s; ratio {t['ratio']:.3f} (target >= 0.9)")
    print(f"{'side':>6} {'image MB':>9} {'peak RSS over baseline MB':>26} {'GPU peak MB':>12} {'seconds':>8}")
    for side in [int(v) for v in args.sides.split(",") if v]:
        cmd = [sys.executable, __file__, "--size", args.size, "--device", args.device, "--side", str(side)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"side {side} failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        result["memory"].append(r)
        print(f"{side:>6} {r['image_bytes'] / 2**20:>9.1f} {r['rss_over_baseline'] / 2**20:>26.1f} "
              f"{r['gpu_peak'] / 2**20:>12.1f} {r['seconds']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
