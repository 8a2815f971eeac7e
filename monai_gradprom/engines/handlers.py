"""Ignite handlers MONAI does not provide: writing metrics.json, reading scalar outputs, non-finite losses."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar
from ignite.handlers.checkpoint import BaseSaveHandler
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from monai.handlers import CheckpointSaver

from monai_gradprom.utils import atomic_save, atomic_write

__all__ = [
    "AtomicCheckpointSaver",
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
        if isinstance(output, list):  # decollated: scalars are replicated per sample
            output = output[0]
        values = {}
        for key in keys:
            if isinstance(output, Mapping) and key in output:
                value = float(torch.as_tensor(output[key]).float().mean())
                if not math.isnan(value):
                    values[key] = value
        return values

    return transform


class MetricsJSONWriter:
    """Write the engine's metrics (``engine.state.metrics``, means over the evaluation set) to a JSON file when
    the run completes, atomically, together with optional extra fields (e.g. the strategy and settings)."""

    def __init__(self, output_dir: str | os.PathLike, filename: str = "metrics.json", extra: dict | None = None):
        self.path = Path(output_dir) / filename
        self.extra = dict(extra or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float, torch.Tensor))}
        payload = {**metrics, **self.extra}
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True)))


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
        output = engine.state.output
        if isinstance(output, list):
            output = output[0]
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
    (and, for gating strategies, the cosine and gate) of the latest iteration."""

    def __init__(self, keys: Sequence[str] = ("loss_ip", "loss_vr", "cos", "gate"), persist: bool = True):
        self.keys = tuple(keys)
        self.persist = persist

    def attach(self, engine: Engine) -> None:
        ProgressBar(persist=self.persist).attach(engine, output_transform=scalar_outputs(self.keys))


class NanMean(Metric):
    """Epoch mean of one scalar entry of the output dict, skipping NaN (e.g. the gate-open rate, whose entry is
    NaN while IP warms up or between accumulation steps). Reduced across ranks under DDP."""

    def __init__(self, key: str = "gate", device: str | torch.device = "cpu"):
        self.key = key
        super().__init__(output_transform=self._extract, device=device)

    def _extract(self, output: Any) -> torch.Tensor:
        if isinstance(output, list):
            output = output[0]
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
