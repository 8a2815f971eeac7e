"""Plumbing of the analysis tools only: evaluation tensors from a bundle's split, batches, progress bars,
named checkpoints on the command line.

What the tools share with the comparison protocol and the exporter (bundle configs, networks, batched IP / VR,
atomic outputs) lives in :mod:`monai_gradprom.workflow`; it is re-exported here so that every tool can keep
importing its helpers from one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch

from monai_gradprom.utils import optional_module
from monai_gradprom.workflow import (
    NO_PROCESSING,
    build_network,
    enhance,
    get_config,
    load_bundle_config,
    load_enhancer,
    load_named_recognizers,
    load_recognizer,
    load_weights,
    parse_overrides,
    predict,
    pyplot,
    recognizer_arch,
    save_figure,
    seed_transforms,
    split_items,
    task_of,
    write_csv,
    write_json,
)

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


# -- data -----------------------------------------------------------------------------------------------------------
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
