"""``python -m monai_gradprom.analysis <tool>``: every analysis tool from the command line.

Tools that need networks and data read them from a bundle config (``--config train.json smoke.json``, later
files override earlier ones, ``--set key=value`` overrides single keys), so one command serves every bundle.
Checkpoints are named on the command line as ``NAME=PATH`` (``plain=outputs/demo/plain/model_final.pt``);
``NAME=none`` is the unprocessed input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def _config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", nargs="+", required=required, metavar="FILE",
                   help="bundle config file(s), later ones overriding earlier ones (e.g. train.json smoke.json)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="config overrides (values read as JSON where possible), e.g. image_size=32")


def _data_args(p: argparse.ArgumentParser, limit: int | None = None) -> None:
    p.add_argument("--split", default="test", help="datalist split to analyse (default: test)")
    p.add_argument("--limit", type=int, default=limit, help="use the first N images of the split only")
    p.add_argument("--seed", type=int, default=0, help="seed of the random degradation (same images for every tool)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--batch-size", type=int, default=16)


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", required=True, type=Path, help="folder for the figure(s) and numbers")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monai_gradprom.analysis",
        description="Evaluation and analysis tools for task-driven image enhancement (see docs/analysis.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="tool", required=True, metavar="TOOL")

    p = sub.add_parser("train-recognizers", help="train clean recognizers of several architectures (for transfer)")
    _config_args(p)
    p.add_argument("--archs", nargs="+", default=["resnet10", "resnet18", "resnet34"])
    p.add_argument("--epochs", type=int, default=None, help="default: the bundle's pretrain_epochs")
    p.add_argument("--lr", type=float, default=None, help="default: the bundle's pretrain_learning_rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default: the bundle's batch_size")
    _output_args(p)

    p = sub.add_parser("transfer", help="transferability table: processing x evaluating recognizer (RA paper Table 2)")
    _config_args(p)
    p.add_argument("--enhancer", nargs="+", required=True, metavar="NAME=CKPT",
                   help="rows: training checkpoints (their ip_network); NAME=none for no processing")
    p.add_argument("--recognizer", nargs="*", default=[], metavar="NAME=PATH",
                   help="columns: recognizer checkpoints (architecture from NAME or the file name, e.g. resnet34)")
    p.add_argument("--archs", nargs="*", default=[], help="also columns: <recognizer-dir>/<arch>.pt, trained if missing")
    p.add_argument("--recognizer-dir", type=Path, default=None, help="where --archs recognizers are kept")
    p.add_argument("--epochs", type=int, default=None, help="epochs for missing --archs recognizers")
    p.add_argument("--clean-row", default="clean target", help="name of the row scoring the clean targets ('' for none)")
    _data_args(p)
    _output_args(p)

    p = sub.add_parser("domain", help="evaluate a checkpoint on another data set / config (GradProm Table 4)")
    p.add_argument("--model-config", nargs="+", required=True, metavar="FILE", help="bundle config the checkpoint was trained with")
    p.add_argument("--model-set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the model config")
    p.add_argument("--checkpoint", required=True, help="training checkpoint (model_final.pt)")
    p.add_argument("--data-config", nargs="+", default=None, metavar="FILE", help="bundle config giving the evaluation data (default: the model config)")
    p.add_argument("--data-set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the data config")
    p.add_argument("--filename", default="metrics.json")
    _data_args(p)
    _output_args(p)

    p = sub.add_parser("boundary", help="decision-boundary distances, IBD and decision maps (RA paper section 5)")
    _config_args(p)
    p.add_argument("--plain", required=True, help="checkpoint of plain processing (its ip_network)")
    p.add_argument("--ra", required=True, help="checkpoint of recognition-aware processing (ip_network; its vr_network is the source)")
    p.add_argument("--source", default=None, help="source recognizer checkpoint (default: the --ra checkpoint's vr_network)")
    p.add_argument("--target", nargs="+", required=True, metavar="NAME=PATH", help="target recognizers")
    p.add_argument("--max-distance", type=float, default=None, help="default: 0.5 * sqrt(pixels per image)")
    p.add_argument("--grid-steps", type=int, default=32)
    p.add_argument("--bisection-steps", type=int, default=12)
    p.add_argument("--map-index", type=int, default=None, help="image of the decision map (default: one RA fixes)")
    p.add_argument("--map-resolution", type=int, default=41)
    _data_args(p, limit=64)
    _output_args(p)

    p = sub.add_parser("cam", help="class activation maps of VR on each strategy's outputs (GradProm Figure 5)")
    _config_args(p)
    p.add_argument("--enhancer", nargs="+", required=True, metavar="NAME=CKPT", help="columns (input and target are added)")
    p.add_argument("--recognizer", required=True, help="the recognizer to explain (state dict or training checkpoint)")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++", "cam"])
    p.add_argument("--target-layer", default=None, help="default: layer4 for ResNets, else the last convolution")
    p.add_argument("--explain", default="label", choices=["label", "prediction"], help="class to explain")
    p.add_argument("--num-images", type=int, default=4)
    _data_args(p)
    _output_args(p)

    p = sub.add_parser("qualitative", help="input / each strategy / target grid with PSNR, SSIM and VR's prediction")
    _config_args(p)
    p.add_argument("--enhancer", nargs="+", required=True, metavar="NAME=CKPT")
    p.add_argument("--recognizer", default=None, help="recognizer whose prediction is printed (optional)")
    p.add_argument("--num-images", type=int, default=4)
    _data_args(p)
    _output_args(p)

    p = sub.add_parser("curves", help="training curves from TensorBoard event files")
    p.add_argument("--run", nargs="+", required=True, metavar="NAME=LOGDIR")
    p.add_argument("--tags", nargs="+", default=["loss_ip", "loss_vr", "cos", "gate", "gate_rate"])
    p.add_argument("--smoothing", type=float, default=0.6, help="TensorBoard-style EMA weight (0 = raw)")
    _output_args(p)

    p = sub.add_parser("bars", help="metric bars with error bars over seeds from metrics.json files")
    p.add_argument("--run", nargs="*", default=[], metavar="NAME=GLOB", help="a group: metrics files (glob, comma-separated)")
    p.add_argument("--files", nargs="*", default=[], help="metrics files (or globs) grouped by --group-by")
    p.add_argument("--group-by", default="strategy")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim", "accuracy"])
    _output_args(p)
    return parser


# -- tools --------------------------------------------------------------------------------------------------------
def _train_recognizers(args) -> dict:
    from monai.data import DataLoader, Dataset

    from monai_gradprom.analysis import _common as c
    from monai_gradprom.analysis.transfer import train_recognizers

    parser = c.load_bundle_config(args.config, c.parse_overrides(args.overrides))
    models = _train(parser, args.archs, args.output_dir, args.epochs, args.lr, args.batch_size, args.seed,
                    args.device, not args.no_progress, DataLoader, Dataset, train_recognizers)
    paths = {arch: str(args.output_dir / f"{arch}.pt") for arch in models}
    c.write_json(args.output_dir / "recognizers.json", {"recognizers": paths, "config": args.config,
                                                        "overrides": c.parse_overrides(args.overrides)})
    return paths


def _train(parser, archs, output_dir, epochs, lr, batch_size, seed, device, show_progress, DataLoader, Dataset, train):
    from monai_gradprom.analysis import _common as c

    task_key, _ = c.task_of(parser)
    epochs = int(epochs if epochs is not None else c.get_config(parser, "pretrain_epochs", 10))
    lr = float(lr if lr is not None else c.get_config(parser, "pretrain_learning_rate", 1e-3))
    batch_size = int(batch_size or c.get_config(parser, "batch_size", 8))
    missing = [a for a in archs if not (Path(output_dir) / f"{a}.pt").is_file()]
    loader = None
    if missing:
        import torch

        data = c.get_config(parser, "datalists")["training"]
        dataset = Dataset(data, c.get_config(parser, "train#preprocessing"))
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0,
                            generator=torch.Generator().manual_seed(seed))
    return train(lambda arch: c.build_network(parser, "vr_network_def", device, arch=arch), archs, loader or [],
                 epochs, output_dir, device=device, learning_rate=lr, task_key=task_key, seed=seed,
                 show_progress=show_progress)


def _transfer(args) -> dict:
    from monai.data import DataLoader, Dataset

    from monai_gradprom.analysis import _common as c
    from monai_gradprom.analysis.transfer import train_recognizers, transfer_table

    parser = c.load_bundle_config(args.config, c.parse_overrides(args.overrides))
    task_key, num_classes = c.task_of(parser)
    recognizers = c.load_named_recognizers(parser, c.parse_named(args.recognizer, "--recognizer"), args.device)
    if args.archs:
        if args.recognizer_dir is None:
            raise ValueError("--archs needs --recognizer-dir (where the clean recognizers are kept / trained)")
        recognizers.update(_train(parser, args.archs, args.recognizer_dir, args.epochs, None, None, args.seed,
                                  args.device, not args.no_progress, DataLoader, Dataset, train_recognizers))
    if not recognizers:
        raise ValueError("no recognizers: give --recognizer NAME=PATH and/or --archs with --recognizer-dir")
    enhancers = {name: c.load_enhancer(parser, path, args.device)
                 for name, path in c.parse_named(args.enhancer, "--enhancer").items()}
    data = c.load_split(parser, args.split, args.limit, args.seed)
    table = transfer_table(enhancers, recognizers, data, task_key, num_classes, args.batch_size, not args.no_progress,
                           clean_row=args.clean_row or None)
    table.extra = {"enhancers": c.parse_named(args.enhancer), "split": args.split, "seed": args.seed}
    paths = table.write(args.output_dir)
    return {k: str(v) for k, v in paths.items()}


def _domain(args) -> dict:
    from monai_gradprom.workflow import parse_overrides
    from monai_gradprom.analysis.domain import evaluate_checkpoint

    return evaluate_checkpoint(
        args.model_config, args.checkpoint, args.output_dir, data_config=args.data_config,
        model_overrides=parse_overrides(args.model_set), data_overrides=parse_overrides(args.data_set),
        split=args.split, batch_size=args.batch_size, device=args.device, filename=args.filename, seed=args.seed,
        limit=args.limit, show_progress=not args.no_progress,
    )


def _boundary(args) -> dict:
    import torch

    from monai_gradprom.analysis import _common as c
    from monai_gradprom.analysis.boundary import boundary_analysis, decision_map, plot_decision_maps, random_directions

    parser = c.load_bundle_config(args.config, c.parse_overrides(args.overrides))
    task_key, num_classes = c.task_of(parser)
    if task_key != "label":
        raise ValueError(f"decision-boundary analysis needs a classification recognizer; the bundle's task is {task_key!r}")
    source = c.load_recognizer(parser, args.source or args.ra, args.device)
    targets = c.load_named_recognizers(parser, c.parse_named(args.target, "--target"), args.device)
    data = c.load_split(parser, args.split, args.limit, args.seed)
    plain = c.enhance(c.load_enhancer(parser, args.plain, args.device), data["image"], data["target"], args.batch_size)
    ra = c.enhance(c.load_enhancer(parser, args.ra, args.device), data["image"], data["target"], args.batch_size)
    max_distance = args.max_distance or 0.5 * plain[0].numel() ** 0.5
    result = boundary_analysis(source, targets, plain, ra, data.get("label"), seed=args.seed,
                               max_distance=max_distance, grid_steps=args.grid_steps,
                               bisection_steps=args.bisection_steps, batch_size=args.batch_size,
                               show_progress=not args.no_progress)
    # the decision map: by default an image whose plain output the source misclassifies and whose RA output it gets right
    labels = data["label"].reshape(-1)
    index = args.map_index
    if index is None:
        fixed = (c.predict(source, plain).argmax(1) != labels) & (c.predict(source, ra).argmax(1) == labels)
        index = int(fixed.nonzero()[0]) if fixed.any() else 0
    step = (ra[index] - plain[index]).float()
    step_norm = float(step.norm())
    extent = max(2.0 * step_norm, 1e-3 * max_distance) if step_norm > 0 else max_distance
    vertical = random_directions(plain[index : index + 1], torch.Generator().manual_seed(args.seed + 1))[0]
    recognizers = {"source (trained with IP)": source, **targets}
    maps = {name: decision_map(net, plain[index], step, vertical, extent=extent, resolution=args.map_resolution,
                               batch_size=args.batch_size) for name, net in recognizers.items()}
    plot_decision_maps(maps, args.output_dir / "decision_map.png", num_classes,
                       marks={"plain": (0.0, 0.0), "RA": (step_norm, 0.0)}, label=int(labels[index]),
                       title=f"image {index}: plain output at the origin")
    result["decision_map"] = {"index": index, "ra_step_norm": step_norm, "extent": extent,
                              "classes": {n: m[2].tolist() for n, m in maps.items()}}
    result["inputs"] = {"plain": args.plain, "ra": args.ra, "source": args.source or args.ra,
                        "targets": c.parse_named(args.target), "split": args.split}
    c.write_json(args.output_dir / "boundary.json", result)
    return {k: result[k] for k in ("ra", "random")}


def _columns(parser, args, c) -> tuple[dict, dict]:
    data = c.load_split(parser, args.split, args.num_images if args.limit is None else args.limit, args.seed)
    data = {k: v[: args.num_images] for k, v in data.items()}
    columns = {"input": c.enhance(None, data["image"], data["target"])}
    for name, path in c.parse_named(args.enhancer, "--enhancer").items():
        columns[name] = c.enhance(c.load_enhancer(parser, path, args.device), data["image"], data["target"], args.batch_size)
    return data, columns


def _cam(args) -> dict:
    from monai_gradprom.analysis import _common as c
    from monai_gradprom.analysis.cam import class_activation_maps, plot_cam_grid

    parser = c.load_bundle_config(args.config, c.parse_overrides(args.overrides))
    recognizer = c.load_recognizer(parser, args.recognizer, args.device)
    data, columns = _columns(parser, args, c)
    columns["target"] = data["target"]
    labels = data.get("label")
    class_idx = labels.reshape(-1) if args.explain == "label" and labels is not None else None
    cams, predictions = {}, {}
    for name, images in c.progress(list(columns.items()), "CAMs", enable=not args.no_progress):
        cams[name] = class_activation_maps(recognizer, images, args.target_layer, class_idx, args.method,
                                           batch_size=args.batch_size)
        predictions[name] = c.predict(recognizer, images)
    payload = plot_cam_grid(columns, cams, args.output_dir / "cam.png", predictions, labels, data.get("seg"),
                            json_path=args.output_dir / "cam.json")
    return payload["cam_mass_inside_mask_mean"]


def _qualitative(args) -> dict:
    from monai_gradprom.analysis import _common as c
    from monai_gradprom.analysis.qualitative import plot_qualitative_grid

    parser = c.load_bundle_config(args.config, c.parse_overrides(args.overrides))
    data, columns = _columns(parser, args, c)
    predictions = None
    if args.recognizer:
        recognizer = c.load_recognizer(parser, args.recognizer, args.device)
        predictions = {name: c.predict(recognizer, images) for name, images in columns.items()}
        predictions["target"] = c.predict(recognizer, data["target"])
    payload = plot_qualitative_grid(columns, data["target"], args.output_dir / "qualitative.png", predictions,
                                    data.get("label"), json_path=args.output_dir / "qualitative.json")
    return {name: {k: v for k, v in d.items() if k != "prediction"} for name, d in payload["per_image"].items()}


def _curves(args) -> dict:
    from monai_gradprom.analysis._common import parse_named
    from monai_gradprom.analysis.curves import plot_training_curves

    scalars = plot_training_curves(parse_named(args.run, "--run"), args.output_dir / "curves.png", args.tags,
                                   args.smoothing, csv_path=args.output_dir / "curves.csv")
    return {run: {tag: len(points) for tag, points in s.items()} for run, s in scalars.items()}


def _bars(args) -> dict:
    from monai_gradprom.analysis._common import parse_named
    from monai_gradprom.analysis.bars import expand_groups, group_by_field, plot_metric_bars

    groups = expand_groups(parse_named(args.run, "--run"))
    if args.files:
        found = [f for pattern in args.files for f in expand_groups({"--files": pattern})["--files"]]
        for name, files in group_by_field(found, args.group_by).items():
            groups.setdefault(name, []).extend(files)
    if not groups:
        raise ValueError("no metrics files: give --run NAME=GLOB and/or --files")
    payload = plot_metric_bars(groups, args.output_dir / "bars.png", args.metrics,
                               json_path=args.output_dir / "bars.json", csv_path=args.output_dir / "bars.csv")
    return {g: {m: round(s["mean"], 4) for m, s in ms.items()} for g, ms in payload["groups"].items()}


TOOLS = {
    "train-recognizers": _train_recognizers,
    "transfer": _transfer,
    "domain": _domain,
    "boundary": _boundary,
    "cam": _cam,
    "qualitative": _qualitative,
    "curves": _curves,
    "bars": _bars,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one tool; print a short JSON summary. Returns the exit status (2 with a one-line error message for a
    missing file or key, as argparse does for bad arguments)."""
    import json

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = TOOLS[args.tool](args)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"python -m monai_gradprom.analysis {args.tool}: error: {message}", file=sys.stderr)
        return 2
    from monai_gradprom.workflow import json_safe

    print(json.dumps(json_safe(summary), indent=1))
    return 0
