"""Shared plumbing of the analysis tools: bundle configs, checkpoints, evaluation tensors, atomic outputs.

The tools read everything they need (networks, data, task) from a bundle config, so that one command works for
every bundle; this module is where that reading happens, with errors that name the missing file or key.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_gradprom.utils import atomic_write, optional_module, require_file

__all__ = [
    "load_bundle_config",
    "parse_overrides",
    "get_config",
    "build_network",
    "load_weights",
    "load_split",
    "split_items",
    "seed_transforms",
    "iter_batches",
    "progress",
    "write_json",
    "write_csv",
    "save_figure",
    "pyplot",
    "parse_named",
    "load_enhancer",
    "load_recognizer",
    "load_named_recognizers",
    "recognizer_arch",
    "enhance",
    "predict",
    "task_of",
    "NO_PROCESSING",
]

logger = logging.getLogger("monai_gradprom.analysis")


# -- bundle configs -----------------------------------------------------------------------------------------------
def load_bundle_config(config_files: str | os.PathLike | Sequence[str | os.PathLike], overrides: Mapping[str, Any] | None = None):
    """A ``monai.bundle.ConfigParser`` over ``config_files`` (later files override earlier ones, as in
    ``monai.bundle run``) with ``overrides`` (``{"image_size": 32, "vr_network_def#arch": "resnet10"}``) applied.
    """
    from monai.bundle import ConfigParser

    files = [config_files] if isinstance(config_files, (str, os.PathLike)) else list(config_files)
    if not files:
        raise ValueError("no bundle config file given")
    for f in files:
        require_file(f, "bundle config file")
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    for key, value in (overrides or {}).items():
        parser[key] = value
    parser.config_files = [str(f) for f in files]  # remembered for error messages
    return parser


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["image_size=32", "vr_arch=resnet10"]`` -> ``{"image_size": 32, "vr_arch": "resnet10"}`` (values read as
    JSON where they parse, as strings otherwise)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def get_config(parser, key: str, default: Any = ..., lazy: bool = True) -> Any:
    """``parser.get_parsed_content(key)`` with an error naming the key and the config files when it is absent."""
    if key not in parser:
        if default is not ...:
            return default
        files = getattr(parser, "config_files", "?")
        raise KeyError(f"key {key!r} not found in the bundle config {files}")
    return parser.get_parsed_content(key, lazy=lazy)


def build_network(parser, key: str, device: torch.device | str = "cpu", **overrides: Any) -> nn.Module:
    """A fresh instance of the network defined at ``key`` (e.g. ``ip_network_def``), with ``overrides`` of its
    arguments (``arch="resnet10"``), on ``device`` in eval mode."""
    if key not in parser:
        raise KeyError(f"network definition {key!r} not found in the bundle config {getattr(parser, 'config_files', '?')}")
    raw = copy.deepcopy(parser.get(key))
    if overrides:
        if not isinstance(raw, Mapping):
            raise TypeError(f"cannot override arguments of {key!r}: it is not a dict definition in the bundle config")
        parser[key] = {**raw, **overrides}
    try:
        network = parser.get_parsed_content(key, lazy=False)
    finally:
        if overrides:
            parser[key] = raw
    return network.to(device).eval()


def load_weights(network: nn.Module, path: str | os.PathLike, key: str | None = None) -> nn.Module:
    """Load a state dict, or the entry ``key`` of a training checkpoint (``model_final.pt``), into ``network``.

    A training checkpoint without ``key`` fails with an error naming the file and the keys it has.
    """
    from monai_gradprom.engines.pretrain import load_network_weights

    path = require_file(path, "checkpoint")
    if key is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and key not in state and any(isinstance(v, Mapping) for v in state.values()):
            raise KeyError(f"checkpoint {path} has no entry {key!r} (it has {sorted(state)})")
    return load_network_weights(network, path, key=key).eval()


# -- data -----------------------------------------------------------------------------------------------------------
def split_items(parser, split: str, limit: int | None = None) -> list:
    """The first ``limit`` items (all without it) of ``datalists[split]``; an unknown or empty split is an error
    naming the config files."""
    datalists = get_config(parser, "datalists")
    files = getattr(parser, "config_files", "?")
    if split not in datalists:
        raise KeyError(f"split {split!r} not in the datalists of {files} (it has {sorted(datalists)})")
    items = datalists[split][: limit if limit else None]
    if not items:
        raise ValueError(f"split {split!r} of the datalists of {files} is empty")
    return items


def seed_transforms(transform, seed: int) -> None:
    """Seed the global generators (``monai.utils.set_determinism``) and ``transform``'s own random state, so
    the random degradation draws the same images in every tool."""
    from monai.utils import set_determinism

    set_determinism(seed=seed)
    if hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=seed)


def load_split(
    parser,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    transform_key: str = "validate#preprocessing",
    keys: Sequence[str] = ("image", "target", "label", "seg"),
) -> dict[str, torch.Tensor]:
    """The ``split`` of the bundle's ``datalists`` through ``transform_key`` (degradation included), stacked into
    tensors ``{key: (N, ...)}``. Degradations are random: ``seed`` fixes them, so that every tool and every
    strategy sees the same degraded images."""
    from monai.data import DataLoader, Dataset
    from monai.utils import set_determinism

    data = split_items(parser, split, limit)
    transform = get_config(parser, transform_key)
    seed_transforms(transform, seed)
    # through MONAI's DataLoader, as the bundles' evaluation and the domain tool do: with num_workers=0 it reseeds
    # the random transforms from torch's seeded generator, so all of them see the same degraded images
    loader = DataLoader(Dataset(data, transform), batch_size=len(data), shuffle=False, num_workers=0)
    try:
        batch = next(iter(loader))
    finally:
        set_determinism(seed=None)
    out = {}
    for key in keys:
        if key in batch:
            value = batch[key]
            value = value.as_tensor() if hasattr(value, "as_tensor") else torch.as_tensor(value)
            out[key] = value
    if "image" not in out or "target" not in out:
        raise KeyError(f"the {transform_key} output lacks 'image' / 'target' (has {sorted(batch)})")
    return out


def iter_batches(data: Mapping[str, torch.Tensor], batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Consecutive batches ``{key: tensor[i:i + batch_size]}`` of stacked tensors."""
    n = len(next(iter(data.values())))
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in data.items()}


def progress(iterable: Iterable, desc: str, total: int | None = None, enable: bool = True) -> Iterable:
    """A tqdm progress bar where tqdm imports (it is a dependency), else the iterable itself with a log line."""
    tqdm, _ = optional_module("tqdm")
    if tqdm is None or not enable:
        logger.info("%s ...", desc)
        return iterable
    return tqdm.tqdm(iterable, desc=desc, total=total, leave=False)


def parse_named(items: Sequence[str] | None, what: str = "entry") -> dict[str, str]:
    """``["plain=/a/model.pt", "gradprom=/b/model.pt"]`` -> ordered ``{name: value}``; names must be unique."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} {item!r} is not of the form name=value")
        name, value = item.split("=", 1)
        if name in out:
            raise ValueError(f"{what} name {name!r} given twice")
        out[name] = value
    return out


# -- outputs --------------------------------------------------------------------------------------------------------
def _finite(obj: Any) -> Any:
    """JSON-safe copy: tensors become numbers / lists, NaN and inf become ``None`` (strict JSON has neither)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented strict JSON, atomically."""
    text = json.dumps(_finite(payload), indent=2, allow_nan=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and not math.isfinite(v) else v for v in row])
    text = buffer.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    plt = pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


# -- networks from checkpoints ------------------------------------------------------------------------------------
NO_PROCESSING = ("none", "identity", "input")


def load_enhancer(parser, checkpoint: str | os.PathLike | None, device: torch.device | str = "cpu") -> nn.Module | None:
    """The bundle's IP (``ip_network_def``) with the ``ip_network`` weights of a training checkpoint; ``None`` for
    no processing (``checkpoint`` None or one of "none", "identity", "input")."""
    if checkpoint is None or str(checkpoint).lower() in NO_PROCESSING:
        return None
    return load_weights(build_network(parser, "ip_network_def", device), checkpoint, key="ip_network")


def load_recognizer(
    parser, checkpoint: str | os.PathLike, device: torch.device | str = "cpu", **overrides: Any
) -> nn.Module:
    """The bundle's VR (``vr_network_def``, arguments overridden by ``overrides``, e.g. ``arch="resnet10"``) with
    weights from a state dict (``vr_pretrained.pt``) or from a training checkpoint's ``vr_network`` entry."""
    network = build_network(parser, "vr_network_def", device, **overrides)
    state = torch.load(require_file(checkpoint, "recognizer checkpoint"), map_location="cpu", weights_only=True)
    key = "vr_network" if isinstance(state, Mapping) and "vr_network" in state else None
    return load_weights(network, checkpoint, key=key)


@torch.no_grad()
def enhance(
    ip: nn.Module | None, images: torch.Tensor, reference: torch.Tensor | None = None, batch_size: int = 16
) -> torch.Tensor:
    """IP's output in [0, 1] for ``images`` (N, C, ...), batched; ``ip=None`` gives the unprocessed input
    resized to ``reference``'s size (super-resolution baselines), as the evaluator does."""
    from monai_gradprom.engines.evaluator import match_size

    if ip is None:
        ref = images if reference is None else reference
        return match_size(images.float(), ref).clamp(0, 1)
    ip.eval()
    device = next(ip.parameters()).device
    outs = [ip(images[i : i + batch_size].to(device).float()).float().clamp(0, 1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


@torch.no_grad()
def predict(recognizer: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """The recognizer's logits for ``images``, batched, on the CPU."""
    recognizer.eval()
    device = next(recognizer.parameters()).device
    return torch.cat([recognizer(images[i : i + batch_size].to(device).float()).float().cpu() for i in range(0, len(images), batch_size)])


def task_of(parser) -> tuple[str, int]:
    """The bundle's recognition task key (``label`` or ``seg``) and its number of classes."""
    return str(get_config(parser, "vr_target_key", "label")), int(get_config(parser, "num_classes", 2))


def recognizer_arch(name: str, path: str | os.PathLike) -> str | None:
    """The architecture of a named recognizer checkpoint: the name, else the file stem, where it is one of
    :data:`~monai_gradprom.networks.RECOGNIZER_ARCHS` (``resnet18=...``, ``.../resnet34.pt``); None = the
    bundle's own ``vr_network_def`` architecture."""
    from monai_gradprom.networks import RECOGNIZER_ARCHS

    for candidate in (name, Path(path).stem):
        if candidate in RECOGNIZER_ARCHS:
            return candidate
    return None


def load_named_recognizers(parser, specs: Mapping[str, str], device: torch.device | str = "cpu") -> dict[str, nn.Module]:
    """``{name: path}`` -> ``{name: recognizer}``, each architecture from :func:`recognizer_arch`."""
    out = {}
    for name, path in specs.items():
        arch = recognizer_arch(name, path)
        out[name] = load_recognizer(parser, path, device, **({"arch": arch} if arch else {}))
    return out
