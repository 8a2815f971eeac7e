"""The trainer's iteration output in the shape MONAI's handlers expect, still readable by key.

MONAI's ``SupervisedTrainer`` decollates its output into a list of per-sample dicts, the batch's scalars (the
``loss``) replicated into each; ``StatsHandler()`` and ``TensorBoardStatsHandler()`` log ``output[0]`` by default
and the model zoo's ``from_engine(["loss"], first=True)`` reads ``output[0]["loss"]``. Both fail on a plain dict
(``KeyError: 0``; a one-element tuple that is silently not logged). :class:`IterationOutput` is that list, and
also answers the batch-level keys (``output["cos"]``, ``"gate" in output``, ``output.get(...)``, ``dict(output)``)
so that code written against the trainer's dict keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView, Mapping
from typing import Any

import torch

__all__ = ["IterationOutput", "batch_level"]


class IterationOutput(list):
    """A list of per-sample dicts (MONAI's decollated output) that also maps each batch-level key to its value.

    ``output[i]`` (an int or a slice) is sample i: batch tensors sliced along their first axis (views, detached),
    everything else (0-dim losses, the cosine, the gate) shared as it is, kept on its device: no host
    synchronisation happens until a handler reads a value. ``output["key"]`` is the batch value the trainer
    computed (before any ``postprocessing``, which replaces the samples only). Iteration walks the samples, as on
    a list; ``keys()``, ``items()``, ``values()``, ``get()`` and ``in`` with a string walk the batch dict.
    """

    def __init__(self, batch: Mapping[str, Any], samples: list[dict[str, Any]]) -> None:
        super().__init__(samples)
        self.batch = dict(batch)

    @classmethod
    def decollate(cls, batch: Mapping[str, Any]) -> IterationOutput:
        """Split a batch dict into per-sample dicts; values without the batch axis are replicated."""
        size = _batch_size(batch)
        samples: list[dict[str, Any]] = [{} for _ in range(size)]
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.detach()
            sliced = isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == size
            for i, sample in enumerate(samples):
                sample[key] = value[i] if sliced else value
        return cls(batch, samples)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return self.batch[key]
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self.batch
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.batch.get(key, default)

    def keys(self) -> KeysView[str]:
        return self.batch.keys()

    def values(self):
        return self.batch.values()

    def items(self):
        return self.batch.items()

    def samples(self) -> Iterator[dict[str, Any]]:
        return super().__iter__()


def _batch_size(batch: Mapping[str, Any]) -> int:
    sizes = [v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor) and v.ndim > 0]
    return max(set(sizes), key=sizes.count) if sizes else 1


def batch_level(output: Any) -> Any:
    """The batch dict behind an iteration output: the dict itself, an :class:`IterationOutput`'s batch values,
    or a decollated list's first sample (where MONAI replicates the scalars)."""
    if isinstance(output, IterationOutput):
        return output.batch
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], Mapping):
        return output[0]
    return output
