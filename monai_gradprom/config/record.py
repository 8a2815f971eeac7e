"""The settings that produced a checkpoint, recorded in it, so that evaluation and inference can refuse or adopt them."""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from monai_gradprom.config.checks import ConfigError

logger = logging.getLogger("monai_gradprom.config")




# -- the config recorded in checkpoints ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as JSON-like Python (str/int/float/bool/None, lists, dicts), so that the checkpoint stays
    loadable with ``torch.load(weights_only=True)``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class RunConfig:
    """The resolved settings that produced a checkpoint; stored in every checkpoint under ``config``.

    It has ``state_dict``/``load_state_dict`` so that Ignite's Checkpoint saves it next to the networks (a
    plain dict of JSON-like values, so ``weights_only`` loading still works). The package version is added.
    """

    def __init__(self, **values: Any) -> None:
        from monai_gradprom import __version__

        self.values = {k: _plain(v) for k, v in values.items()}
        self.values.setdefault("version", __version__)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.values = dict(state)

    def __repr__(self) -> str:
        return f"RunConfig({self.values})"


def recorded_config(checkpoint: Any) -> dict[str, Any] | None:
    """The ``config`` recorded in a checkpoint (a path or a loaded dict); None when it has none (older runs)
    or the file does not exist. A file that cannot be read raises an error naming it."""
    if isinstance(checkpoint, Mapping):
        config = checkpoint.get("config")
        return dict(config) if isinstance(config, Mapping) else None
    path = Path(checkpoint)
    if not path.is_file():
        return None
    stat = path.stat()
    config = _recorded_in_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if config is None:
        config = bundle_recorded_config(path)
    return dict(config) if config is not None else None


#: the key of an exported bundle's ``configs/metadata.json`` that holds the config its weights were trained with
METADATA_KEY = "run_config"


def bundle_recorded_config(weights: str | os.PathLike) -> dict[str, Any] | None:
    """The config recorded for a plain state dict in a MONAI bundle's ``models/`` folder: ``configs/metadata.json``
    of the same bundle, key :data:`METADATA_KEY` (written by ``python -m monai_gradprom.bundle export``, whose
    ``models/model.pt`` must stay a bare state dict for MONAI's loaders). None when there is none."""
    import json

    path = Path(weights)
    metadata = path.resolve().parent.parent / "configs" / "metadata.json"
    if path.resolve().parent.name != "models" or not metadata.is_file():
        return None
    try:
        record = json.loads(metadata.read_text()).get(METADATA_KEY)
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot read {metadata} (the bundle metadata of {path}): {exc}") from exc
    return dict(record) if isinstance(record, Mapping) else None


@functools.lru_cache(maxsize=8)
def _recorded_in_file(path: str, mtime_ns: int, size: int) -> dict[str, Any] | None:
    """Read once per file version: a bundle asks for several recorded values of the same checkpoint."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc
    return recorded_config(loaded) if isinstance(loaded, Mapping) else None


def recorded(checkpoint: str | os.PathLike, key: str, default: Any) -> Any:
    """``key`` as recorded in ``checkpoint``'s config, else ``default``: for a config value that must match
    the checkpoint (a network size), so that by default the network is built as it was trained; a value given
    on the command line replaces this expression and wins."""
    config = recorded_config(checkpoint) or {}
    if key in config and config[key] != default:
        logger.info("%s = %r, as recorded in %s (the config's default is %r)", key, config[key], checkpoint, default)
    return config.get(key, default)


def config_differences(
    recorded_values: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ("version",)
) -> list[str]:
    """``"key: <checkpoint value> (checkpoint) vs <config value> (config)"`` for every key both hold with
    different values (``ignore``d keys aside)."""
    skip = set(ignore)
    return [
        f"{key}: {recorded_values[key]!r} (checkpoint) vs {current[key]!r} (config)"
        for key in current
        if key in recorded_values and key not in skip and _plain(current[key]) != recorded_values[key]
    ]


def _flag_value(value: Any) -> str:
    """``value`` as it would be typed after ``--key`` (fire reads Python literals; plain words stay strings)."""
    return value if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.:-]*", value) else repr(value)


def check_checkpoint(
    checkpoint: str | os.PathLike,
    config: RunConfig | Mapping[str, Any],
    what: str = "trained model checkpoint",
    ignore: Iterable[str] = ("version", "seed", "degradation"),
    required: bool = True,
) -> Path | None:
    """Require ``checkpoint`` and refuse it when the config it records differs from this run's ``config``
    (e.g. a ``transformer`` checkpoint evaluated as ``gradprom``: metrics without T, labelled wrongly), with
    every difference spelled out and the flags that would match it. ``ignore``: keys that may legitimately
    differ (evaluating on another degradation or data seed is a robustness test). A checkpoint without a
    recorded config (older runs) is accepted with a warning; a missing one is an error naming ``what``, or,
    with ``required=False``, left to the step that loads it (None is returned)."""
    from monai_gradprom.utils import require_file

    if not required and not Path(checkpoint).is_file():
        return None
    path = require_file(checkpoint, what)
    values = config.values if isinstance(config, RunConfig) else dict(config)
    saved = recorded_config(path)
    if saved is None:
        logger.warning("%s records no config (written before configs were recorded): not checked", path)
        return path
    differences = config_differences(saved, values, ignore)
    if differences:
        flags = " ".join(f"--{k} {_flag_value(saved[k])}" for k in values if k in saved and k not in set(ignore)
                         and _plain(values[k]) != saved[k])
        raise ConfigError(
            f"{path} was trained with other settings than this run's config:\n  - " + "\n  - ".join(differences)
            + f"\nRun with the checkpoint's settings ({flags}) or point --checkpoint at a matching run."
        )
    return path
