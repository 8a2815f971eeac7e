"""Degradations at a fixed level, as MONAI array transforms (channel-first ``(C, H, W)`` or ``(C, H, W, D)``).

Names follow MONAI: random transforms carry the ``Rand`` prefix (``RandGaussianNoise``, ...); the former names
(``GaussianNoise``, ...) are deprecated aliases that warn on construction. Unlike MONAI's ``RandGaussianNoise``,
the level is fixed (never drawn up to a maximum): the papers train and test at one noise level.

Shared behaviour, so that a degradation never silently damages data it was not meant for:

- **Output dtype** ``dtype`` (default float32) whatever the input dtype (uint8, int16, float16, float64 ...);
  ``dtype=None`` keeps a floating input's dtype. numpy in -> numpy out, tensor in -> tensor out, MetaTensor in ->
  MetaTensor out with its metadata.
- **Intensity range**: ``clip`` (default ``(0, 1)``) is the range the data must lie in. An input outside it (by
  more than ``RANGE_TOLERANCE`` of its width, e.g. 0-255 straight from ``LoadImaged``) is a ``ValueError`` that
  says to scale intensities first, instead of being saturated; the output is clipped to it. ``clip=None`` is the
  explicit opt-out: no range check and no clipping (levels are then in the data's own units).
- **Randomness** comes from ``self.R`` (set with ``set_random_state``), which draws one integer seed per call for
  a ``torch.Generator`` on the image's device, so the noise is generated where the image lives (CPU or CUDA) and
  the same seed gives the same output.
"""

from __future__ import annotations

import io
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import DtypeLike, NdarrayOrTensor
from monai.data import MetaTensor
from monai.networks.layers import separable_filtering
from monai.transforms import InvertibleTransform, Randomizable, RandomizableTransform, Transform
from monai.transforms.utils import scale_affine
from monai.utils import TraceKeys, TransformBackends, convert_to_dst_type, convert_to_tensor, deprecated
from monai.utils.misc import MAX_SEED
from PIL import Image

from monai_gradprom import __version__

__all__ = [
    "RandGaussianNoise",
    "RandPoissonNoise",
    "RandSpeckleNoise",
    "GaussianBlur",
    "Downsample",
    "JPEGCompression",
    "NoDegradation",
    "DegradationSequence",
    "RandChallengingDegradation",
    "build_degradation",
    "DEGRADATION_NAMES",
    "RANGE_TOLERANCE",
    # deprecated aliases (FutureWarning on construction); ``Identity`` is importable but not exported by ``*``,
    # so that it never shadows ``monai.transforms.Identity``
    "GaussianNoise",
    "PoissonNoise",
    "SpeckleNoise",
    "ChallengingDegradation",
]

ClipRange = Sequence[float] | None  # (low, high): the data's range, checked on input and clamped on output

#: Inputs may exceed the clip range by this fraction of its width (float rounding, mild interpolation overshoot)
#: before it is an error; within it they are clipped.
RANGE_TOLERANCE = 1e-3

_DEPRECATED_SINCE = "0.1.0"


# ---------------------------------------------------------------------------------------------------- validation
def _real(name: str, value: Any, *, positive: bool = False) -> float:
    """A finite, non-negative (or strictly positive) real number, else a ValueError naming the argument."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(float(value))
    if not ok or float(value) < 0 or (positive and float(value) == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} finite number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def _check_clip(clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    try:
        low, high = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip must be None or a pair (low, high), got {clip!r}") from None
    if not low < high:
        raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}")
    return low, high


def _spatial_dims(name: str, x: torch.Tensor) -> int:
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} expects a channel-first 2D (C, H, W) or 3D (C, H, W, D) image, got {tuple(x.shape)}")
    return x.ndim - 1


def _check_range(name: str, x: torch.Tensor, data_range: tuple[float, float] | None, option: str) -> None:
    """Refuse data outside ``data_range`` rather than saturate it (the classic case: 0-255 images)."""
    if data_range is None or x.numel() == 0:
        return
    low, high = data_range
    tolerance = RANGE_TOLERANCE * (high - low)
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if lo < low - tolerance or hi > high + tolerance:
        raise ValueError(
            f"{name} expects intensities in [{low:g}, {high:g}] but the image spans [{lo:g}, {hi:g}]; scale the "
            "intensities first (e.g. ScaleIntensityd(keys, minv=0.0, maxv=1.0), or ScaleIntensityRanged(keys, "
            f"a_min, a_max, 0.0, 1.0, clip=True) for CT), or {option}"
        )


_CLIP_OPTION = "pass clip=(low, high) with the data's own range, or clip=None (no range check, no clipping)"


# ------------------------------------------------------------------------------------------------------ plumbing
def _as_float_tensor(img: NdarrayOrTensor) -> torch.Tensor:
    """A plain tensor of ``img`` to compute on: float64 stays float64, everything else is computed in float32."""
    x = convert_to_tensor(img, track_meta=False)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class _Degradation(Transform):
    """Shared plumbing: clip range (checked on input, clamped on output) and output dtype."""

    backend = [TransformBackends.TORCH]

    def _setup(self, clip: ClipRange, dtype: DtypeLike | torch.dtype) -> None:
        self.clip = _check_clip(clip)
        self.dtype = dtype

    def _prepare(self, img: NdarrayOrTensor) -> torch.Tensor:
        x = _as_float_tensor(img)
        _check_range(type(self).__name__, x, self.clip, _CLIP_OPTION)
        return x

    def _finish(self, out: torch.Tensor, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Clip, then return in the input's type (a MetaTensor's metadata is carried over) and ``self.dtype``."""
        if self.clip is not None:
            out = out.clamp(*self.clip)
        dtype = self.dtype if self.dtype is not None else out.dtype
        return convert_to_dst_type(out, img, dtype=dtype)[0]

    def passthrough(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """What a skipped call (``prob`` coin says no) returns: the input range-checked and converted to ``dtype``
        but otherwise unchanged, so that degraded and skipped samples of one batch share a dtype."""
        return self._finish(self._prepare(img), img)


class _RandNoise(RandomizableTransform, _Degradation):
    """Shared plumbing of the noises: one seed per call from ``self.R``, a torch generator on the image's device.

    ``randomize`` always draws both the ``prob`` coin and the seed, so the stream of ``self.R`` does not depend on
    whether the previous call degraded or not.
    """

    def __init__(self, clip: ClipRange = (0.0, 1.0), prob: float = 1.0, dtype: DtypeLike = np.float32) -> None:
        if not 0.0 <= _real("prob", prob) <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}")
        RandomizableTransform.__init__(self, prob)
        self._setup(clip, dtype)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(MAX_SEED, dtype="uint32"))

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return self.passthrough(img)  # checked too: the same data must not pass only sometimes
        x = self._prepare(img)
        generator = torch.Generator(device=x.device).manual_seed(self._seed)
        return self._finish(self._noise(x, generator), img)


# --------------------------------------------------------------------------------------------------------- noise
class RandGaussianNoise(_RandNoise):
    """Additive noise ``y = x + N(0, sigma^2)`` at a fixed ``sigma`` (the papers' "Gaussian 0.1" is sigma = 0.1)."""

    def __init__(
        self, sigma: float, clip: ClipRange = (0.0, 1.0), prob: float = 1.0, dtype: DtypeLike = np.float32
    ) -> None:
        super().__init__(clip, prob, dtype)
        self.sigma = _real("sigma", sigma)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class RandPoissonNoise(_RandNoise):
    """Signal-dependent shot noise ``y = Poisson(x / level^2) * level^2``.

    Mean ``x`` and variance ``level^2 * x``, i.e. std ``level`` at intensity 1 and ``level * sqrt(x)`` elsewhere;
    this is how we read the papers' "Poisson 0.1". ``level^2`` is the intensity of one photon, so the output is
    quantised in steps of ``level^2``. Negative inputs (possible only with ``clip=None``) count as 0.
    """

    def __init__(
        self, level: float, clip: ClipRange = (0.0, 1.0), prob: float = 1.0, dtype: DtypeLike = np.float32
    ) -> None:
        super().__init__(clip, prob, dtype)
        self.level = _real("level", level)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.level == 0:
            return x
        photon = self.level**2
        return torch.poisson(x.clamp(min=0) / photon, generator=generator) * photon


class RandSpeckleNoise(_RandNoise):
    """Multiplicative (ultrasound-like) noise ``y = x + x * N(0, sigma^2)``: std ``sigma * x`` at intensity x."""

    def __init__(
        self, sigma: float, clip: ClipRange = (0.0, 1.0), prob: float = 1.0, dtype: DtypeLike = np.float32
    ) -> None:
        super().__init__(clip, prob, dtype)
        self.sigma = _real("sigma", sigma)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + x * self.sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


# ------------------------------------------------------------------------------------------------ deterministic
class GaussianBlur(_Degradation):
    """Separable Gaussian blur with exactly ``kernel_size`` taps per spatial axis, weights normalised to sum 1.

    The filtering is MONAI's ``separable_filtering``. ``padding_mode="reflect"`` (default) mirrors the image at its
    border without repeating the edge pixel, like OpenCV's default ``BORDER_REFLECT_101`` that ``cv2.GaussianBlur``
    uses; the mean is kept up to a border term of at most ``(1 - w0) * range / n`` per axis (``w0`` the centre
    weight, ``n`` the axis length), typically ~1e-4 on real images. ``"circular"`` keeps the mean exactly (every
    pixel's mass stays in the image) at the price of mixing opposite borders over ``kernel_size // 2`` pixels.
    A size-1 axis is left as it is.
    """

    def __init__(
        self,
        kernel_size: int = 3,
        sigma: float = 2.0,
        clip: ClipRange = (0.0, 1.0),
        padding_mode: str = "reflect",
        dtype: DtypeLike = np.float32,
    ) -> None:
        self.kernel_size = _integer("kernel_size", kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred kernel), got {kernel_size!r}")
        self.sigma = _real("sigma", sigma, positive=True)
        if padding_mode not in ("reflect", "circular"):
            raise ValueError(f"padding_mode must be 'reflect' or 'circular', got {padding_mode!r}")
        self.padding_mode = padding_mode
        self._setup(clip, dtype)

    def kernel(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """The 1D kernel: ``exp(-t^2 / (2 sigma^2))`` at integer offsets ``t``, normalised to sum 1."""
        half = self.kernel_size // 2
        taps = torch.arange(-half, half + 1, dtype=torch.float64)
        weights = torch.exp(-(taps**2) / (2 * self.sigma**2))
        return (weights / weights.sum()).to(dtype=dtype, device=device)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = self._prepare(img)
        _spatial_dims("GaussianBlur", x)  # checks the image is 2D or 3D
        half = self.kernel_size // 2
        kernel, unit = self.kernel(x.dtype, x.device), torch.ones(1, dtype=x.dtype, device=x.device)
        kernels = []
        for axis, size in enumerate(x.shape[1:]):
            if self.padding_mode == "reflect" and 1 < size <= half:
                raise ValueError(
                    f"GaussianBlur: axis {axis} of size {size} is too short for reflect padding with "
                    f"kernel_size={self.kernel_size}; use a smaller kernel or padding_mode='circular'"
                )
            kernels.append(unit if size == 1 or half == 0 else kernel)  # a unit kernel is skipped by MONAI
        out = separable_filtering(x[None], kernels, mode=self.padding_mode)[0]
        return self._finish(out, img)


class Downsample(_Degradation, InvertibleTransform):
    """The super-resolution input: shrink by an integer ``factor`` to exactly ``floor(n / factor)`` per axis.

    The last ``n mod factor`` rows / columns / slices are dropped first, so that the sampling step is exactly
    ``factor`` and the output grid stays aligned with the input (the usual "mod-crop" of SR benchmarks). 2D:
    ``mode="bicubic"`` with ``antialias=True`` (``torch.nn.functional.interpolate``, like MATLAB's ``imresize``).
    3D: torch has no bicubic in 3D, so ``"bicubic"`` / ``"bilinear"`` become ``"trilinear"``, which has no
    antialiasing (for factors > 2 prefer ``mode="area"``, the block mean). A MetaTensor's affine is updated as
    MONAI's ``Resize`` does: voxel spacing times ``factor``, origin moved to the centre of the first block.

    Invertible in MONAI's sense (``Invertd``, ``inverse``) for MetaTensors: the forward pass records the original
    and mod-cropped sizes in ``applied_operations``; ``inverse`` resizes back to the mod-cropped size with the same
    interpolation, pads the dropped rows with zeros, and restores the affine. It restores the geometry, not the
    detail that the downsampling removed (that is the enhancement network's job).
    """

    _MODES = ("bicubic", "bilinear", "trilinear", "area", "nearest", "nearest-exact")

    def __init__(
        self,
        factor: int,
        mode: str = "bicubic",
        antialias: bool = True,
        clip: ClipRange = (0.0, 1.0),
        dtype: DtypeLike = np.float32,
    ) -> None:
        self.factor = _integer("factor", factor, 1)
        if mode not in self._MODES:
            raise ValueError(f"mode must be one of {self._MODES}, got {mode!r}")
        self.mode, self.antialias = mode, bool(antialias)
        self._setup(clip, dtype)

    def _torch_mode(self, spatial: int) -> str:
        if spatial == 3 and self.mode in ("bicubic", "bilinear"):
            return "trilinear"
        if spatial == 2 and self.mode == "trilinear":
            return "bilinear"
        return self.mode

    def _resize(self, x: torch.Tensor, size: Sequence[int], antialias: bool) -> torch.Tensor:
        mode = self._torch_mode(x.ndim - 1)
        kwargs: dict[str, Any] = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
        if mode in ("bilinear", "bicubic", "trilinear"):
            kwargs["align_corners"] = False
        return F.interpolate(x[None], size=list(size), mode=mode, **kwargs)[0]

    @staticmethod
    def _rescale_affine(result: MetaTensor, spatial: int, old: Sequence[int], new: Sequence[int]) -> None:
        """As MONAI's ``Resize``: the affine of a grid of ``old`` voxels resampled to ``new`` over the same extent."""
        extra = [1] * max(result.affine.shape[0] - 1 - spatial, 0)  # a 2D image may carry a 4x4 affine
        scale = scale_affine(list(old) + extra, list(new) + extra)
        result.affine = result.affine @ torch.as_tensor(scale, dtype=result.affine.dtype, device=result.affine.device)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = self._prepare(img)
        spatial = _spatial_dims("Downsample", x)
        original = list(x.shape[1:])
        size = [n // self.factor for n in original]
        if min(size) < 1:
            raise ValueError(f"Downsample: image of shape {tuple(x.shape)} is too small for factor={self.factor}")
        kept = [s * self.factor for s in size]
        x = x[(slice(None), *(slice(0, k) for k in kept))]
        result = self._finish(self._resize(x, size, self.antialias), img)
        if isinstance(result, MetaTensor):
            self._rescale_affine(result, spatial, kept, size)
            self.push_transform(result, orig_size=original, extra_info={"kept": kept})
        return result

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Resize back to the mod-cropped size, zero-pad to the original size, restore the affine."""
        if not isinstance(data, MetaTensor) or not data.applied_operations:
            raise ValueError(
                "Downsample.inverse needs the MetaTensor that Downsample returned (its applied_operations record "
                "the original size); plain tensors and arrays carry no such record (keep track_meta on)"
            )
        transform = self.pop_transform(data)
        original, kept = list(transform[TraceKeys.ORIG_SIZE]), list(transform[TraceKeys.EXTRA_INFO]["kept"])
        x = _as_float_tensor(data)
        spatial = _spatial_dims("Downsample.inverse", x)
        size = list(x.shape[1:])
        up = self._resize(x, kept, antialias=False)  # upsampling: antialiasing does nothing
        pad: list[int] = []
        for k, n in zip(reversed(kept), reversed(original)):  # F.pad lists the last axis first
            pad += [0, n - k]
        out = self._finish(F.pad(up, pad), data)
        self._rescale_affine(out, spatial, size, kept)
        return out


class JPEGCompression(_Degradation):
    """JPEG artefacts: encode and decode with Pillow at ``quality`` (1-95, Pillow's useful range).

    2D only, with 1 (greyscale) or 3 (RGB) channels. The data must lie in [0, 1] whatever ``clip`` says (a JPEG
    file stores 8 bits: ``round(255 x)``); it is decoded back to ``value / 255``. Deterministic (Pillow's encoder
    is).
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, quality: int, clip: ClipRange = (0.0, 1.0), dtype: DtypeLike = np.float32) -> None:
        self.quality = _integer("quality", quality, 1, 95)
        self._setup(clip, dtype)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
        _check_range("JPEGCompression", x, (0.0, 1.0), "use another degradation: JPEG stores 8 bits of [0, 1]")
        if x.ndim != 3 or x.shape[0] not in (1, 3):
            raise ValueError(
                "JPEGCompression needs a 2D image (C, H, W) with 1 or 3 channels; JPEG has no 3D form and no "
                f"other channel counts; got shape {tuple(x.shape)}"
            )
        array = (x.detach().cpu().clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
        pil = Image.fromarray(array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1))
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=self.quality)
        decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
        decoded = decoded[None] if decoded.ndim == 2 else np.moveaxis(decoded, -1, 0)
        return self._finish(torch.as_tensor(decoded, dtype=x.dtype, device=x.device), img)


class NoDegradation(Transform):
    """No degradation (spec ``"none"``): returns its input as it is, so configs stay uniform when a run wants the
    clean image as input. Named so that it never shadows ``monai.transforms.Identity``."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return img


# --------------------------------------------------------------------------------------------------- composites
class DegradationSequence(Randomizable, Transform):
    """Apply degradations in order.

    ``set_random_state(seed)`` seeds this sequence, then gives each random member, in order, the seed
    ``self.R.randint(MAX_SEED)`` (as MONAI's ``Compose`` does), so one seed fixes the whole sequence.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)
        if not all(callable(t) for t in self.transforms):
            raise ValueError(f"DegradationSequence needs callables, got {self.transforms!r}")

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> DegradationSequence:
        super().set_random_state(seed, state)
        for t in self.transforms:
            if isinstance(t, Randomizable):
                t.set_random_state(seed=int(self.R.randint(MAX_SEED, dtype="uint32")))
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw here: every member draws its own randomness when called."""

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        for t in self.transforms:
            img = t(img)
        return img

    def passthrough(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The members' :meth:`_Degradation.passthrough` in order: range checks and dtype, no degradation."""
        for t in self.transforms:
            img = passthrough(t, img)
        return img


def passthrough(transform: Callable, img: NdarrayOrTensor) -> NdarrayOrTensor:
    """``img`` as ``transform`` returns it when it skips (range-checked, in its output dtype); unchanged for
    transforms without a ``passthrough`` (``NoDegradation``, user callables)."""
    method = getattr(transform, "passthrough", None)
    return method(img) if callable(method) else img


class RandChallengingDegradation(DegradationSequence):
    """The GradProm paper's "challenging" setting, in the paper's order: Gaussian noise (sigma 0.3), then Poisson
    noise (0.1), then Gaussian blur (kernel 3, sigma 2).

    Zhang, Cheng et al., TPAMI 2025 (GradProm), appendix A-5 "Effectiveness of GradProm under more challenging and
    novel scenarios" (Table 3): "we further introduce Poisson noise and Gaussian blur on top of the previously
    added white Gaussian noise (sigma = 0.3) [...] the noise rate of Poisson noise is set to 0.1, and the Gaussian
    blur is set with a kernel size of 3 and a standard deviation of 2.0". So the Gaussian noise comes first and the
    blur last (it smooths both noises). The physical acquisition order (blur, shot noise, read-out noise) is
    available as the spec ``"blur:3:2+poisson:0.1+gaussian:0.3"``. Each step checks its range and clips.
    """

    def __init__(
        self,
        blur_kernel: int = 3,
        blur_sigma: float = 2.0,
        poisson: float = 0.1,
        gaussian: float = 0.3,
        clip: ClipRange = (0.0, 1.0),
        dtype: DtypeLike = np.float32,
    ) -> None:
        super().__init__(
            [
                RandGaussianNoise(gaussian, clip=clip, dtype=dtype),
                RandPoissonNoise(poisson, clip=clip, dtype=dtype),
                GaussianBlur(blur_kernel, blur_sigma, clip=clip, dtype=dtype),
            ]
        )


# ------------------------------------------------------------------------------------------- deprecated aliases
def _deprecated(new: str) -> Callable[[type], type]:
    return deprecated(
        since=_DEPRECATED_SINCE,
        msg_suffix=f"Use {new} (MONAI's Rand prefix for random transforms); this alias behaves the same.",
        version_val=__version__,
    )


@_deprecated("RandGaussianNoise")
class GaussianNoise(RandGaussianNoise):
    """Deprecated alias of :class:`RandGaussianNoise`."""


@_deprecated("RandPoissonNoise")
class PoissonNoise(RandPoissonNoise):
    """Deprecated alias of :class:`RandPoissonNoise`."""


@_deprecated("RandSpeckleNoise")
class SpeckleNoise(RandSpeckleNoise):
    """Deprecated alias of :class:`RandSpeckleNoise`."""


@_deprecated("RandChallengingDegradation")
class ChallengingDegradation(RandChallengingDegradation):
    """Deprecated alias of :class:`RandChallengingDegradation` (which now follows the paper's order)."""


@deprecated(
    since=_DEPRECATED_SINCE,
    msg_suffix="Use NoDegradation (this name shadowed monai.transforms.Identity).",
    version_val=__version__,
)
class Identity(NoDegradation):
    """Deprecated alias of :class:`NoDegradation`; not exported by ``import *``."""


# ------------------------------------------------------------------------------------------------------ factory
def _downsample_factor(text: str) -> int:
    return int(text.lower().removeprefix("x"))


# name -> (usage, minimum and maximum number of ":" arguments, builder(args, clip))
_PARSERS: dict[str, tuple[str, int, int, Callable[[list[str], Any], Transform]]] = {
    "gaussian": ("gaussian:SIGMA", 1, 1, lambda a, c: RandGaussianNoise(float(a[0]), clip=c)),
    "poisson": ("poisson:LEVEL", 1, 1, lambda a, c: RandPoissonNoise(float(a[0]), clip=c)),
    "speckle": ("speckle:SIGMA", 1, 1, lambda a, c: RandSpeckleNoise(float(a[0]), clip=c)),
    "blur": ("blur:KERNEL[:SIGMA]", 1, 2, lambda a, c: GaussianBlur(int(a[0]), float(a[1]) if a[1:] else 2.0, clip=c)),
    "downsample": ("downsample:FACTOR", 1, 1, lambda a, c: Downsample(_downsample_factor(a[0]), clip=c)),
    "sr": ("sr:xFACTOR", 1, 1, lambda a, c: Downsample(_downsample_factor(a[0]), clip=c)),
    "jpeg": ("jpeg:QUALITY", 1, 1, lambda a, c: JPEGCompression(int(a[0]), clip=c)),
    "challenging": ("challenging", 0, 0, lambda a, c: RandChallengingDegradation(clip=c)),
    "none": ("none", 0, 0, lambda a, c: NoDegradation()),
}
DEGRADATION_NAMES: tuple[str, ...] = tuple(_PARSERS)

_CLASSES: dict[str, type] = {
    "gaussian": RandGaussianNoise,
    "poisson": RandPoissonNoise,
    "speckle": RandSpeckleNoise,
    "blur": GaussianBlur,
    "downsample": Downsample,
    "sr": Downsample,
    "jpeg": JPEGCompression,
    "challenging": RandChallengingDegradation,
    "none": NoDegradation,
}


def _usage() -> str:
    return ", ".join(usage for usage, *_ in _PARSERS.values()) + " (joined with '+')"


def _parse_token(token: str, clip: Any) -> Transform:
    name, *args = (part.strip() for part in token.strip().split(":"))
    name = name.lower()
    if name not in _PARSERS:
        raise ValueError(f"unknown degradation {token.strip()!r} (name {name!r}); valid: {_usage()}")
    usage, low, high, build = _PARSERS[name]
    if not low <= len(args) <= high:
        raise ValueError(f"bad degradation {token.strip()!r}: expected {usage}")
    try:
        return build(args, clip)
    except ValueError as exc:
        raise ValueError(f"bad degradation {token.strip()!r} (expected {usage}): {exc}") from exc


def build_degradation(spec: str | Mapping | Sequence | Transform, clip: ClipRange = (0.0, 1.0)) -> Transform:
    """A degradation from a config value, so bundles can name it with one string.

    ``spec`` may be a transform or callable (returned as is); a string such as ``"gaussian:0.1"``,
    ``"poisson:0.1"``, ``"speckle:0.2"``, ``"blur:3:2.0"``, ``"downsample:4"`` / ``"sr:x4"``, ``"jpeg:10"``,
    ``"challenging"``, ``"none"``, or several joined with ``"+"`` (applied left to right); a dict
    ``{"name": "gaussian", "sigma": 0.1, ...}`` with the class's keyword arguments; or a list of any of these
    (a :class:`DegradationSequence`). ``clip`` is passed to every degradation built here (not to given ones).
    """
    if callable(spec):
        return spec
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = str(kwargs.pop("name", "")).lower()
        if name not in _CLASSES:
            raise ValueError(f"unknown degradation name {name!r} in {dict(spec)!r}; valid: {sorted(_CLASSES)}")
        if name != "none":
            kwargs.setdefault("clip", clip)
        return _CLASSES[name](**kwargs)
    if isinstance(spec, str):
        tokens = spec.split("+")
        if not spec.strip() or any(not token.strip() for token in tokens):
            raise ValueError(f"empty degradation token in {spec!r}; valid: {_usage()}")
        parts = [_parse_token(token, clip) for token in tokens]
        return parts[0] if len(parts) == 1 else DegradationSequence(parts)
    if isinstance(spec, Sequence) and len(spec) > 0:
        return DegradationSequence([build_degradation(item, clip) for item in spec])
    raise ValueError(f"degradation spec must be a string, dict, list or transform, got {spec!r}")
