"""``python -m monai_gradprom.bundle export <bundle> --checkpoint C --out DIR [--set key=value ...]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from monai_gradprom.bundle.export import export_bundle, parse_overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monai_gradprom.bundle", description="Bundle tools: export a trained bundle in MONAI's layout."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export",
        help="write a bundle and a trained checkpoint as a standard MONAI bundle directory",
        description="Write configs/ (self-contained, bundle_root '.'), models/model.pt (IP's state dict; vr_model.pt "
        "and transformer_model.pt for evaluation), docs/README.md, large_files.yml and LICENSE, in MONAI's bundle "
        "layout.",
    )
    export.add_argument("bundle", help="a bundle name under bundles/ (e.g. covid_ct) or a bundle directory")
    export.add_argument("--checkpoint", required=True, help="a training checkpoint (model_final.pt) or a state dict")
    export.add_argument(
        "--out", required=True,
        help="the directory to write: absent or empty, or a previous export with --overwrite (never the checkpoint's)",
    )
    export.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="config ids to set in the exported configs (JSON values), e.g. ip_channels=8 strategy=joint",
    )
    export.add_argument(
        "--overrides", dest="override_file", metavar="JSON",
        help="a JSON file of config ids to set first, e.g. bundles/<x>/smoke.json for a smoke-run checkpoint",
    )
    export.add_argument("--torchscript", action="store_true", help="also write models/model.ts (ckpt_export)")
    export.add_argument(
        "--overwrite", action="store_true",
        help="replace a previous export in --out: only the files it wrote (its manifest); any other file is refused",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = {}
        if args.override_file:
            with open(args.override_file) as f:
                overrides.update(json.load(f))
        overrides.update(parse_overrides(args.overrides))
        out = export_bundle(
            args.bundle, args.checkpoint, args.out, overrides, overwrite=args.overwrite, torchscript=args.torchscript
        )
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
