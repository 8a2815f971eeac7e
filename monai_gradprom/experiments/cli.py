"""``python -m monai_gradprom.experiments compare``: the comparison protocol on any bundle's data.

    python -m monai_gradprom.experiments compare --bundle demo --output_dir outputs/compare/demo --quick
    python -m monai_gradprom.experiments compare --bundle covid_ct --dataset_dir /data/COVID-CT --output_dir O
    python -m monai_gradprom.experiments compare --bundle mni152 --output_dir O --seeds 3 --scale cpu
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from monai_gradprom.experiments.data import load_bundle
from monai_gradprom.experiments.mni152 import SOURCES
from monai_gradprom.experiments.protocol import run_seed, summarize_references
from monai_gradprom.experiments.recognizers import default_min_clean_score
from monai_gradprom.experiments.report import write_results
from monai_gradprom.experiments.settings import SCALES, preset
from monai_gradprom.workflow import parse_overrides

__all__ = ["main", "compare"]

logger = logging.getLogger("monai_gradprom.experiments")


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs visible, torch threads {torch.get_num_threads()}"


def compare(bundle: str, output_dir: str | os.PathLike, dataset_dir: str | None = None, scale: str = "cpu",
            seeds: int | Sequence[int] | None = None, device: str = "cpu", overrides: dict[str, Any] | None = None,
            command: str = "", **settings_changes: Any) -> dict[str, Any]:
    """Run the protocol for every seed and write ``results.json`` / ``results.md`` / figures to ``output_dir``."""
    started = time.time()
    if seeds is not None:  # a count (seeds 0..n-1) or the seeds themselves
        settings_changes["seeds"] = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    settings = preset(scale, **settings_changes)
    data = load_bundle("demo" if bundle in SOURCES else bundle, dataset_dir,
                       {**settings.bundle_overrides, **SOURCES.get(bundle, {})}, overrides)
    output_dir = Path(output_dir)
    per_seed = {}
    for seed in settings.seeds:
        per_seed[seed] = run_seed(data, settings, seed, output_dir, device)
    rows = [row for info in per_seed.values() for row in info["rows"]]
    min_score = settings.min_clean_score
    if min_score is None:
        task = data.task_key
        min_score = default_min_clean_score(task, data.num_classes, data.splits["training"][task] if task == "label" else None)
    sizes = ", ".join(f"{len(data.splits[s]['clean'])} {s}" for s in ("training", "validation", "test"))
    shape = "x".join(str(n) for n in data.splits["training"]["clean"].shape[2:])
    notes = []
    if settings.min_clean_score is not None and settings.min_clean_score <= 0:
        notes.append("min_clean_score was set to 0: the judges were NOT required to recognise anything. "
                     "Use this only to smoke-test the pipeline; the numbers above say nothing about the methods.")
    payload = {
        "bundle": bundle, "dataset_dir": dataset_dir, "degradation": data.degradation, "task_key": data.task_key,
        "num_classes": data.num_classes, "sizes": f"{sizes} images of {shape} pixels",
        "settings": settings.as_dict(), "min_clean_score": min_score,
        "references": summarize_references(per_seed), "rows": rows,
        "per_seed": {str(s): {k: v for k, v in info.items() if k not in ("rows", "curves")} for s, info in per_seed.items()},
        "curves_first_seed": per_seed[settings.seeds[0]]["curves"],
        "hardware": _hardware(), "wall_minutes": (time.time() - started) / 60, "notes": notes,
    }
    write_results(output_dir, payload, command or f"compare --bundle {bundle}")
    return payload


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monai_gradprom.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="compare the strategies on a bundle's data (results.json / results.md)")
    c.add_argument("--bundle", required=True,
                   help="a bundle name (demo, isic2018, covid_ct, lizard, camus), mni152 / mni152_seg, or a path")
    c.add_argument("--dataset_dir", default=None, help="the data set's folder (dataset bundles)")
    c.add_argument("--output_dir", required=True)
    c.add_argument("--quick", action="store_true", help="one seed, rho 1, short schedule (< 5 min on 2 CPU cores)")
    c.add_argument("--scale", choices=SCALES, default=None, help="cpu (default) or paper (the papers' sizes, GPU)")
    c.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; 1 with --quick)")
    c.add_argument("--rho", type=float, nargs="+", default=None, help="recognition pull relative to fidelity")
    c.add_argument("--finetune_steps", type=int, default=None)
    c.add_argument("--min_clean_score", type=float, default=None,
                   help="score a judge must reach on clean validation images (default: see docs/experiments.md)")
    c.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    c.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE", help="bundle config overrides")
    c.add_argument("--protocol", nargs="*", default=None, metavar="KEY=VALUE",
                   help="protocol settings (monai_gradprom.experiments.ProtocolSettings), e.g. vr_max_steps=3000")
    c.add_argument("--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO)
    if args.quick and args.scale not in (None, "quick"):
        raise SystemExit("--quick and --scale are exclusive")
    scale = "quick" if args.quick else (args.scale or "cpu")
    changes: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in parse_overrides(args.protocol).items()}
    if args.rho:
        changes["rhos"] = tuple(args.rho)
    if args.finetune_steps is not None:
        changes["finetune_steps"] = args.finetune_steps
    if args.min_clean_score is not None:
        changes["min_clean_score"] = args.min_clean_score
    seeds = changes.pop("seeds", args.seeds)  # --protocol seeds=[1] runs seed 1 alone (e.g. one process per seed)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m monai_gradprom.experiments " + " ".join(shlex.quote(a) for a in argv_list)
    payload = compare(args.bundle, args.output_dir, args.dataset_dir, scale, seeds, args.device,
                      parse_overrides(args.set), command, **changes)
    print(f"wrote {Path(args.output_dir) / 'results.md'} ({payload['wall_minutes']:.1f} min)")
    return 0
