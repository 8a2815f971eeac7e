"""Data streams that depend only on (seed, epoch, sample index), so that training resumes exactly.

A resumed run must see, from the interrupted iteration on, the same batches with the same random
augmentations and degradations as an uninterrupted run. Three pieces make the stream a pure function of
(seed, epoch, index) instead of a by-product of how many batches were drawn before:

- :class:`ResumableSampler`: the epoch's permutation comes from (seed, epoch); it can start at an offset.
- :class:`EpochSeededDataset`: reseeds the wrapped dataset's random transforms from (seed, epoch, index)
  before each item, whichever worker process loads it.
- :class:`ReproducibleEpochs`: an Ignite handler that sets the epoch on both at every EPOCH_STARTED (before
  Ignite creates that epoch's data iterator) and, when a run resumes mid-epoch, skips the batches already done.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sized

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["derive_seed", "ResumableSampler", "EpochSeededDataset", "ReproducibleEpochs"]


def derive_seed(*keys: int) -> int:
    """A well-mixed 31-bit seed from integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


class ResumableSampler(Sampler[int]):
    """Shuffles (or not) with a permutation drawn from (seed, epoch); :meth:`set_start` skips a prefix once."""

    def __init__(self, data_source: Sized | int, seed: int = 0, shuffle: bool = True) -> None:
        self.length = data_source if isinstance(data_source, int) else len(data_source)
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_start(self, start: int) -> None:
        """Begin the next iteration at position ``start`` of the epoch's order (used once, then reset)."""
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        start, self.start = self.start, 0
        return iter(order[start:])

    def __len__(self) -> int:
        return self.length


class EpochSeededDataset(Dataset):
    """Wraps a MONAI dataset so that each item's random transforms are seeded from (seed, epoch, index).

    The wrapped dataset's ``transform`` must support ``set_random_state`` (a MONAI ``Compose`` does); with a
    ``CacheDataset`` the cached deterministic part is reused and only the random part is reseeded.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        transform = getattr(dataset, "transform", None)
        if not hasattr(transform, "set_random_state"):
            raise TypeError(
                f"EpochSeededDataset needs a dataset whose transform has set_random_state (a MONAI Compose), "
                f"got {type(dataset).__name__} with transform {type(transform).__name__}"
            )
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        self.dataset.transform.set_random_state(seed=derive_seed(self.seed, self.epoch, index))
        return self.dataset[index]


class ReproducibleEpochs:
    """At every EPOCH_STARTED: put the sampler and dataset on the engine's epoch, reseed the global RNGs
    (torch, numpy, random) from (seed, epoch), and, when the run resumes in the middle of an epoch, make the
    sampler skip the batches already trained on. On a mid-epoch resume the global RNGs are *not* reseeded: they
    were restored from the checkpoint (see :class:`RNGStates`)."""

    def __init__(self, sampler: Sampler, dataset: EpochSeededDataset | None = None, seed: int = 0,
                 batch_size: int = 1) -> None:
        self.sampler, self.dataset, self.seed, self.batch_size = sampler, dataset, seed, batch_size

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine) -> None:
        epoch = engine.state.epoch
        self.sampler.set_epoch(epoch)
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)
        epoch_length = engine.state.epoch_length or 0
        done = engine.state.iteration - (epoch - 1) * epoch_length if epoch_length else 0
        if done > 0 and hasattr(self.sampler, "set_start"):  # a DistributedSampler cannot skip: not exact
            self.sampler.set_start(done * self.batch_size)
        else:
            seed = derive_seed(self.seed, epoch, 7919)
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)


class RNGStates:
    """The global random number generators as one checkpointable object (``state_dict`` / ``load_state_dict``).

    The state is stored as tensors, ints and floats only, so checkpoints stay loadable with
    ``torch.load(..., weights_only=True)`` (MONAI's CheckpointLoader and our inference use that).
    """

    def state_dict(self) -> dict:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "random": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                       "gauss_next": gauss_next},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
        r = state["random"]
        random.setstate((r["version"], tuple(int(v) for v in r["internal"].tolist()), r["gauss_next"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


__all__.append("RNGStates")
