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
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

from monai_gradprom.utils import atomic_write

__all__ = [
    "scalar_outputs",
    "MetricsJSONWriter",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "TrainingProgressBar",
    "NanMean",
]


def scalar_outputs(keys: Sequence[str] = ("loss_ip", "loss_vr", "cos", "gate")):
    """An ``output_transform`` returning ``{key: float}`` for the keys present (for MONAI's Stats handlers,
    which log every entry of a dict). NaN entries (e.g. ``loss_vr`` of ``plain``) are left out."""

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
