"""Degradations at a fixed level, as MONAI array transforms (channel-first ``(C, H, W)`` or ``(C, H, W, D)``).

Unlike MONAI's ``RandGaussianNoise``, the level is fixed (never drawn up to a maximum): the papers train and test
at one noise level. Randomness comes from ``self.R`` (set with ``set_random_state``), which draws one integer seed
per call for a ``torch.Generator`` on the image's device, so the noise is generated where the image lives (CPU or
CUDA) and the same seed gives the same output. Outputs are clipped to ``clip`` (default ``(0, 1)``; ``None``
disables it). The input's type (numpy / tensor / MetaTensor), dtype and metadata are kept.
"""

from __future__ import annotations

import io
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Randomizable, RandomizableTransform, Transform
from monai.transforms.utils import scale_affine
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
from monai.utils.misc import MAX_SEED
from PIL import Image

__all__ = [
    "GaussianNoise",
    "PoissonNoise",
    "SpeckleNoise",
    "GaussianBlur",
    "Downsample",
    "JPEGCompression",
    "Identity",
    "DegradationSequence",
    "ChallengingDegradation",
    "build_degradation",
    "DEGRADATION_NAMES",
]

ClipRange = Sequence[float] | None  # (low, high) to clamp the output to, or None for no clipping


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


# ------------------------------------------------------------------------------------------------------ plumbing
def _as_float_tensor(img: NdarrayOrTensor) -> torch.Tensor:
    """A plain tensor view of ``img`` to compute on; integer and half inputs are computed in float32."""
    x = convert_to_tensor(img, track_meta=False)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _finish(out: torch.Tensor, img: NdarrayOrTensor, clip: tuple[float, float] | None) -> NdarrayOrTensor:
    """Clip, then return in the input's type and dtype (a MetaTensor's metadata is carried over)."""
    if clip is not None:
        out = out.clamp(*clip)
    return convert_to_dst_type(out, img, dtype=img.dtype)[0]


class _Noise(RandomizableTransform):
    """Shared plumbing of the noises: one seed per call from ``self.R``, a torch generator on the image's device.

    ``randomize`` always draws both the ``prob`` coin and the seed, so the stream of ``self.R`` does not depend on
    whether the previous call degraded or not.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, clip: ClipRange = (0.0, 1.0), prob: float = 1.0) -> None:
        if not 0.0 <= _real("prob", prob) <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}")
        RandomizableTransform.__init__(self, prob)
        self.clip = _check_clip(clip)
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
            return img
        x = _as_float_tensor(img)
        generator = torch.Generator(device=x.device).manual_seed(self._seed)
        return _finish(self._noise(x, generator), img, self.clip)


# --------------------------------------------------------------------------------------------------------- noise
class GaussianNoise(_Noise):
    """Additive noise ``y = x + N(0, sigma^2)`` at a fixed ``sigma`` (the papers' "Gaussian 0.1" is sigma = 0.1)."""

    def __init__(self, sigma: float, clip: ClipRange = (0.0, 1.0), prob: float = 1.0) -> None:
        super().__init__(clip, prob)
        self.sigma = _real("sigma", sigma)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class PoissonNoise(_Noise):
    """Signal-dependent shot noise ``y = Poisson(x / level^2) * level^2``.

    Mean ``x`` and variance ``level^2 * x``, i.e. std ``level`` at intensity 1 and ``level * sqrt(x)`` elsewhere;
    this is how we read the papers' "Poisson 0.1". ``level^2`` is the intensity of one photon, so the output is
    quantised in steps of ``level^2``. Negative inputs count as 0 (a photon count cannot be negative).
    """

    def __init__(self, level: float, clip: ClipRange = (0.0, 1.0), prob: float = 1.0) -> None:
        super().__init__(clip, prob)
        self.level = _real("level", level)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.level == 0:
            return x
        photon = self.level**2
        return torch.poisson(x.clamp(min=0) / photon, generator=generator) * photon


class SpeckleNoise(_Noise):
    """Multiplicative (ultrasound-like) noise ``y = x + x * N(0, sigma^2)``: std ``sigma * x`` at intensity x."""

    def __init__(self, sigma: float, clip: ClipRange = (0.0, 1.0), prob: float = 1.0) -> None:
        super().__init__(clip, prob)
        self.sigma = _real("sigma", sigma)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + x * self.sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


# ------------------------------------------------------------------------------------------------ deterministic
class GaussianBlur(Transform):
    """Separable Gaussian blur with exactly ``kernel_size`` taps per spatial axis, weights normalised to sum 1.

    ``padding_mode="reflect"`` (default) mirrors the image at its border without repeating the edge pixel, like
    OpenCV's default ``BORDER_REFLECT_101`` that ``cv2.GaussianBlur`` uses; the mean is kept up to a border term
    of at most ``(1 - w0) * range / n`` per axis (``w0`` the centre weight, ``n`` the axis length), typically
    ~1e-4 on real images. ``"circular"`` keeps the mean exactly (every pixel's mass stays in the image) at the
    price of mixing opposite borders over ``kernel_size // 2`` pixels. A size-1 axis is left as it is.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self, kernel_size: int = 3, sigma: float = 2.0, clip: ClipRange = (0.0, 1.0), padding_mode: str = "reflect"
    ) -> None:
        self.kernel_size = _integer("kernel_size", kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred kernel), got {kernel_size!r}")
        self.sigma = _real("sigma", sigma, positive=True)
        if padding_mode not in ("reflect", "circular"):
            raise ValueError(f"padding_mode must be 'reflect' or 'circular', got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.clip = _check_clip(clip)

    def kernel(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """The 1D kernel: ``exp(-t^2 / (2 sigma^2))`` at integer offsets ``t``, normalised to sum 1."""
        half = self.kernel_size // 2
        taps = torch.arange(-half, half + 1, dtype=torch.float64)
        weights = torch.exp(-(taps**2) / (2 * self.sigma**2))
        return (weights / weights.sum()).to(dtype=dtype, device=device)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
        spatial = _spatial_dims("GaussianBlur", x)
        half, channels = self.kernel_size // 2, x.shape[0]
        conv = F.conv2d if spatial == 2 else F.conv3d
        kernel = self.kernel(x.dtype, x.device)
        out = x[None]
        for axis in range(spatial):
            size = x.shape[1 + axis]
            if size == 1 or half == 0:
                continue
            if self.padding_mode == "reflect" and size <= half:
                raise ValueError(
                    f"GaussianBlur: axis {axis} of size {size} is too short for reflect padding with "
                    f"kernel_size={self.kernel_size}; use a smaller kernel or padding_mode='circular'"
                )
            shape = [1] * spatial
            shape[axis] = self.kernel_size
            weight = kernel.reshape(1, 1, *shape).expand(channels, 1, *shape)
            pad = [0, 0] * spatial  # F.pad lists the last axis first
            pad[2 * (spatial - 1 - axis)] = pad[2 * (spatial - 1 - axis) + 1] = half
            out = conv(F.pad(out, pad, mode=self.padding_mode), weight, groups=channels)
        return _finish(out[0], img, self.clip)


class Downsample(Transform):
    """The super-resolution input: shrink by an integer ``factor`` to exactly ``floor(n / factor)`` per axis.

    The last ``n mod factor`` rows / columns / slices are dropped first, so that the sampling step is exactly
    ``factor`` and the output grid stays aligned with the input (the usual "mod-crop" of SR benchmarks). 2D:
    ``mode="bicubic"`` with ``antialias=True`` (``torch.nn.functional.interpolate``, like MATLAB's ``imresize``).
    3D: torch has no bicubic in 3D, so ``"bicubic"`` / ``"bilinear"`` become ``"trilinear"``, which has no
    antialiasing (for factors > 2 prefer ``mode="area"``, the block mean). A MetaTensor's affine is updated as
    MONAI's ``Resize`` does: voxel spacing times ``factor``, origin moved to the centre of the first block.
    """

    backend = [TransformBackends.TORCH]
    _MODES = ("bicubic", "bilinear", "trilinear", "area", "nearest", "nearest-exact")

    def __init__(
        self, factor: int, mode: str = "bicubic", antialias: bool = True, clip: ClipRange = (0.0, 1.0)
    ) -> None:
        self.factor = _integer("factor", factor, 1)
        if mode not in self._MODES:
            raise ValueError(f"mode must be one of {self._MODES}, got {mode!r}")
        self.mode, self.antialias = mode, bool(antialias)
        self.clip = _check_clip(clip)

    def _torch_mode(self, spatial: int) -> str:
        if spatial == 3 and self.mode in ("bicubic", "bilinear"):
            return "trilinear"
        if spatial == 2 and self.mode == "trilinear":
            return "bilinear"
        return self.mode

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
        spatial = _spatial_dims("Downsample", x)
        size = [n // self.factor for n in x.shape[1:]]
        if min(size) < 1:
            raise ValueError(f"Downsample: image of shape {tuple(x.shape)} is too small for factor={self.factor}")
        kept = [s * self.factor for s in size]
        x = x[(slice(None), *(slice(0, k) for k in kept))]
        mode = self._torch_mode(spatial)
        kwargs: dict[str, Any] = {"antialias": self.antialias} if mode in ("bilinear", "bicubic") else {}
        if mode in ("bilinear", "bicubic", "trilinear"):
            kwargs["align_corners"] = False
        out = F.interpolate(x[None], size=size, mode=mode, **kwargs)[0]
        result = _finish(out, img, self.clip)
        if isinstance(result, MetaTensor):
            extra = [1] * max(result.affine.shape[0] - 1 - spatial, 0)  # a 2D image may carry a 4x4 affine
            scale = scale_affine(kept + extra, size + extra)
            result.affine = result.affine @ torch.as_tensor(
                scale, dtype=result.affine.dtype, device=result.affine.device
            )
        return result


class JPEGCompression(Transform):
    """JPEG artefacts: encode and decode with Pillow at ``quality`` (1-95, Pillow's useful range).

    2D only, with 1 (greyscale) or 3 (RGB) channels. The data is assumed to lie in [0, 1]: it is clamped to
    [0, 1] and quantised to 8 bits (``round(255 x)``), as writing a JPEG file would do, and decoded back to
    ``value / 255``. Deterministic (Pillow's encoder is).
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, quality: int, clip: ClipRange = (0.0, 1.0)) -> None:
        self.quality = _integer("quality", quality, 1, 95)
        self.clip = _check_clip(clip)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
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
        return _finish(torch.as_tensor(decoded, dtype=x.dtype, device=x.device), img, self.clip)


class Identity(Transform):
    """No degradation (spec ``"none"``): keeps configs uniform when a run wants the clean image as input."""

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


class ChallengingDegradation(DegradationSequence):
    """The papers' "challenging" setting: Gaussian blur (kernel 3, sigma 2), then Poisson 0.1, then Gaussian 0.3.

    Blur first because it is optical (it happens before light or X-rays reach the detector); the two noises arise
    at acquisition: shot noise of the photon count, then additive electronic read-out noise. Each step clips.
    """

    def __init__(
        self,
        blur_kernel: int = 3,
        blur_sigma: float = 2.0,
        poisson: float = 0.1,
        gaussian: float = 0.3,
        clip: ClipRange = (0.0, 1.0),
    ) -> None:
        super().__init__(
            [
                GaussianBlur(blur_kernel, blur_sigma, clip=clip),
                PoissonNoise(poisson, clip=clip),
                GaussianNoise(gaussian, clip=clip),
            ]
        )


# ------------------------------------------------------------------------------------------------------ factory
def _downsample_factor(text: str) -> int:
    return int(text.lower().removeprefix("x"))


# name -> (usage, minimum and maximum number of ":" arguments, builder(args, clip))
_PARSERS: dict[str, tuple[str, int, int, Callable[[list[str], Any], Transform]]] = {
    "gaussian": ("gaussian:SIGMA", 1, 1, lambda a, c: GaussianNoise(float(a[0]), clip=c)),
    "poisson": ("poisson:LEVEL", 1, 1, lambda a, c: PoissonNoise(float(a[0]), clip=c)),
    "speckle": ("speckle:SIGMA", 1, 1, lambda a, c: SpeckleNoise(float(a[0]), clip=c)),
    "blur": ("blur:KERNEL[:SIGMA]", 1, 2, lambda a, c: GaussianBlur(int(a[0]), float(a[1]) if a[1:] else 2.0, clip=c)),
    "downsample": ("downsample:FACTOR", 1, 1, lambda a, c: Downsample(_downsample_factor(a[0]), clip=c)),
    "sr": ("sr:xFACTOR", 1, 1, lambda a, c: Downsample(_downsample_factor(a[0]), clip=c)),
    "jpeg": ("jpeg:QUALITY", 1, 1, lambda a, c: JPEGCompression(int(a[0]), clip=c)),
    "challenging": ("challenging", 0, 0, lambda a, c: ChallengingDegradation(clip=c)),
    "none": ("none", 0, 0, lambda a, c: Identity()),
}
DEGRADATION_NAMES: tuple[str, ...] = tuple(_PARSERS)

_CLASSES: dict[str, type] = {
    "gaussian": GaussianNoise,
    "poisson": PoissonNoise,
    "speckle": SpeckleNoise,
    "blur": GaussianBlur,
    "downsample": Downsample,
    "sr": Downsample,
    "jpeg": JPEGCompression,
    "challenging": ChallengingDegradation,
    "none": Identity,
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
