"""``python -m monai_gradprom.experiments compare``: the comparison protocol on any bundle's data.

    python -m monai_gradprom.experiments compare --bundle demo --output_dir outputs/compare/demo --quick
    python -m monai_gradprom.experiments compare --bundle demo --output_dir O --regime cascade --vr_supervision unsupervised
    python -m monai_gradprom.experiments compare --bundle covid_ct --dataset_dir /data/COVID-CT --output_dir O
    python -m monai_gradprom.experiments compare --bundle mni152 --output_dir O --seeds 3 --scale cpu
    python -m monai_gradprom.experiments overview O1/results.json O2/results.json --out docs/results.md
    python -m monai_gradprom.experiments report O    # results.md and figures again from O/results.json
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from monai_gradprom.config import ConfigError, lock_output_dir, release_output_dir
from monai_gradprom.experiments.data import load_bundle
from monai_gradprom.experiments.mni152 import SOURCES
from monai_gradprom.experiments.protocol import data_record, summarize_references
from monai_gradprom.experiments.recognizers import JudgeNotReadyError
from monai_gradprom.experiments.report import write_results
from monai_gradprom.experiments.runner import default_jobs, run_units
from monai_gradprom.experiments.settings import REGIMES, SCALES, VR_STARTS, VR_SUPERVISIONS, as_tuple, preset
from monai_gradprom.experiments.store import ForeignFolderError, PieceStore, StalePieceError, claim_folder
from monai_gradprom.workflow import parse_overrides

__all__ = ["main", "compare", "SetupError"]

logger = logging.getLogger("monai_gradprom.experiments")


class SetupError(ValueError):
    """A setting, option, bundle or data folder that no comparison can run with, found before anything trains."""


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs visible"


def compare(bundle: str, output_dir: str | os.PathLike, dataset_dir: str | None = None, scale: str = "cpu",
            seeds: int | Sequence[int] | None = None, device: str = "cpu", overrides: dict[str, Any] | None = None,
            command: str = "", jobs: int | None = None, **settings_changes: Any) -> dict[str, Any]:
    """Run the protocol for every seed and arm and write ``results.json`` / ``results.md`` / figures to
    ``output_dir``. Settings are checked before anything is loaded or trained; the folder is locked while the
    comparison runs and refused when it holds another source's comparison."""
    started = time.time()
    try:
        if seeds is not None:  # a count (seeds 0..n-1) or the seeds themselves
            if isinstance(seeds, bool) or (isinstance(seeds, int) and seeds < 1):
                raise ValueError(f"--seeds {seeds!r}: at least one seed is needed")
            settings_changes["seeds"] = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
        settings = preset(scale, **settings_changes).validate()
        if jobs is not None and (isinstance(jobs, bool) or jobs < 1):
            raise ValueError(f"--jobs {jobs!r}: at least one process is needed")
    except (ValueError, TypeError) as err:
        raise SetupError(str(err)) from err
    source = {"bundle": bundle, "dataset_dir": None if dataset_dir is None else str(Path(dataset_dir).resolve())}
    scale_overrides = {**settings.bundle_overrides, **SOURCES.get(bundle, {})}
    load_args = ("demo" if bundle in SOURCES else bundle, dataset_dir, scale_overrides, overrides)
    try:
        data = load_bundle(*load_args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise SetupError(err.args[0] if isinstance(err, KeyError) and err.args else str(err)) from err
    output_dir = Path(output_dir)
    lock_output_dir(output_dir)
    try:
        claim_folder(output_dir, source)
        data_rec = data_record(data, {**source, "scale_overrides": scale_overrides, "overrides": dict(overrides or {})})
        units = len(settings.seeds) * len(dict.fromkeys(a.regime for a in settings.arms()))
        jobs = default_jobs(units) if jobs is None else jobs
        per_seed = run_units(data, load_args, settings, PieceStore(output_dir), data_rec, device, jobs)
        payload = _payload(bundle, dataset_dir, data, settings, per_seed, started, jobs)
        payload["command"] = command or f"compare --bundle {bundle}"
        write_results(output_dir, payload, payload["command"])
    finally:
        release_output_dir(output_dir)
    return payload


def _payload(bundle, dataset_dir, data, settings, per_seed, started, jobs) -> dict[str, Any]:
    rows = [row for info in per_seed.values() for arm in info["arms"].values() for row in arm["rows"]]
    min_score = next(iter(per_seed.values()))["judges"]["fixed_vr"]["min_clean_score"]
    sizes = ", ".join(f"{len(data.splits[s]['clean'])} {s}" for s in ("training", "validation", "test"))
    shape = "x".join(str(n) for n in data.splits["training"]["clean"].shape[2:])
    notes = []
    if settings.min_clean_score is not None and settings.min_clean_score <= 0:
        notes.append("min_clean_score was set to 0: the judges were NOT required to recognise anything. "
                     "Use this only to smoke-test the pipeline; the numbers above say nothing about the methods.")
    first = settings.seeds[0]
    return {
        "bundle": bundle, "dataset_dir": dataset_dir, "degradation": data.degradation, "task_key": data.task_key,
        "num_classes": data.num_classes, "sizes": f"{sizes} images of {shape} pixels",
        "settings": settings.as_dict(), "arms": [a.as_dict() | {"name": a.name} for a in settings.arms()],
        "min_clean_score": min_score, "references": summarize_references(per_seed), "rows": rows,
        "per_seed": {str(s): {"judges": info["judges"], "references": info["references"],
                              "arms": {name: {k: v for k, v in arm.items() if k not in ("rows", "curves")}
                                       for name, arm in info["arms"].items()}}
                     for s, info in per_seed.items()},
        "curves_first_seed": {name: arm["curves"] for name, arm in per_seed[first]["arms"].items()},
        "hardware": _hardware(), "jobs": jobs, "wall_minutes": (time.time() - started) / 60, "notes": notes,
    }


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
    c.add_argument("--regime", nargs="+", choices=REGIMES, default=None,
                   help="finetune (from a converged plain IP), cascade (the paper's order: warm-up, then co-training); default both")
    c.add_argument("--vr_start", nargs="+", choices=VR_STARTS, default=None,
                   help="the co-trained VR starts naive or as the clean-trained judge (default: judge for finetune, naive for cascade)")
    c.add_argument("--vr_supervision", nargs="+", choices=VR_SUPERVISIONS, default=None,
                   help="supervised (default) and/or unsupervised (VR matched to the judge on the clean image)")
    c.add_argument("--rho", type=float, nargs="+", default=None, help="recognition pull relative to fidelity (> 0)")
    c.add_argument("--finetune_steps", type=int, default=None)
    c.add_argument("--cascade_steps", type=int, default=None)
    c.add_argument("--min_clean_score", type=float, default=None,
                   help="score a judge must reach on clean validation images (default: see docs/experiments.md)")
    c.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default: one per CPU core, at most one per unit; 1 runs here)")
    c.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    c.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE", help="bundle config overrides")
    c.add_argument("--protocol", nargs="*", default=None, metavar="KEY=VALUE",
                   help="protocol settings (monai_gradprom.experiments.ProtocolSettings), e.g. vr_max_steps=3000")
    c.add_argument("--verbose", action="store_true")
    o = sub.add_parser("overview", help="one page over several comparisons' results.json (docs/results.md)")
    o.add_argument("results", nargs="+", help="results.json files, one per source")
    o.add_argument("--out", required=True, help="the Markdown file to write")
    o.add_argument("--links", nargs="*", default=None, help="each source's full report, in the order of results")
    r = sub.add_parser("report", help="write a comparison's results.md and figures again from its results.json "
                                      "(no training: e.g. after an upgrade changed the report)")
    r.add_argument("output_dir", help="the comparison's folder, or its results.json")
    return parser


# the keys write_results reads beyond those load_results checks
_REPORT_KEYS = ("degradation", "task_key", "num_classes", "sizes", "arms", "min_clean_score", "per_seed",
                "curves_first_seed", "hardware", "jobs", "wall_minutes")


def _report(args: argparse.Namespace) -> int:
    from monai_gradprom.experiments.overview import load_results

    path = Path(args.output_dir)
    path = path / "results.json" if path.is_dir() else path
    try:
        payload = load_results(path)
    except ValueError as err:
        raise SystemExit(f"report: {err}") from None
    missing = [k for k in _REPORT_KEYS if k not in payload]
    if missing:
        raise SystemExit(f"report: {path}: not written by `compare` (no {', '.join(missing)})")
    command = payload.get("command")
    if command is None:  # results.json written before the command was stored: the report's own header names it
        old = path.with_name("results.md")
        found = re.search(r"Generated by `([^`]+)`", old.read_text()) if old.is_file() else None
        command = found.group(1) if found else f"compare --bundle {payload['bundle']}"
    written = write_results(path.parent, {**payload, "command": command}, command)
    print(f"wrote {written['md']}")
    return 0


def _overview(args: argparse.Namespace, command: str) -> int:
    from monai_gradprom.experiments.overview import write_overview

    if args.links is not None and len(args.links) != len(args.results):
        raise SystemExit(f"overview: {len(args.links)} --links for {len(args.results)} results files")
    try:
        path = write_overview(args.results, args.out, args.links, command)
    except ValueError as err:
        raise SystemExit(f"overview: {err}") from None
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m monai_gradprom.experiments " + " ".join(shlex.quote(a) for a in argv_list)
    if args.command == "overview":
        return _overview(args, command)
    if args.command == "report":
        return _report(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    if args.quick and args.scale not in (None, "quick"):
        raise SystemExit("--quick and --scale are exclusive")
    scale = "quick" if args.quick else (args.scale or "cpu")
    try:
        changes: dict[str, Any] = {k: as_tuple(v) for k, v in parse_overrides(args.protocol).items()}
    except ValueError as err:
        raise SystemExit(f"--protocol: {err}") from None
    for option, key in (("rho", "rhos"), ("regime", "regimes"), ("vr_start", "vr_starts"),
                        ("vr_supervision", "vr_supervisions")):
        if getattr(args, option):
            changes[key] = tuple(getattr(args, option))
    for key in ("finetune_steps", "cascade_steps", "min_clean_score"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if args.rho and "matched_rhos" not in changes:  # the matched controls follow the rhos asked for
        changes["matched_rhos"] = tuple(args.rho) if scale != "quick" else ()
    seeds = changes.pop("seeds", args.seeds)  # --protocol seeds=[1] runs seed 1 alone (e.g. one process per seed)
    try:
        payload = compare(args.bundle, args.output_dir, args.dataset_dir, scale, seeds, args.device,
                          parse_overrides(args.set), command, args.jobs, **changes)
    except (SetupError, ConfigError, ForeignFolderError, StalePieceError, JudgeNotReadyError) as err:
        raise SystemExit(f"compare: {err}") from None
    print(f"wrote {Path(args.output_dir) / 'results.md'} ({payload['wall_minutes']:.1f} min)")
    return 0
