"""Dictionary forms of the degradations: copy the clean image to a target key, then degrade the input key.

The clean copy is made only when the target key is not already in the dictionary, so stacked degradations
(e.g. ``GaussianBlurd`` then ``GaussianNoised``) keep the *clean* image as target. ``target_key=None`` skips
the copy. Names follow MONAI: ``Xd`` with the aliases ``XD`` and ``XDict``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import TransformBackends, ensure_tuple, ensure_tuple_rep

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
]


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


class Degraded(Randomizable, MapTransform):
    """Degrade ``keys`` with any array degradation (or a :func:`~monai_gradprom.transforms.array.build_degradation`
    spec), after copying each clean image to its ``target_key``.

    Args:
        keys: input keys to degrade (usually ``"image"``).
        degradation: a transform, or a spec such as ``"gaussian:0.1"`` / ``"sr:x4"`` / ``"challenging"``.
        target_key: key(s) receiving the clean copy, one per key; None: no copy.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection,
        degradation: str | dict | Transform,
        target_key: str | Sequence[str] | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.degradation = A.build_degradation(degradation)
        if target_key is None or isinstance(target_key, str):
            self.target_keys: tuple = ensure_tuple_rep(target_key, len(self.keys))
        else:
            self.target_keys = ensure_tuple(target_key)
        if len(self.target_keys) != len(self.keys):
            raise ValueError(f"target_key must give one key per input key, got {target_key!r} for keys {self.keys}")

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        if isinstance(self.degradation, Randomizable):
            self.degradation.set_random_state(seed=int(self.R.randint(0, 2**31 - 1)))
        return self

    def randomize(self, data=None) -> None:
        pass  # the wrapped degradation draws its own randomness

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key, target in self.key_iterator(d, self.target_keys):
            if target is not None and target not in d:
                d[target] = _clone(d[key])
            d[key] = self.degradation(d[key])
        return d


def _make(array_cls, doc: str):
    """A dictionary class ``Xd(keys, *args, target_key="target", allow_missing_keys=False, **kwargs)``."""

    def __init__(self, keys: KeysCollection, *args, target_key="target", allow_missing_keys: bool = False, **kwargs):
        Degraded.__init__(self, keys, array_cls(*args, **kwargs), target_key, allow_missing_keys)

    return type(f"{array_cls.__name__}d", (Degraded,), {"__init__": __init__, "__doc__": doc})


GaussianNoised = _make(A.GaussianNoise, "Dictionary form of :class:`GaussianNoise` (clean copy to ``target_key``).")
PoissonNoised = _make(A.PoissonNoise, "Dictionary form of :class:`PoissonNoise` (clean copy to ``target_key``).")
SpeckleNoised = _make(A.SpeckleNoise, "Dictionary form of :class:`SpeckleNoise` (clean copy to ``target_key``).")
GaussianBlurd = _make(A.GaussianBlur, "Dictionary form of :class:`GaussianBlur` (clean copy to ``target_key``).")
Downsampled = _make(A.Downsample, "Dictionary form of :class:`Downsample` (clean copy to ``target_key``).")
JPEGCompressiond = _make(A.JPEGCompression, "Dictionary form of :class:`JPEGCompression` (clean copy to ``target_key``).")
ChallengingDegradationd = _make(
    A.ChallengingDegradation, "Dictionary form of :class:`ChallengingDegradation` (clean copy to ``target_key``)."
)

DegradeD = DegradeDict = Degraded
GaussianNoiseD = GaussianNoiseDict = GaussianNoised
PoissonNoiseD = PoissonNoiseDict = PoissonNoised
SpeckleNoiseD = SpeckleNoiseDict = SpeckleNoised
GaussianBlurD = GaussianBlurDict = GaussianBlurd
DownsampleD = DownsampleDict = Downsampled
JPEGCompressionD = JPEGCompressionDict = JPEGCompressiond
ChallengingDegradationD = ChallengingDegradationDict = ChallengingDegradationd
