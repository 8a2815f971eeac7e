"""A bundle's config read the way ``monai.bundle run`` reads it, with errors that name the key and the files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monai_gradprom.utils import require_file

__all__ = ["load_bundle_config", "parse_overrides", "get_config", "split_items", "seed_transforms", "task_of"]


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


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """``["image_size=32", "vr_arch=resnet10"]`` -> ``{"image_size": 32, "vr_arch": "resnet10"}``: values are JSON
    where they parse (``8``, ``null``, ``[64, 64]``, ``"x"``), strings otherwise, as MONAI's command line reads
    them."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def get_config(parser, key: str, default: Any = ..., lazy: bool = True) -> Any:
    """``parser.get_parsed_content(key)`` with an error naming the key and the config files when it is absent."""
    if key not in parser:
        if default is not ...:
            return default
        files = getattr(parser, "config_files", "?")
        raise KeyError(f"key {key!r} not found in the bundle config {files}")
    return parser.get_parsed_content(key, lazy=lazy)


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


def task_of(parser) -> tuple[str, int]:
    """The bundle's recognition task key (``label`` or ``seg``) and its number of classes."""
    return str(get_config(parser, "vr_target_key", "label")), int(get_config(parser, "num_classes", 2))
