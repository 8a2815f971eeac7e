"""Dictionary forms of the degradations: copy the clean image to a target key, then degrade the input key.

Contract (what the trainer relies on: batches carry ``image`` = degraded input and ``target`` = clean image):

- the clean image is **cloned** into ``target_key`` (a tensor / array copy, so later in-place operations on either
  key cannot reach the other), then ``keys`` are degraded;
- the copy is made **only if** ``target_key`` is not in the dictionary yet, so stacked degradations
  (``GaussianBlurd`` then ``RandGaussianNoised``) keep the *clean* image, not the blurred one, as target;
- ``target_key=None`` makes no copy; with several keys, ``target_key`` is a sequence with one entry per key;
- the random forms draw their ``prob`` coin **once per sample**, not per key: either every key is degraded or
  none is (the target copy is made either way, so every sample of a batch carries it, and a skipped key is still
  range-checked and converted to the output dtype, so that a batch has one dtype). Each key still gets its own
  noise draw.

Names follow MONAI: ``Xd`` with the aliases ``XD`` and ``XDict``; random transforms carry the ``Rand`` prefix and the
former names (``GaussianNoised``, ...) are deprecated aliases that warn on construction. ``Degraded`` (the name the
bundles' configs use) stays a plain alias of :class:`RandDegraded`. ``set_random_state(seed)`` on a dictionary
transform seeds the wrapped array transform with the same seed, so ``RandGaussianNoised(...).set_random_state(s)``
degrades exactly as ``RandGaussianNoise(...).set_random_state(s)`` does (at ``prob=1``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection
from monai.transforms import InvertibleTransform, MapTransform, Randomizable, RandomizableTransform
from monai.utils import TransformBackends, deprecated

from monai_gradprom import __version__
from monai_gradprom.transforms import array as A

__all__ = [
    "RandDegraded", "RandDegradeD", "RandDegradeDict",
    "Degraded", "DegradeD", "DegradeDict",
    "RandGaussianNoised", "RandGaussianNoiseD", "RandGaussianNoiseDict",
    "RandPoissonNoised", "RandPoissonNoiseD", "RandPoissonNoiseDict",
    "RandSpeckleNoised", "RandSpeckleNoiseD", "RandSpeckleNoiseDict",
    "GaussianBlurd", "GaussianBlurD", "GaussianBlurDict",
    "Downsampled", "DownsampleD", "DownsampleDict",
    "JPEGCompressiond", "JPEGCompressionD", "JPEGCompressionDict",
    "RandChallengingDegradationd", "RandChallengingDegradationD", "RandChallengingDegradationDict",
    # deprecated aliases (FutureWarning on construction)
    "GaussianNoised", "GaussianNoiseD", "GaussianNoiseDict",
    "PoissonNoised", "PoissonNoiseD", "PoissonNoiseDict",
    "SpeckleNoised", "SpeckleNoiseD", "SpeckleNoiseDict",
    "ChallengingDegradationd", "ChallengingDegradationD", "ChallengingDegradationDict",
]  # fmt: skip

TargetKeys = Hashable | Sequence[Hashable] | None


def _clone(value: Any) -> Any:
    """An independent copy (a MetaTensor's clone also copies its metadata)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


class _CopyThenDegrade(MapTransform):
    """The target-copy contract of the module docstring around one array degradation; no randomness of its own,
    so the deterministic forms (blur, downsampling, JPEG) stay cacheable by ``CacheDataset``."""

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        degradation: Any,
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.degradation: Callable = A.build_degradation(degradation)
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

    def _apply(self, data: Mapping[Hashable, Any], degrade: bool = True) -> dict[Hashable, Any]:
        d = dict(data)
        for key, target in self.key_iterator(d, self.target_keys):
            if target is not None and target not in d:
                d[target] = _clone(d[key])
            d[key] = self.degradation(d[key]) if degrade else A.passthrough(self.degradation, d[key])
        return d

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        return self._apply(data)


class RandDegraded(RandomizableTransform, _CopyThenDegrade):
    """Degrade ``keys`` with any array degradation or :func:`~monai_gradprom.transforms.array.build_degradation`
    spec, after copying each clean image to its ``target_key`` (see the module docstring for the contract).

    Args:
        keys: input keys to degrade (usually ``"image"``).
        degradation: a transform, or a spec such as ``"gaussian:0.1"``, ``"sr:x4"``, ``"blur:3:2+gaussian:0.1"``.
        target_key: key receiving the clean copy, or one per key; None: no copy.
        allow_missing_keys: skip absent keys instead of raising.
        prob: probability of degrading a sample: one coin per call, shared by all keys. Give ``prob`` here, not to
            the wrapped array transform (whose own coin would be drawn per key).
    """

    def __init__(
        self,
        keys: KeysCollection,
        degradation: Any,
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        prob: float = 1.0,
    ) -> None:
        if not 0.0 <= A._real("prob", prob) <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}")
        RandomizableTransform.__init__(self, prob)
        _CopyThenDegrade.__init__(self, keys, degradation, target_key, allow_missing_keys)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandDegraded:
        super().set_random_state(seed, state)
        if isinstance(self.degradation, Randomizable):
            self.degradation.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize(None)  # the prob coin, once for every key of this sample
        return self._apply(data, degrade=self._do_transform)


class RandGaussianNoised(RandDegraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.RandGaussianNoise`."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        clip: A.ClipRange = (0.0, 1.0),
        prob: float = 1.0,
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        noise = A.RandGaussianNoise(sigma, clip=clip, dtype=dtype)
        super().__init__(keys, noise, target_key, allow_missing_keys, prob=prob)


class RandPoissonNoised(RandDegraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.RandPoissonNoise`."""

    def __init__(
        self,
        keys: KeysCollection,
        level: float,
        clip: A.ClipRange = (0.0, 1.0),
        prob: float = 1.0,
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        noise = A.RandPoissonNoise(level, clip=clip, dtype=dtype)
        super().__init__(keys, noise, target_key, allow_missing_keys, prob=prob)


class RandSpeckleNoised(RandDegraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.RandSpeckleNoise`."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        clip: A.ClipRange = (0.0, 1.0),
        prob: float = 1.0,
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        noise = A.RandSpeckleNoise(sigma, clip=clip, dtype=dtype)
        super().__init__(keys, noise, target_key, allow_missing_keys, prob=prob)


class RandChallengingDegradationd(RandDegraded):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.RandChallengingDegradation`."""

    def __init__(
        self,
        keys: KeysCollection,
        blur_kernel: int = 3,
        blur_sigma: float = 2.0,
        poisson: float = 0.1,
        gaussian: float = 0.3,
        clip: A.ClipRange = (0.0, 1.0),
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        prob: float = 1.0,
        dtype: DtypeLike = np.float32,
    ) -> None:
        composite = A.RandChallengingDegradation(blur_kernel, blur_sigma, poisson, gaussian, clip=clip, dtype=dtype)
        super().__init__(keys, composite, target_key, allow_missing_keys, prob=prob)


class GaussianBlurd(_CopyThenDegrade):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.GaussianBlur` (deterministic)."""

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: int = 3,
        sigma: float = 2.0,
        clip: A.ClipRange = (0.0, 1.0),
        padding_mode: str = "reflect",
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        blur = A.GaussianBlur(kernel_size, sigma, clip=clip, padding_mode=padding_mode, dtype=dtype)
        super().__init__(keys, blur, target_key, allow_missing_keys)


class Downsampled(_CopyThenDegrade, InvertibleTransform):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.Downsample` (the target keeps full size).

    Invertible like the array form: ``inverse`` (or MONAI's ``Invertd``) resizes each key back, given MetaTensors.
    """

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        mode: str = "bicubic",
        antialias: bool = True,
        clip: A.ClipRange = (0.0, 1.0),
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        down = A.Downsample(factor, mode=mode, antialias=antialias, clip=clip, dtype=dtype)
        super().__init__(keys, down, target_key, allow_missing_keys)

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.degradation.inverse(d[key])
        return d


class JPEGCompressiond(_CopyThenDegrade):
    """Dictionary form of :class:`~monai_gradprom.transforms.array.JPEGCompression` (deterministic)."""

    def __init__(
        self,
        keys: KeysCollection,
        quality: int,
        clip: A.ClipRange = (0.0, 1.0),
        target_key: TargetKeys = "target",
        allow_missing_keys: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        super().__init__(keys, A.JPEGCompression(quality, clip=clip, dtype=dtype), target_key, allow_missing_keys)


# ------------------------------------------------------------------------------------------- deprecated aliases
def _deprecated(new: str) -> Callable[[type], type]:
    return deprecated(
        since=A._DEPRECATED_SINCE,
        msg_suffix=f"Use {new} (MONAI's Rand prefix for random transforms); this alias behaves the same.",
        version_val=__version__,
    )


@_deprecated("RandGaussianNoised")
class GaussianNoised(RandGaussianNoised):
    """Deprecated alias of :class:`RandGaussianNoised`."""


@_deprecated("RandPoissonNoised")
class PoissonNoised(RandPoissonNoised):
    """Deprecated alias of :class:`RandPoissonNoised`."""


@_deprecated("RandSpeckleNoised")
class SpeckleNoised(RandSpeckleNoised):
    """Deprecated alias of :class:`RandSpeckleNoised`."""


@_deprecated("RandChallengingDegradationd")
class ChallengingDegradationd(RandChallengingDegradationd):
    """Deprecated alias of :class:`RandChallengingDegradationd` (which now follows the paper's order)."""


RandDegradeD = RandDegradeDict = RandDegraded
Degraded = DegradeD = DegradeDict = RandDegraded  # the bundles' configs name it: kept without a warning
RandGaussianNoiseD = RandGaussianNoiseDict = RandGaussianNoised
RandPoissonNoiseD = RandPoissonNoiseDict = RandPoissonNoised
RandSpeckleNoiseD = RandSpeckleNoiseDict = RandSpeckleNoised
RandChallengingDegradationD = RandChallengingDegradationDict = RandChallengingDegradationd
GaussianBlurD = GaussianBlurDict = GaussianBlurd
DownsampleD = DownsampleDict = Downsampled
JPEGCompressionD = JPEGCompressionDict = JPEGCompressiond
GaussianNoiseD = GaussianNoiseDict = GaussianNoised
PoissonNoiseD = PoissonNoiseDict = PoissonNoised
SpeckleNoiseD = SpeckleNoiseDict = SpeckleNoised
ChallengingDegradationD = ChallengingDegradationDict = ChallengingDegradationd
