"""Ignite handlers MONAI does not provide: writing metrics.json (and a per-image CSV), reading scalar outputs,
non-finite losses, gradient clipping at BACKWARD_COMPLETED, named TensorBoard images of the evaluator's output."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar
from ignite.handlers.checkpoint import BaseSaveHandler
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointSaver, TensorBoardImageHandler
from monai.visualize import plot_2d_or_3d_image

from monai_gradprom.engines.output import batch_level
from monai_gradprom.utils import atomic_save, atomic_write, show_progress

__all__ = [
    "AtomicCheckpointSaver",
    "ClipGradNorm",
    "EnhancementImageHandler",
    "attach_checkpointing",
    "scalar_outputs",
    "MetricsJSONWriter",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "TrainingProgressBar",
    "NanMean",
]


def scalar_outputs(keys: Sequence[str] = ("loss_ip", "loss_vr", "cos", "gate", "cos_exact", "gate_exact")):
    """An ``output_transform`` returning ``{key: float}`` for the keys present (for MONAI's Stats handlers,
    which log every entry of a dict). NaN entries (e.g. ``loss_vr`` of ``plain``) are left out; ``cos_exact``
    and ``gate_exact`` exist only when a cheaper gating mode runs with ``audit``."""

    def transform(output: Any) -> dict[str, float]:
        output = batch_level(output)  # decollated: the batch values (MONAI replicates scalars per sample)
        values = {}
        for key in keys:
            if isinstance(output, Mapping) and key in output:
                value = float(torch.as_tensor(output[key]).float().mean())
                if not math.isnan(value):
                    values[key] = value
        return values

    return transform


def _filenames(batch: Any, key: str) -> list[str] | None:
    """The source file of each sample of a batch (MetaTensor metadata or a ``{key}_meta_dict``), None if unknown."""
    if isinstance(batch, (list, tuple)):  # decollated
        names = [_filenames(item, key) for item in batch]
        return None if any(n is None for n in names) else [n[0] for n in names]  # type: ignore[index]
    if not isinstance(batch, Mapping):
        return None
    meta = getattr(batch.get(key), "meta", None) or batch.get(f"{key}_meta_dict")
    names = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    if names is None:
        return None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else [str(names)]


def _sample_ids(batch: Any, key: str) -> list[str] | None:
    """Each sample's ``key`` entry (the data list's ``id``, collated into a list), None if the batch has none."""
    if isinstance(batch, (list, tuple)):  # decollated
        ids = [item.get(key) if isinstance(item, Mapping) else None for item in batch]
        return None if any(i is None for i in ids) else [str(i) for i in ids]
    if not isinstance(batch, Mapping) or batch.get(key) is None:
        return None
    ids = batch[key]
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    return [str(i) for i in ids] if isinstance(ids, (list, tuple)) else [str(ids)]


def _per_image(details: Any) -> torch.Tensor | None:
    """One value per image from MONAI's metric details (``(N,)`` or ``(N, C)``: NaN-aware mean over C)."""
    values = torch.as_tensor(details).detach().double().cpu()
    if values.ndim == 0:
        return None
    return values if values.ndim == 1 else values.reshape(len(values), -1).nanmean(1)


class MetricsJSONWriter:
    """Write the engine's metrics (``engine.state.metrics``, means over the evaluation set) to a JSON file when
    the run completes, atomically, together with optional extra fields (e.g. the strategy and settings).

    Next to it (``per_image=True``), ``per_image_filename`` (default: the JSON file's stem + ``_per_image.csv``,
    i.e. ``metrics_per_image.csv``) gets one row per image: its index in evaluation order, its source file when
    the batches carry MONAI metadata (column ``filename``), else each sample's ``id_key`` entry (the data lists'
    ``id``, column ``id``), and every metric that keeps per-image details (MONAI's ``save_details``;
    the evaluator's metrics all do), averaged over classes for Dice / mIoU. Their column means are the values in
    the JSON file.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        filename: str = "metrics.json",
        extra: dict | None = None,
        per_image: bool = True,
        per_image_filename: str | None = None,
        image_key: str = "image",
        id_key: str = "id",
    ):
        self.path = Path(output_dir) / filename
        self.extra = dict(extra or {})
        csv_name = per_image_filename or f"{self.path.stem}_per_image.csv"
        self.per_image_path = Path(output_dir) / csv_name if per_image else None
        self.image_key, self.id_key = image_key, id_key
        self._names: list[str] | None = []
        self._name_column: str | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_names)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._names, self._name_column = [], None

    def _collect_names(self, engine: Engine) -> None:
        if self._names is None:
            return
        names, column = _filenames(engine.state.batch, self.image_key), "filename"
        if names is None:
            names, column = _sample_ids(engine.state.batch, self.id_key), "id"
        if names is None or self._name_column not in (None, column):
            self._names = None
        else:
            self._names, self._name_column = self._names + names, column

    def __call__(self, engine: Engine) -> None:
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float, torch.Tensor))}
        payload = {**metrics, **self.extra}
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True)))
        if self.per_image_path is not None:
            self.write_per_image(engine)

    def write_per_image(self, engine: Engine) -> None:
        columns = {}
        for name, details in sorted(getattr(engine.state, "metric_details", {}).items()):
            values = _per_image(details)
            if values is not None:
                columns[name] = values
        if not columns:
            return
        n = max(len(v) for v in columns.values())
        columns = {k: v for k, v in columns.items() if len(v) == n}
        names = self._names if self._names and len(self._names) == n else None  # DDP: other ranks' names unknown
        header = ["index"] + ([self._name_column] if names else []) + list(columns)
        rows = []
        for i in range(n):
            row = [str(i)] + ([names[i]] if names else []) + [repr(float(v[i])) for v in columns.values()]
            rows.append(row)

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([header, *rows])

        atomic_write(self.per_image_path, write)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or Inf loss."""


class StopOnNonFiniteLoss:
    """Stop training with a clear error naming the iteration when a loss becomes NaN or Inf.

    Attach it *before* any checkpoint saver so that the corrupted state is never saved; the last good
    checkpoint stays on disk. It reads the losses after the step, like a logging handler (a host sync per
    iteration, which the logging already costs).
    """

    def __init__(self, keys: Sequence[str] = ("loss_ip", "loss_vr")):
        self.keys = tuple(keys)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        output = batch_level(engine.state.output)
        for key in self.keys:
            if not isinstance(output, Mapping) or key not in output:
                continue
            value = torch.as_tensor(output[key]).float()
            if key == "loss_vr" and bool(torch.isnan(value).all()) and not bool(torch.isinf(value).any()):
                uses_vr = getattr(getattr(engine, "strategy", None), "uses_vr", False)
                if not uses_vr or engine.state.epoch <= getattr(engine, "ip_warmup_epochs", 0):
                    continue  # NaN is the documented "unused" marker here
            if not bool(torch.isfinite(value).all()):
                raise NonFiniteLossError(
                    f"{key} became {float(value.reshape(-1)[0])} at iteration {engine.state.iteration} "
                    f"(epoch {engine.state.epoch}); training stopped, the last saved checkpoint is kept"
                )


class TrainingProgressBar:
    """Ignite's ProgressBar in the ``attach(engine)`` form MONAI handler lists expect, showing the scalar losses
    (and, for gating strategies, the cosine and gate) of the latest iteration.

    ``enabled=None`` (default): only when stderr is a terminal (:func:`monai_gradprom.utils.show_progress`); in
    a redirected log every redraw would be another line, and the epoch lines of ``StatsHandler`` remain."""

    def __init__(
        self, keys: Sequence[str] = ("loss_ip", "loss_vr", "cos", "gate"), persist: bool = True,
        enabled: bool | None = None,
    ):
        self.keys = tuple(keys)
        self.persist = persist
        self.enabled = enabled

    def attach(self, engine: Engine) -> None:
        if not (show_progress() if self.enabled is None else self.enabled):
            return
        ProgressBar(persist=self.persist).attach(engine, output_transform=scalar_outputs(self.keys))


class NanMean(Metric):
    """Epoch mean of one scalar entry of the output dict, skipping NaN (e.g. the gate-open rate, whose entry is
    NaN while IP warms up or between accumulation steps). Reduced across ranks under DDP."""

    def __init__(self, key: str = "gate", device: str | torch.device = "cpu"):
        self.key = key
        super().__init__(output_transform=self._extract, device=device)

    def _extract(self, output: Any) -> torch.Tensor:
        output = batch_level(output)
        if not isinstance(output, Mapping) or self.key not in output:
            return torch.tensor(float("nan"))
        return torch.as_tensor(output[self.key]).detach().double().mean()

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.zeros((), dtype=torch.float64, device=self._device)
        self._count = torch.zeros((), dtype=torch.float64, device=self._device)

    @reinit__is_reduced
    def update(self, value: torch.Tensor) -> None:
        value = value.to(self._device)
        valid = ~torch.isnan(value)
        self._sum += torch.where(valid, value, torch.zeros_like(value))
        self._count += valid.double()

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        count = float(self._count)
        return float(self._sum) / count if count > 0 else float("nan")


DEFAULT_IMAGE_KEYS = {"image": "input", "pred": "output", "target": "target", "pred_seg": "vr_pred", "seg": "vr_target"}


class EnhancementImageHandler(TensorBoardImageHandler):
    """MONAI's TensorBoardImageHandler for the enhancement evaluator: one sample of the last batch (``index``),
    each image under a name that says what it is (``{tag_prefix}{name}_HW...``), at every validation.

    MONAI's handler plots two batch entries and one output under fixed tags (``input_0``, ``input_1``,
    ``output``); here ``keys`` maps output-dict keys to names: by default the degraded input, IP's output, the
    clean target and, for segmentation, VR's predicted mask (``pred_seg``, class logits: argmax) and the true
    mask (shown only with the prediction). Keys absent from the output (``pred_seg`` for a classifier) are
    skipped. Epoch-level by default:
    the evaluator's epoch is the trainer's, so the images line up with the validation scalars. The other
    arguments are MONAI's (``max_channels=3`` shows RGB as colour, a grey image as one panel).
    """

    def __init__(
        self,
        summary_writer: Any = None,
        log_dir: str = "./runs",
        interval: int = 1,
        epoch_level: bool = True,
        keys: Mapping[str, str] | None = None,
        logits_keys: Sequence[str] = ("pred_seg",),
        tag_prefix: str = "val_",
        index: int = 0,
        max_channels: int = 3,
        frame_dim: int = -3,
        max_frames: int = 24,
        global_iter_transform: Callable = lambda x: x,
    ) -> None:
        super().__init__(
            summary_writer=summary_writer, log_dir=log_dir, interval=interval, epoch_level=epoch_level,
            global_iter_transform=global_iter_transform, index=index, max_channels=max_channels,
            frame_dim=frame_dim, max_frames=max_frames,
        )
        self.keys = dict(DEFAULT_IMAGE_KEYS if keys is None else keys)
        self.logits_keys = set(logits_keys)
        self.tag_prefix = tag_prefix

    def _sample(self, output: Any) -> dict[str, Any]:
        if isinstance(output, (list, tuple)):  # decollated
            return dict(output[min(self.index, len(output) - 1)]) if output else {}
        if not isinstance(output, Mapping):
            return {}
        sample = {}
        for key in self.keys:
            value = output.get(key)
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                sample[key] = value[min(self.index, len(value) - 1)]
        return sample

    def __call__(self, engine: Engine) -> None:
        step = self.global_iter_transform(engine.state.epoch if self.epoch_level else engine.state.iteration)
        sample = self._sample(engine.state.output)
        # a recognition target (``seg``) is shown only next to VR's prediction of it (``pred_seg``): a classifier
        # bundle's batches may carry masks VR never sees
        unjudged = {key[len("pred_"):] for key in self.logits_keys if key.startswith("pred_") and key not in sample}
        for key, name in self.keys.items():
            if key in unjudged:
                continue
            value = sample.get(key)
            if not isinstance(value, torch.Tensor) or value.ndim < 2:
                continue  # not an image (e.g. class logits of a classifier)
            value = value.detach().float()
            if key in self.logits_keys:
                value = value.argmax(0, keepdim=True).float()
            plot_2d_or_3d_image(
                data=value[None].cpu(), step=step, writer=self._writer, index=0, max_channels=self.max_channels,
                frame_dim=self.frame_dim, max_frames=self.max_frames, tag=f"{self.tag_prefix}{name}",
            )
        self._writer.flush()


class ClipGradNorm:
    """Clip the gradient norm of each stepping optimizer's parameters at BACKWARD_COMPLETED.

    The GradPromTrainer fires that event when ``p.grad`` holds the gradient about to be applied, so this is
    plain ``torch.nn.utils.clip_grad_norm_`` per optimizer (IP, and VR / T when the strategy trains them).
    With an AMP gradient scaler the gradients are unscaled first (``scaler.unscale_``), as PyTorch's AMP
    recipe requires; the scaler's step then skips its own unscale. Accumulation micro-batches that do not
    step hold no gradient and are left alone.
    """

    def __init__(self, max_norm: float, norm_type: float = 2.0) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {max_norm!r}")
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        optimizers = engine.optimizers_to_step() if hasattr(engine, "optimizers_to_step") else [engine.optimizer]
        scaler = getattr(engine, "scaler", None)
        for opt in optimizers:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if scaler is not None:
                scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.max_norm, norm_type=self.norm_type)


def attach_checkpointing(saver, engine: Engine) -> None:
    """Attach MONAI's CheckpointSaver, minus its save-on-exception.

    With ``save_final=True`` the saver also writes the final checkpoint when the run raises; after a NaN loss
    (or any crash) that would store a broken state under the final name. Here a failed run leaves the last
    interval checkpoint as the newest good one, and the final checkpoint is written only on completion.
    """
    saver.attach(engine)
    if engine.has_event_handler(saver.exception_raised, Events.EXCEPTION_RAISED):
        engine.remove_event_handler(saver.exception_raised, Events.EXCEPTION_RAISED)
        # Ignite swallows an exception when EXCEPTION_RAISED has a (now empty) handler list: re-raise it.
        if not engine.has_event_handler(_reraise, Events.EXCEPTION_RAISED):
            engine.add_event_handler(Events.EXCEPTION_RAISED, _reraise)


def _reraise(engine: Engine, error: BaseException) -> None:
    raise error


class _AtomicDiskSaver(BaseSaveHandler):
    """Ignite save handler writing through :func:`monai_gradprom.utils.atomic_save` (temp file, fsync, rename).

    Ignite asks to remove the oldest checkpoint *before* it saves the next one; the removal is deferred until
    that save has completed, so a crash in between still leaves the previous checkpoint on disk. The fixed
    filename of the MONAI saver it replaces (``final_filename`` etc.) is kept.
    """

    def __init__(self, inner) -> None:
        self.dirname = Path(inner.dirname)
        self.fixed = getattr(inner, "filename", None)
        self._pending: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        name = self.fixed or filename
        atomic_save(checkpoint, self.dirname / name)
        for old in self._pending:
            if old != name and (self.dirname / old).exists():
                os.remove(self.dirname / old)
        self._pending = []

    def remove(self, filename: str) -> None:
        self._pending.append(self.fixed or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's CheckpointSaver whose files are written atomically.

    MONAI writes checkpoints in place (``atomic=False``), so a crash or a full disk during a save leaves a
    truncated file, and with ``n_saved=1`` no good checkpoint at all. Here every file is written to a temporary
    name, synced and renamed; the previous checkpoint is removed only after the new one is complete.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint"):
            checkpoint = getattr(self, name, None)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(checkpoint.save_handler)
