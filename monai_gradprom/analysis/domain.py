"""Domain generalization (GradProm paper, Table 4): evaluate a checkpoint trained on one data set on another.

Everything is configuration: the *model* bundle config (the one the checkpoint was trained with) gives the
networks, the recognition task and the class count; the *data* bundle config (any bundle, with overrides such as
``dataset_dir`` or ``degradation``) gives ``datalists[split]`` and ``validate#preprocessing``. The metrics are
the bundles' own: the existing :class:`~monai_gradprom.engines.EnhancementEvaluator` writes ``metrics.json``
through :class:`~monai_gradprom.engines.MetricsJSONWriter`, with the provenance (checkpoint, both configs, split,
overrides) added so that a table can be assembled from the files alone.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_gradprom.utils import require_file
from monai_gradprom.workflow import build_network, get_config, load_bundle_config, seed_transforms, split_items

__all__ = ["evaluate_checkpoint"]

logger = logging.getLogger(__name__)


def _in_channels(network: nn.Module) -> int | None:
    for module in network.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return None


def _load_entry(network: nn.Module, state: Mapping[str, Any], key: str, path: Path) -> None:
    try:
        network.load_state_dict(state[key], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"entry {key!r} of checkpoint {path} does not match the model config's network: {exc}") from exc


def evaluate_checkpoint(
    model_config: str | os.PathLike | Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    data_config: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    data_overrides: Mapping[str, Any] | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    filename: str = "metrics.json",
    seed: int = 0,
    limit: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a training checkpoint with ``ip_network`` and, where trained, ``vr_network`` /
    ``transformer_network``) on ``split`` of the data bundle and write ``<output_dir>/<filename>``.

    ``data_config`` defaults to ``model_config`` (in-domain evaluation). ``seed`` fixes the random
    degradation, ``limit`` evaluates the first images only. Returns the written metrics.
    """
    from monai.data import DataLoader, Dataset
    from monai.utils import set_determinism

    from monai_gradprom.engines import EnhancementEvaluator, MetricsJSONWriter

    checkpoint = require_file(checkpoint, "trained model checkpoint")
    model = load_bundle_config(model_config, model_overrides)
    data = load_bundle_config(data_config if data_config is not None else model_config, data_overrides)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"cannot read checkpoint {checkpoint}: {exc}") from exc
    if not isinstance(state, Mapping) or "ip_network" not in state:
        keys = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise KeyError(f"checkpoint {checkpoint} has no 'ip_network' entry (it has {keys}); pass a training checkpoint")

    device = torch.device(device)
    ip = build_network(model, "ip_network_def", device)
    _load_entry(ip, state, "ip_network", checkpoint)
    task_key = str(get_config(model, "vr_target_key", "label"))
    num_classes = int(get_config(model, "num_classes", 2))
    vr = None
    if "vr_network" in state:
        vr = build_network(model, "vr_network_def", device)
        _load_entry(vr, state, "vr_network", checkpoint)
    else:
        logger.warning("checkpoint %s has no 'vr_network': evaluating image quality only", checkpoint)
    transformer = None
    if "transformer_network" in state:  # RA "with transformer": VR sees T(IP(x)), as in training
        model["strategy"] = "transformer"
        transformer = get_config(model, "transformer_network", lazy=False)
        if transformer is None:
            raise KeyError(f"checkpoint {checkpoint} has a transformer_network but the model config builds none")
        transformer = transformer.to(device)
        _load_entry(transformer, state, "transformer_network", checkpoint)

    items = split_items(data, split, limit)
    transform = get_config(data, "validate#preprocessing")
    dataset = Dataset(items, transform)
    first = dataset[0]  # a probe of the format; the seeds are set after it, so it draws no evaluated noise
    for key in ("image", "target") + ((task_key,) if vr is not None else ()):
        if key not in first:
            raise KeyError(f"the data config's validate#preprocessing gives no {key!r} (it gives {sorted(first)})")
    channels, expected = int(first["image"].shape[0]), _in_channels(ip)
    if expected is not None and channels != expected:
        raise ValueError(
            f"the evaluation images have {channels} channel(s) but IP expects {expected}: adapt the data config "
            "(e.g. a channel transform or in_channels override) so both domains share the image format"
        )
    seed_transforms(transform, seed)  # the same degraded images as load_split(seed=seed) gives the other tools
    batch_size = int(batch_size or get_config(data, "batch_size", 8))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)

    extra = {
        "checkpoint": str(checkpoint),
        "model_config": [str(f) for f in model.config_files],
        "data_config": [str(f) for f in data.config_files],
        "model_overrides": dict(model_overrides or {}),
        "data_overrides": dict(data_overrides or {}),
        "split": split,
        "n_images": len(items),
        "seed": seed,
        "strategy": get_config(model, "strategy", None),
    }
    writer = MetricsJSONWriter(output_dir, filename=filename, extra=extra)
    handlers: list = [writer]
    evaluator = EnhancementEvaluator(
        device=device,
        val_data_loader=loader,
        ip_network=ip,
        vr_network=vr,
        vr_target_key=task_key,
        num_classes=num_classes,
        spatial_dims=first["image"].ndim - 1,
        vr_input_transform=transformer,
        val_handlers=handlers,
    )
    if show_progress:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False, desc="evaluating").attach(evaluator)
    try:
        evaluator.run()
    finally:
        set_determinism(seed=None)
    return json.loads(Path(writer.path).read_text())
