"""Export one of the project's bundles with a trained checkpoint as a standard, self-contained MONAI bundle.

The project's bundles live in ``bundles/<name>/`` as flat config files that find the package through
``bundle_root`` and write their checkpoints (a full training state: networks, optimizers, engine, RNG) under
``outputs/``. MONAI's tools (``monai.bundle.load``, ``ckpt_export``, ``verify_net_in_out``, MONAI Label / Deploy)
expect another layout: ``configs/`` + ``models/model.pt`` (the network's plain state dict) + ``docs/`` +
``LICENSE`` (+ the model zoo's ``large_files.yml``), relocatable (``bundle_root`` is ``"."``). :func:`export_bundle`
writes that layout from a bundle and a checkpoint, without touching either:
``bundles/<name>/train.json`` stays the user's entry point for training, the exported directory is what one hands
on.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from monai_gradprom.bundle.docs import export_readme, large_files_yml
from monai_gradprom.bundle.manifest import MANIFEST_NAME, install_export, make_staging_dir, previous_export_files
from monai_gradprom.bundle.manifest import write_manifest
from monai_gradprom.config.record import METADATA_KEY, recorded_config
from monai_gradprom.inference import state_dict_mismatches
from monai_gradprom.utils import atomic_save, load_checkpoint_file
from monai_gradprom.workflow import parse_overrides

__all__ = [
    "CONFIG_FILES",
    "RECOGNIZER_FILES",
    "bundles_root",
    "resolve_bundle",
    "split_checkpoint",
    "parse_overrides",
    "export_bundle",
    "schema_file",
    "MANIFEST_NAME",
]

logger = logging.getLogger(__name__)

#: files copied from ``bundles/<name>/`` into ``configs/`` when present (the first four are required)
CONFIG_FILES = (
    "train.json", "evaluate.json", "inference.json", "metadata.json", "multi_gpu_train.json", "logging.conf"
)
_REQUIRED = CONFIG_FILES[:4]
#: training-checkpoint key -> (file under ``models/``, config id of the network it is loaded into)
RECOGNIZER_FILES = {"vr_network": "vr_model.pt", "transformer_network": "transformer_model.pt"}
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers: not part of the network's own keys
_SEP = "#"  # MONAI's config id separator
_SCHEMAS = Path(__file__).resolve().parent / "schemas"


def bundles_root() -> Path:
    """``bundles/`` of the source tree this package runs from (bundles are not part of the installed wheel)."""
    return Path(__file__).resolve().parents[2] / "bundles"


def resolve_bundle(bundle: str | os.PathLike) -> Path:
    """A bundle directory given as a path, or as a name under :func:`bundles_root`; errors list the known ones."""
    path = Path(bundle)
    if not path.is_dir():
        path = bundles_root() / str(bundle)
    if not path.is_dir():
        known = sorted(p.name for p in bundles_root().glob("*") if (p / "train.json").is_file())
        raise FileNotFoundError(f"bundle {str(bundle)!r} not found (not a directory, nor one of {known})")
    missing = [name for name in _REQUIRED if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"bundle {path} lacks {missing}: a bundle needs {list(_REQUIRED)}")
    return path


def _plain_state(state: Any, what: str) -> dict[str, torch.Tensor]:
    """A state dict of tensors with DDP / ``torch.compile`` prefixes removed, or a ValueError naming ``what``."""
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} is not a state dict of tensors")
    out = dict(state)
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def split_checkpoint(checkpoint: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """``(ip_state, {key: recognizer_state})`` from a training checkpoint, or ``(state, {})`` from a plain one.

    A training checkpoint is the trainer's ``checkpoint_dict()`` as saved by the bundles (``model_final.pt``,
    ``checkpoint_*.pt``): IP's weights under ``ip_network``, VR's under ``vr_network``, RA's transformer under
    ``transformer_network``; optimizers, engine and RNG states are dropped. Loaded with ``weights_only=True``.
    """
    path = Path(checkpoint)
    content = load_checkpoint_file(path)
    if isinstance(content, Mapping) and "ip_network" in content:
        recognizers = {
            key: _plain_state(content[key], f"{key!r} of checkpoint {path}")
            for key in RECOGNIZER_FILES
            if content.get(key) is not None
        }
        return _plain_state(content["ip_network"], f"'ip_network' of checkpoint {path}"), recognizers
    keys = list(content)[:8] if isinstance(content, Mapping) else type(content).__name__
    try:
        return _plain_state(content, f"checkpoint {path}"), {}
    except ValueError:
        raise ValueError(
            f"checkpoint {path} holds neither a training checkpoint (key 'ip_network') nor a state dict; "
            f"found {keys}"
        ) from None


def _locate(config: Any, id_: str) -> tuple[Any, Any] | None:
    """``(container, key)`` holding config id ``id_`` in a raw config, or None.

    Either a literal top-level key (override files write ``"train#sampler": ...``, and rewriting those as nested
    dicts would change what they replace when layered) or a path through nested dicts and lists.
    """
    if isinstance(config, dict) and id_ in config:
        return config, id_
    *parents, last = id_.split(_SEP)
    node = config
    for part in parents:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, dict) and last in node:
        return node, last
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node, int(last)
    return None


def _require(config: dict, id_: str, filename: str) -> tuple[Any, Any]:
    found = _locate(config, id_)
    if found is None:
        raise ValueError(f"{filename} defines no {id_!r}: the exporter cannot point it at the exported files")
    return found


def _models_path(name: str) -> str:
    return f"$os.path.join(@bundle_root, 'models', '{name}')"


def _split_checkpoint_loaders(node: Any, recognizers: Iterable[str]) -> int:
    """Replace every CheckpointLoader of ``@checkpoint`` found in a list under ``node`` by one loader of IP's plain
    state dict (``models/model.pt``; a single-key ``load_dict`` takes a plain state dict) and one per recognizer
    file. Searched by content, not by id, so the evaluate config's layout may change. Returns how many."""
    count = 0
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in list(children):
        count += _split_checkpoint_loaders(child, recognizers)
    if isinstance(node, list):
        for i in reversed(range(len(node))):
            item = node[i]
            if isinstance(item, dict) and item.get("_target_", "").endswith("CheckpointLoader") \
                    and item.get("load_path") == "@checkpoint":
                loaders = [{**item, "load_dict": {"ip_network": "@ip_network"}}]
                loaders += [
                    {**item, "load_path": _models_path(RECOGNIZER_FILES[key]), "load_dict": {key: f"@{key}"}}
                    for key in recognizers
                ]
                node[i : i + 1] = loaders
                count += 1
    return count


def _move_lock_into_runs(train: dict, evaluate: dict) -> None:
    """Take the output folder's lock (which creates the folder) when a workflow runs rather than when it is
    created, so that loading the export (``monai.bundle.load`` initializes a train workflow) writes nothing."""
    init = train.get("initialize")
    if not isinstance(init, list):
        return
    locks = [step for step in init if isinstance(step, str) and "lock_output_dir(" in step]
    runs = [c["run"] for c in (train, evaluate) if isinstance(c.get("run"), list)]
    if not locks or len(runs) < 2:
        return
    train["initialize"] = [step for step in init if step not in locks]
    for run in runs:
        run[:0] = locks


def _make_self_contained(configs: dict[str, dict], recognizers: Iterable[str]) -> None:
    """Point the configs at the exported directory, MONAI's way: ``bundle_root`` is ``"."`` (the bundle folder
    as the current directory, or ``--bundle_root``), outputs under it, weights in ``models/``."""
    train, evaluate, infer = configs["train.json"], configs["evaluate.json"], configs["inference.json"]
    for config in (train, infer):
        config["bundle_root"] = "."
    train["output_dir"] = "$os.path.join(@bundle_root, 'outputs', @strategy)"
    if _locate(train, "network_def") is None:  # MONAI's property id for the network (loads model.pt)
        _require(train, "ip_network_def", "train.json")
        train["network_def"] = "@ip_network_def"
    _move_lock_into_runs(train, evaluate)

    evaluate["checkpoint"] = _models_path("model.pt")
    if not _split_checkpoint_loaders(evaluate, recognizers):
        raise ValueError(
            "evaluate.json has no CheckpointLoader with load_path '@checkpoint' in a handler list: the exporter "
            "cannot point it at models/model.pt"
        )

    infer["checkpoint"] = _models_path("model.pt")
    if _locate(infer, "model_dir") is not None:
        infer["model_dir"] = "$os.path.join(@bundle_root, 'models')"
    infer["output_dir"] = "$os.path.join(@bundle_root, 'outputs', 'enhanced')"
    if _locate(infer, "network_def") is None:
        raise ValueError("inference.json defines no 'network_def' (MONAI's id for the network to load)")


def _adopt_recorded(configs: dict[str, dict], recorded: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Set the settings the checkpoint records (network sizes, strategy, ...) in every exported config that
    defines them at the top level, as evaluation and inference build their networks; ``overrides`` win."""
    adopted = {}
    for key, value in recorded.items():
        if key == "version" or key in overrides:
            continue
        for config in configs.values():
            if key in config and config[key] != value:
                config[key] = copy.deepcopy(value)
                adopted[key] = value
    if adopted:
        logger.info("exported configs take the checkpoint's recorded %s",
                    ", ".join(f"{k}={v!r}" for k, v in adopted.items()))


def _literal_sizes(configs: dict[str, dict], recorded: Mapping[str, Any]) -> None:
    """inference.json reads its network sizes from ``@checkpoint`` (``monai_gradprom.config.recorded``); with
    ``bundle_root`` ``"."`` that path depends on the current directory, so the export writes them as values:
    the checkpoint's recorded one, else train.json's (the sizes the weights were just checked against)."""
    infer, train = configs["inference.json"], configs["train.json"]
    for key, value in list(infer.items()):
        if not (isinstance(value, str) and "config.recorded(" in value):
            continue
        if key in recorded:
            infer[key] = copy.deepcopy(recorded[key])
        elif key in train and not (isinstance(train[key], str) and train[key].startswith("$")):
            infer[key] = copy.deepcopy(train[key])


def _apply_overrides(configs: dict[str, dict], overrides: Mapping[str, Any]) -> None:
    """Set each id in every exported config that defines it; a new top-level id goes into train.json."""
    for id_, value in overrides.items():
        hits = [found for found in (_locate(c, id_) for c in configs.values()) if found is not None]
        for container, key in hits:
            container[key] = copy.deepcopy(value)
        if not hits:
            if _SEP in id_:
                raise ValueError(f"override {id_!r}: no exported config ({sorted(configs)}) defines it")
            configs["train.json"][id_] = copy.deepcopy(value)


def _license_text(bundle: Path) -> str:
    for candidate in (bundle / "LICENSE", bundle.parent.parent / "LICENSE"):
        if candidate.is_file():
            return candidate.read_text()
    return (
        "SPDX-License-Identifier: Apache-2.0\n\n"
        "This bundle's configs, code references and trained weights are distributed under the Apache License,\n"
        "Version 2.0: https://www.apache.org/licenses/LICENSE-2.0\n"
        "The training data keep their own licenses; see docs/README.md.\n"
    )


def _listing(names: list[str], limit: int = 3) -> str:
    return f"{len(names)} ({', '.join(names[:limit])}{', ...' if len(names) > limit else ''})"


def _check_fits(network: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, hint: str) -> None:
    """Load ``state`` strictly; a mismatch raises a ValueError that counts and samples the differing keys."""
    problems = [p.replace(": ", " ", 1) for p in state_dict_mismatches(network, state, _listing)]
    if problems:
        raise ValueError(f"{what} does not fit the exported config's {type(network).__name__}: "
                         + "; ".join(problems) + f". {hint}")
    network.load_state_dict(state, strict=True)


def _verify(staging: Path, ip_state: Mapping, recognizers: Mapping[str, Mapping], bundle: str) -> dict | None:
    """Build ``network_def`` (and VR / transformer) from the exported configs and load the weights strictly, so
    a checkpoint trained at other sizes (e.g. a smoke run) fails here rather than at a user's first load.
    Returns the exported train.json's ``run_config`` values (the settings the weights fit), None if it has none."""
    from monai.bundle import ConfigParser

    hint = (
        "Export with the settings the checkpoint was trained with, e.g. "
        f"--overrides bundles/{bundle}/smoke.json or --set ip_channels=... ip_blocks=..."
    )
    parser = ConfigParser()
    parser.read_config(str(staging / "configs" / "train.json"))
    parser.read_meta(str(staging / "configs" / "metadata.json"))
    _check_fits(parser.get_parsed_content("network_def"), ip_state, "models/model.pt", hint)
    infer = ConfigParser()
    infer.read_config(str(staging / "configs" / "inference.json"))
    _check_fits(infer.get_parsed_content("network_def"), ip_state, "models/model.pt (inference.json)", hint)
    for key, state in recognizers.items():
        try:
            network = parser.get_parsed_content(key if key != "vr_network" else "vr_network_def")
        except Exception as exc:  # noqa: BLE001 - e.g. a recognizer back end that does not import here
            logger.warning("could not build %s to check models/%s: %s", key, RECOGNIZER_FILES[key], exc)
            continue
        if network is None:
            raise ValueError(
                f"the checkpoint holds {key!r} but the exported train.json builds none (was it trained with another "
                "strategy? e.g. --set strategy=transformer)"
            )
        _check_fits(network, state, f"models/{RECOGNIZER_FILES[key]}", hint)
    return dict(parser.get_parsed_content("run_config").values) if "run_config" in parser else None


def schema_file(metadata: Mapping[str, Any]) -> Path | None:
    """The metadata schema the package ships for ``metadata["schema"]`` (matched by file name), or None."""
    name = str(metadata.get("schema", "")).rsplit("/", 1)[-1]
    path = _SCHEMAS / name
    return path if name and path.is_file() else None


def export_bundle(
    bundle: str | os.PathLike,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    torchscript: bool = False,
) -> Path:
    """Write ``bundle`` with ``checkpoint``'s weights to ``out`` in MONAI's bundle layout; returns ``out``.

    ``out/configs/`` holds the bundle's configs made self-contained and relocatable (``bundle_root`` is ``"."``,
    MONAI's convention; outputs go under ``outputs/``, ``checkpoint`` is ``models/model.pt``, ``network_def`` is
    IP), ``metadata.json`` with the settings the weights were trained with under ``run_config`` (evaluation and
    inference read them there, as from a training checkpoint) and the metadata schema (``verify_metadata``
    offline); ``out/models/model.pt`` IP's plain state dict (what ``monai.bundle.load`` and ``ckpt_export``
    read), ``vr_model.pt`` / ``transformer_model.pt`` the recognizer's and RA transformer's (evaluate.json loads
    them); ``out/docs/README.md`` written for the export, ``out/LICENSE`` and ``out/large_files.yml`` (the model
    zoo's list of weight files with their hashes).

    The settings the checkpoint records (network sizes, strategy, ...) are set in the configs, as evaluation does;
    ``overrides`` (config id -> value) are set after them in every config that defines the id. The weights are
    checked against the exported configs' networks before anything appears at ``out``: everything is written to
    a folder next to ``out`` and moved into place. An existing, non-empty ``out`` is refused unless
    ``overwrite``, which replaces only the files a previous export wrote there (its manifest,
    ``.monai_gradprom_export.json``): an ``out`` holding the checkpoint or any other file is refused, naming
    them. ``torchscript`` also writes ``models/model.ts`` with ``monai.bundle.ckpt_export``.
    """
    source = resolve_bundle(bundle)
    out = Path(out).resolve()
    previous = previous_export_files(out, checkpoint, overwrite)
    ip_state, recognizers = split_checkpoint(checkpoint)
    recorded = recorded_config(checkpoint) or {}
    overrides = dict(overrides or {})
    configs = {
        name: json.loads((source / name).read_text())
        for name in CONFIG_FILES
        if name.endswith(".json") and name != "metadata.json" and (source / name).is_file()
    }
    _make_self_contained(configs, recognizers)
    _adopt_recorded(configs, recorded, overrides)
    _apply_overrides(configs, overrides)
    _literal_sizes(configs, recorded)
    metadata = json.loads((source / "metadata.json").read_text())

    staging = make_staging_dir(out)
    try:
        (staging / "configs").mkdir()
        for name, config in configs.items():
            (staging / "configs" / name).write_text(json.dumps(config, indent=4) + "\n")
        if (source / "logging.conf").is_file():
            shutil.copyfile(source / "logging.conf", staging / "configs" / "logging.conf")
        schema = schema_file(metadata)
        if schema is not None:
            shutil.copyfile(schema, staging / "configs" / schema.name)
        (staging / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=4) + "\n")
        atomic_save(ip_state, staging / "models" / "model.pt")
        for key, state in recognizers.items():
            atomic_save(state, staging / "models" / RECOGNIZER_FILES[key])
        run_config = _verify(staging, ip_state, recognizers, source.name)
        record = dict(recorded) if recorded else run_config
        if record:  # read by monai_gradprom.config.recorded_config for models/*.pt of this bundle
            metadata[METADATA_KEY] = record
            (staging / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=4) + "\n")
        if torchscript:
            from monai.bundle import ckpt_export

            ckpt_export(
                net_id="network_def",
                filepath=str(staging / "models" / "model.ts"),
                ckpt_file=str(staging / "models" / "model.pt"),
                meta_file=str(staging / "configs" / "metadata.json"),
                config_file=str(staging / "configs" / "inference.json"),
            )
        models = sorted(p.name for p in (staging / "models").iterdir())
        (staging / "large_files.yml").write_text(large_files_yml(staging, [f"models/{m}" for m in models]))
        (staging / "docs").mkdir()
        readme = (source / "README.md").read_text() if (source / "README.md").is_file() else ""
        (staging / "docs" / "README.md").write_text(
            export_readme(readme, source.name, metadata, models, schema.name if schema else None))
        (staging / "LICENSE").write_text(_license_text(source))
        write_manifest(staging, {"bundle": source.name, "checkpoint": str(Path(checkpoint).resolve())})
        install_export(staging, out, previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("exported bundle %s with %s to %s", source.name, checkpoint, out)
    return out
