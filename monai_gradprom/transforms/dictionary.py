"""Dictionary forms of the degradations: copy the clean image to a target key, then degrade the input key.

Contract (what the trainer relies on: batches carry ``image`` = degraded input and ``target`` = clean image):

- the clean image is **cloned** into ``target_key`` (a tensor / array copy, so later in-place operations on either
  key cannot reach the other), then ``keys`` are degraded;
- the copy is made **only if** ``target_key`` is not in the dictionary yet, so stacked degradations
  (``GaussianBlurd`` then ``GaussianNoised``) keep the *clean* image, not the blurred one, as target;
- ``target_key=None`` makes no copy; with several keys, ``target_key`` is a sequence with one entry per key.

Names follow MONAI: ``Xd`` with the aliases ``XD`` and ``XDict``. ``set_random_state(seed)`` on a dictionary
transform seeds the wrapped array transform with the same seed, so ``GaussianNoised(...).set_random_state(s)``
degrades exactly as ``GaussianNoise(...).set_random_state(s)`` does.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import TransformBackends

from monai_gradprom.transforms import array as A

__all__ = [
    "Degraded", "DegradeD", "DegradeDict",
    "GaussianNoised", "GaussianNoiseD", "GaussianNoiseDict",
    "PoissonNoised", "PoissonNoiseD", "PoissonNoiseDict",
    "SpeckleNoised", "SpeckleNoiseD", "SpeckleNoiseDict",
    "GaussianBlurd", "GaussianBlurD", "GaussianBlurDict",
    "Downsampled", "DownsampleD", "DownsampleDict",
    "JPEGCompressiond", "JPEGCompressionD", "JPEGCompressionDict",
    "ChallengingDegradationd", "ChallengingDegradationD", "ChallengingDegradationDict",
]  # fmt: skip


def _clone(value: Any) -> Any:
    """An independent copy (a MetaTensor's clone also copies its metadata)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


class Degraded(Randomizable, MapTransform):
    """Degrade ``keys`` with any array degradation or :func:`~monai_gradprom.transforms.array.build_degradation`
    spec, after copying each clean image to its ``target_key`` (see the module docstring for the contract).

    Args:
        keys: input keys to degrade (usually ``"image"``).
        degradation: a transform, or a spec such as ``"gaussian:0.1"``, ``"sr:x4"``, ``"blur:3:2+gaussian:0.1"``.
        target_key: key receiving the clean copy, or one per key; None: no copy.
        allow_missing_keys: skip absent keys instead of raising.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        degradation: Any,
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.degradation = A.build_degradation(degradation)
        self.backend = list(getattr(self.degradation, "backend", self.backend))
        if target_key is None or isinstance(target_key, (str, bytes)) or not isinstance(target_key, Sequence):
            targets: tuple = (target_key,) * len(self.keys)
        else:
            targets = tuple(target_key)
        if len(targets) != len(self.keys):
            raise ValueError(f"target_key needs one entry per key: keys {self.keys}, target_key {target_key!r}")
        named = [t for t in targets if t is not None]
        if len(set(named)) != len(named):
            raise ValueError(
                f"target_key {target_key!r} would receive the clean copy of several keys {self.keys}; "
                "give one target key per input key"
            )
        clash = set(named) & set(self.keys)
        if clash:
            raise ValueError(f"target_key must differ from the degraded keys, got {sorted(map(str, clash))}")
        self.target_keys = targets

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Degraded:
        super().set_random_state(seed, state)
        if isinstance(self.degradation, Randomizable):
            self.degradation.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw here: the wrapped degradation draws its own randomness on each call."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, target in self.key_iterator(d, self.target_keys):
            if target is not None and target not in d:
                d[target] = _clone(d[key])
            d[key] = self.degradation(d[key])
        return d


class GaussianNoised(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.GaussianNoise`."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        clip: A.ClipRange = (0.0, 1.0),
        prob: float = 1.0,
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, A.GaussianNoise(sigma, clip=clip, prob=prob), target_key, allow_missing_keys)


class PoissonNoised(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.PoissonNoise`."""

    def __init__(
        self,
        keys: KeysCollection,
        level: float,
        clip: A.ClipRange = (0.0, 1.0),
        prob: float = 1.0,
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, A.PoissonNoise(level, clip=clip, prob=prob), target_key, allow_missing_keys)


class SpeckleNoised(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.SpeckleNoise`."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        clip: A.ClipRange = (0.0, 1.0),
        prob: float = 1.0,
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, A.SpeckleNoise(sigma, clip=clip, prob=prob), target_key, allow_missing_keys)


class GaussianBlurd(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.GaussianBlur`."""

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: int = 3,
        sigma: float = 2.0,
        clip: A.ClipRange = (0.0, 1.0),
        padding_mode: str = "reflect",
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        blur = A.GaussianBlur(kernel_size, sigma, clip=clip, padding_mode=padding_mode)
        super().__init__(keys, blur, target_key, allow_missing_keys)


class Downsampled(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.Downsample` (the target keeps full size)."""

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        mode: str = "bicubic",
        antialias: bool = True,
        clip: A.ClipRange = (0.0, 1.0),
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        down = A.Downsample(factor, mode=mode, antialias=antialias, clip=clip)
        super().__init__(keys, down, target_key, allow_missing_keys)


class JPEGCompressiond(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.JPEGCompression`."""

    def __init__(
        self,
        keys: KeysCollection,
        quality: int,
        clip: A.ClipRange = (0.0, 1.0),
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, A.JPEGCompression(quality, clip=clip), target_key, allow_missing_keys)


class ChallengingDegradationd(Degraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.ChallengingDegradation`."""

    def __init__(
        self,
        keys: KeysCollection,
        blur_kernel: int = 3,
        blur_sigma: float = 2.0,
        poisson: float = 0.1,
        gaussian: float = 0.3,
        clip: A.ClipRange = (0.0, 1.0),
        target_key: Hashable | Sequence[Hashable] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        composite = A.ChallengingDegradation(blur_kernel, blur_sigma, poisson, gaussian, clip=clip)
        super().__init__(keys, composite, target_key, allow_missing_keys)


DegradeD = DegradeDict = Degraded
GaussianNoiseD = GaussianNoiseDict = GaussianNoised
PoissonNoiseD = PoissonNoiseDict = PoissonNoised
SpeckleNoiseD = SpeckleNoiseDict = SpeckleNoised
GaussianBlurD = GaussianBlurDict = GaussianBlurd
DownsampleD = DownsampleDict = Downsampled
JPEGCompressionD = JPEGCompressionDict = JPEGCompressiond
ChallengingDegradationD = ChallengingDegradationDict = ChallengingDegradationd
