"""Pretraining VR on clean images (or loading it from a checkpoint) before it is cascaded behind IP.

A non-finite recognizer is never saved or reused: the pretrained file is a cache that every later run into the same
folder loads without training, so one NaN run (bad pixels, a diverged optimizer) would otherwise poison all of
them, long after the cause is fixed.

The cache also records what it depends on (:func:`pretraining_record`: the bundle's data list digest, image size,
seed, degradation, ... and the recognizer's architecture, epochs and optimizer), so that a run with other data or
settings does not silently reuse a recognizer trained for another one. The rule:

- a cache whose record matches is loaded;
- a cache written by this package (it has a record) that differs is pretrained again and replaced, with a warning
  naming every differing key;
- a file without a record (an older cache, or weights from elsewhere) is never overwritten: the run stops with a
  message saying so; ``pretrain_epochs 0`` loads any file as it is (the user vouches for it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.metrics import DiceMetric
from torch import nn

from monai_gradprom.distributed import is_distributed, rank
from monai_gradprom.engines.trainer import mark_pretrained, prepare_enhancement_batch
from monai_gradprom.losses import default_vr_loss
from monai_gradprom.utils import atomic_save, load_checkpoint_file

__all__ = [
    "NonFiniteWeightsError",
    "StaleRecognizerCacheError",
    "non_finite_tensors",
    "pretrain_recognizer",
    "load_network_weights",
    "datalist_digest",
    "pretraining_record",
    "RECORD_KEY",
]

#: the key of a pretrained-VR cache file that holds its record; the weights are under ``"vr_network"``
RECORD_KEY = "pretraining"

logger = logging.getLogger(__name__)


class NonFiniteWeightsError(RuntimeError):
    """A network's weights hold NaN or Inf: they are refused rather than saved or loaded."""


class StaleRecognizerCacheError(RuntimeError):
    """A pretrained-VR file that does not record what it was trained on: neither used nor overwritten."""


def _digest_value(value: Any, digest: Any) -> None:
    """Feed ``value`` (dicts, lists, strings, numbers, arrays / tensors) into ``digest``, arrays by content."""
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            digest.update(f"<{key}>".encode())
            _digest_value(value[key], digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"[{len(value)}".encode())
        for item in value:
            _digest_value(item, digest)
    elif hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy array or tensor
        import numpy as np

        array = np.ascontiguousarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    else:
        digest.update(repr(value if not isinstance(value, os.PathLike) else os.fspath(value)).encode())


def datalist_digest(items: Iterable[Any]) -> str:
    """SHA-256 of a data list: file names as written, in-memory arrays (the phantom) by content. Another split,
    seed or subset gives another digest (a file whose content changes under the same name does not)."""
    digest = hashlib.sha256()
    _digest_value(list(items), digest)
    return digest.hexdigest()


def _unwrapped(network: nn.Module) -> nn.Module:
    for attribute in ("module", "_orig_mod"):  # DDP, torch.compile
        network = getattr(network, attribute, network)
    return network


#: optimizer settings that change what pretraining learns (flags such as ``foreach`` or ``fused`` do not)
_HYPERPARAMETERS = ("lr", "betas", "momentum", "dampening", "nesterov", "weight_decay", "eps", "alpha", "amsgrad")


def pretraining_record(
    network: nn.Module,
    epochs: int,
    optimizer: torch.optim.Optimizer | None,
    task_key: str,
    image_key: str,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a pretrained recognizer depends on: ``settings`` (from the bundle: data list digest, sizes, seed,
    degradation, ...) plus the network's architecture (a digest of its layers and parameter shapes), the epochs,
    the optimizer and its hyperparameters, and the task / image keys. JSON-like values only."""
    module = _unwrapped(network)
    shapes = {name: list(t.shape) for name, t in module.state_dict().items()}
    architecture = hashlib.sha256((repr(module) + json.dumps(shapes, sort_keys=True)).encode()).hexdigest()[:16]
    groups = [{k: v for k, v in group.items() if k in _HYPERPARAMETERS}
              for group in getattr(optimizer, "param_groups", [])]
    own = {
        "network": f"{type(module).__name__}:{architecture}",
        "epochs": epochs,
        "optimizer": f"{type(optimizer).__name__} {json.dumps(groups, sort_keys=True, default=str)}"
        if optimizer is not None else None,
        "task_key": task_key,
        "image_key": image_key,
    }
    return json.loads(json.dumps({**dict(settings or {}), **own}, default=str))


def _record_differences(cached: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    missing = object()
    return [
        f"{key}: {cached.get(key, '(not recorded)')!r} (cache) vs {current.get(key, '(not set)')!r} (this run)"
        for key in sorted(set(cached) | set(current))
        if cached.get(key, missing) != current.get(key, missing)
    ]


def non_finite_tensors(state: Mapping[str, object]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding a NaN or Inf (buffers such as BatchNorm's
    running statistics included: one NaN batch makes them NaN while every weight stays finite)."""
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def _names(names: Sequence[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_network_weights(network: nn.Module, path: str | os.PathLike, key: str | None = None) -> nn.Module:
    """Load a state dict (or the entry ``key`` of a checkpoint dict) into ``network`` strictly.

    A checkpoint of another architecture fails with an error naming the file and the mismatched keys; one
    holding non-finite values raises :class:`NonFiniteWeightsError` naming the file and saying to delete it.
    """
    path = Path(path)
    state = load_checkpoint_file(path)
    if key is None and isinstance(state, Mapping) and RECORD_KEY in state:  # a pretrained-VR cache
        key = "vr_network"
    if key is not None and isinstance(state, dict) and key in state:
        state = state[key]
    bad = non_finite_tensors(state) if isinstance(state, Mapping) else []
    if bad:
        raise NonFiniteWeightsError(
            f"checkpoint {path} holds NaN / Inf in {len(bad)} of {len(state)} tensors ({_names(bad)}): it was "
            f"saved by a diverged run and is refused; delete {path} to train it again"
        )
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not match the network {type(network).__name__}: {exc}") from exc
    return network


@torch.no_grad()
def clean_score(
    network: nn.Module,
    data_loader: Iterable,
    device: torch.device | str,
    task_key: str = "label",
    image_key: str = "target",
    input_transform: Callable | None = None,
) -> tuple[str, float]:
    """``(name, value)``: the recognizer's top-1 ``accuracy`` (``task_key="label"``) or foreground ``dice``
    (a mask) on the clean images of ``data_loader``. The RNG states are restored afterwards (a DataLoader draws
    a seed from torch's generator), and the network's train / eval mode too."""
    was_training = network.training
    network.eval()
    correct, count = 0.0, 0
    dice = DiceMetric(include_background=False, reduction="mean", ignore_empty=True)
    with torch.random.fork_rng(devices=[torch.device(device)] if torch.device(device).type == "cuda" else []):
        for batchdata in data_loader:
            batch = prepare_enhancement_batch(batchdata, device, keys=(image_key, task_key))
            image = batch[image_key] if input_transform is None else input_transform(batch[image_key])
            logits = network(image)
            true = batch[task_key]
            if logits.ndim == 2:
                correct += float((logits.argmax(1) == true.reshape(-1).long()).sum())
                count += len(true)
            else:
                classes = logits.shape[1]
                mask = true[:, 0] if true.ndim == logits.ndim else true
                dice(F.one_hot(logits.argmax(1), classes).movedim(-1, 1),
                     F.one_hot(mask.long(), classes).movedim(-1, 1))
    network.train(was_training)
    if count:
        return "accuracy", correct / count
    return "dice", float(dice.aggregate()) if dice.get_buffer() is not None else float("nan")


def _log_pretraining(trainer: SupervisedTrainer, network: nn.Module, val_data_loader: Iterable | None,
                     device, task_key: str, image_key: str, input_transform: Callable | None) -> None:
    """Log each pretraining epoch: the mean training loss and, with ``val_data_loader``, the clean score."""
    losses: list[torch.Tensor] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _keep_loss(engine):
        losses.append(torch.as_tensor(engine.state.output["loss"]).detach().float())

    @trainer.on(Events.EPOCH_COMPLETED)
    def _log(engine):
        loss = float(torch.stack(losses).mean()) if losses else float("nan")
        losses.clear()
        message = f"VR pretraining epoch {engine.state.epoch}/{engine.state.max_epochs}: loss {loss:.4f}"
        if val_data_loader is not None:
            name, value = clean_score(network, val_data_loader, device, task_key, image_key, input_transform)
            message += f", clean validation {name} {value:.4f}"
        if rank() == 0:
            logger.info(message)


def pretrain_recognizer(
    network: nn.Module,
    data_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device | str,
    task_key: str = "label",
    image_key: str = "target",
    loss_function: Callable | None = None,
    checkpoint: str | os.PathLike | None = None,
    input_transform: Callable | None = None,
    handlers: Sequence | None = None,
    amp: bool = False,
    record: Mapping[str, Any] | None = None,
    val_data_loader: Iterable | None = None,
) -> nn.Module:
    """Train ``network`` to recognise ``task_key`` on clean images (the batch's ``target``), with MONAI's
    SupervisedTrainer, and mark it pretrained.

    With ``checkpoint``: the trained weights are saved there (atomically) as ``{"vr_network": state,
    "pretraining": record}``, the record being :func:`pretraining_record` of this call with ``record`` (the
    bundle's settings: data list digest, sizes, seed, degradation, ...). An existing file is loaded instead of
    training when its record matches; see the module docstring for the rule on a mismatch or a file without a
    record (:class:`StaleRecognizerCacheError`). ``epochs <= 0`` never trains: an existing file is loaded as it is,
    and without one the network stays untrained (and unmarked). A file holding NaN / Inf is refused (see
    :func:`load_network_weights`). Weights that came out of training non-finite raise
    :class:`NonFiniteWeightsError` and are not saved. Callers that pass no ``record`` keep the earlier behaviour
    for files without one (loaded as they are). Every epoch logs (INFO) the mean training loss and,
    with ``val_data_loader``, the recognizer's score on its clean images (:func:`clean_score`).
    """
    current = pretraining_record(network, epochs, optimizer, task_key, image_key, record)
    if checkpoint is not None and Path(checkpoint).is_file():
        if _use_cached(network, Path(checkpoint), current, epochs, strict=record is not None):
            return mark_pretrained(network)
    if epochs <= 0:
        return network
    loss_function = loss_function if loss_function is not None else default_vr_loss(task_key)

    def prepare(batchdata, device, non_blocking=False, **kwargs):
        # plain tensors, as in GradPromTrainer: no metadata is needed, and compiled networks reject MetaTensors
        batch = prepare_enhancement_batch(batchdata, device, non_blocking, keys=(image_key, task_key))
        image = batch[image_key]
        if input_transform is not None:
            image = input_transform(image)
        return image, batch[task_key]

    # Under torch.distributed the recognizer is wrapped in DDP so that every rank pretrains the same weights.
    trained = network
    if is_distributed():
        device_ids = [torch.device(device)] if torch.device(device).type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=epochs,
        train_data_loader=data_loader,
        network=trained,
        optimizer=optimizer,
        loss_function=loss_function,
        prepare_batch=prepare,
        train_handlers=handlers,
        amp=amp and torch.device(device).type == "cuda",
        decollate=False,
    )
    _log_pretraining(trainer, network, val_data_loader, device, task_key, image_key, input_transform)
    trainer.run()
    network.eval()
    bad = non_finite_tensors(network.state_dict())
    if bad:  # every rank holds the same weights: all of them stop, none saves
        where = f"; nothing was saved to {checkpoint}" if checkpoint is not None else ""
        raise NonFiniteWeightsError(
            f"pretraining the recognizer left NaN / Inf in {len(bad)} of {len(network.state_dict())} tensors "
            f"({_names(bad)}){where}: check the data for non-finite pixels (the data check names such files) "
            f"or lower pretrain_learning_rate"
        )
    if checkpoint is not None and rank() == 0:
        atomic_save({"vr_network": network.state_dict(), RECORD_KEY: current}, checkpoint)
    return mark_pretrained(network)


def _use_cached(network: nn.Module, path: Path, current: Mapping[str, Any], epochs: int, strict: bool) -> bool:
    """Load the cache at ``path`` into ``network`` when it fits this run (True), or say why it is pretrained again
    (False); a file without a record raises :class:`StaleRecognizerCacheError` when ``strict``."""
    content = load_checkpoint_file(path)
    cached = content.get(RECORD_KEY) if isinstance(content, Mapping) else None
    if epochs <= 0:
        if cached is None or _record_differences(cached, current):
            logger.warning("pretrain_epochs is %s: loading VR from %s as it is (its record is not checked)",
                           epochs, path)
        load_network_weights(network, path)
        return True
    if not isinstance(cached, Mapping):
        if not strict:
            logger.info("loading pretrained VR from %s (it records no pretraining settings)", path)
            load_network_weights(network, path)
            return True
        raise StaleRecognizerCacheError(
            f"{path} records no pretraining settings (a cache written by an older monai_gradprom, or weights from "
            "elsewhere), so whether it fits this run's data and recognizer cannot be checked; it was neither used "
            f"nor overwritten. Delete or move it to pretrain VR again here, or pass --pretrain_epochs 0 to use it "
            "as it is."
        )
    differences = _record_differences(cached, current)
    if differences:
        logger.warning("%s was pretrained with other settings than this run:\n  - %s\npretraining VR again and "
                       "replacing it", path, "\n  - ".join(differences))
        return False
    logger.info("loading pretrained VR from %s (its record matches this run)", path)
    load_network_weights(network, path)
    return True
