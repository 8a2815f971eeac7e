"""A bundle's networks built from their config definitions, loaded from checkpoints and run over tensors."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_gradprom.utils import require_file

__all__ = [
    "NO_PROCESSING",
    "build_network",
    "load_weights",
    "load_enhancer",
    "load_recognizer",
    "load_named_recognizers",
    "recognizer_arch",
    "enhance",
    "predict",
]

#: Checkpoint names that mean "no IP": the unprocessed input is the output.
NO_PROCESSING = ("none", "identity", "input")


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
