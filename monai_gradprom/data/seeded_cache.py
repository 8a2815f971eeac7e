"""Evaluation data with a fixed random draw per sample: the same degraded image on every pass, for every run.

Validation and test sets are degraded by random transforms (noise, blur, ...). Redrawing that noise on every
validation pass puts noise into the key metric that selects the best model, and lets two strategies be compared
on different inputs. :class:`SeededCacheDataset` draws each sample's randomness from (seed, index) only, as the
training stream of :mod:`monai_gradprom.data.reproducible` does from (seed, epoch, index), and caches the final
(degraded) sample, so every pass and every strategy run with the same ``seed`` sees identical inputs.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from typing import Any

from monai.data import CacheDataset
from monai.transforms import Compose, apply_transform, convert_to_contiguous

from monai_gradprom.data.reproducible import derive_seed

__all__ = ["SeededCacheDataset", "EVAL_STREAM"]

# Second key of the per-sample seed: training uses (seed, epoch, index) with small epochs, evaluation
# (seed, EVAL_STREAM, index), so the two streams never share a draw.
EVAL_STREAM = 2**31 - 1


class SeededCacheDataset(CacheDataset):
    """A drop-in for MONAI's ``CacheDataset`` on evaluation data: the *whole* transform, random parts included,
    runs once per sample with its random state seeded from ``(seed, EVAL_STREAM, index)``, and the result is
    cached (MONAI's CacheDataset caches only up to the first random transform and redraws the rest on every
    access). Samples beyond ``cache_num`` / ``cache_rate`` are recomputed on access with the same seed, so they
    are identical too, only slower.

    Each sample runs through its own copy of ``transform`` (cache filling uses ``num_workers`` threads, which
    must not share random states), so the caller's transform is never reseeded.

    Args:
        data, transform, cache_num, cache_rate, num_workers, progress, as_contiguous, runtime_cache: as in
            :class:`monai.data.CacheDataset`.
        seed: the run's seed (bundle key ``seed``); the strategy plays no part, so runs that differ only in
            the strategy are evaluated on the same degraded images.
        copy_cache: deep-copy a cached sample on every access (default False: nothing random runs after the
            cache, and batching copies the tensors anyway; set True if a consumer modifies samples in place).
    """

    def __init__(
        self,
        data: Sequence,
        transform: Sequence[Callable] | Callable | None = None,
        seed: int = 0,
        cache_num: int = sys.maxsize,
        cache_rate: float = 1.0,
        num_workers: int | None = 1,
        progress: bool = True,
        copy_cache: bool = False,
        as_contiguous: bool = True,
        runtime_cache: bool | str = False,
    ) -> None:
        self.seed = int(seed)
        super().__init__(
            data=data,
            transform=transform if transform is not None else Compose([]),
            cache_num=cache_num,
            cache_rate=cache_rate,
            num_workers=num_workers,
            progress=progress,
            copy_cache=copy_cache,
            as_contiguous=as_contiguous,
            runtime_cache=runtime_cache,
        )

    def sample_seed(self, index: int) -> int:
        return derive_seed(self.seed, EVAL_STREAM, index)

    def _seeded_sample(self, index: int) -> Any:
        transform = copy.deepcopy(self.transform)
        transform.set_random_state(seed=self.sample_seed(index))
        return apply_transform(transform, self.data[index])

    def _load_cache_item(self, idx: int) -> Any:  # type: ignore[override]
        item = self._seeded_sample(idx)
        return convert_to_contiguous(item) if self.as_contiguous else item

    def _transform(self, index: int) -> Any:
        index = index % len(self)
        if index >= self.cache_num:
            return self._seeded_sample(index)
        if self._cache is None:
            raise RuntimeError("cache buffer is not initialized, please call `set_data()` first.")
        data = self._cache[index]
        if data is None:  # runtime cache
            data = self._cache[index] = self._load_cache_item(index)
        return copy.deepcopy(data) if self.copy_cache else data
