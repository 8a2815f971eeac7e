"""Degradations at a fixed level, as MONAI array transforms (channel-first, 2D or 3D).

Unlike MONAI's ``RandGaussianNoise``, the level is fixed (not drawn up to a maximum): the papers train and test
at one noise level. Randomness comes from ``self.R`` (set with ``set_random_state``), which draws one integer
seed per call for a ``torch.Generator`` on the image's device, so the noise is generated where the image lives
(CPU or CUDA) and the same seed gives the same output. Outputs are clipped to ``clip`` (default [0, 1]; None
disables it); dtype, type (numpy / tensor / MetaTensor) and metadata are kept.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
from PIL import Image

__all__ = [
    "GaussianNoise",
    "PoissonNoise",
    "SpeckleNoise",
    "GaussianBlur",
    "Downsample",
    "JPEGCompression",
    "DegradationSequence",
    "ChallengingDegradation",
    "Identity",
    "build_degradation",
    "DEGRADATION_NAMES",
]

Clip = "tuple[float, float] | None"


def _check_clip(clip) -> tuple[float, float] | None:
    if clip is None:
        return None
    low, high = clip
    if not low < high:
        raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}")
    return float(low), float(high)


def _non_negative(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or value != value:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _finish(out: torch.Tensor, img: NdarrayOrTensor, clip) -> NdarrayOrTensor:
    """Clip, then convert back to the input's type and dtype (MetaTensor metadata is carried by convert)."""
    if clip is not None:
        out = out.clamp(*clip)
    return convert_to_dst_type(out, img, dtype=img.dtype)[0]


def _as_float_tensor(img: NdarrayOrTensor) -> torch.Tensor:
    tensor = convert_to_tensor(img, track_meta=False)
    return tensor.float() if not tensor.is_floating_point() or tensor.dtype == torch.float16 else tensor


class _NoiseBase(RandomizableTransform):
    """Shared plumbing: a per-call seed from ``self.R`` and a torch generator on the image's device."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 1.0, clip=(0.0, 1.0)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.clip = _check_clip(clip)
        self._seed = 0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def _generator(self, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self._seed)

    def _degrade(self, img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        x = _as_float_tensor(img)
        return _finish(self._degrade(x, self._generator(x.device)), img, self.clip)


class GaussianNoise(_NoiseBase):
    """``x + N(0, sigma^2)``, sigma fixed."""

    def __init__(self, sigma: float, prob: float = 1.0, clip=(0.0, 1.0)) -> None:
        super().__init__(prob, clip)
        self.sigma = _non_negative("sigma", sigma)

    def _degrade(self, img, generator):
        noise = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype)
        return img + self.sigma * noise


class PoissonNoise(_NoiseBase):
    """Shot noise ``y = Poisson(x / level^2) * level^2``: mean x, variance ``level^2 * x`` (std ``level`` at
    intensity 1). This is the meaning we give the papers' "Poisson 0.1". Negative inputs count as 0."""

    def __init__(self, level: float, prob: float = 1.0, clip=(0.0, 1.0)) -> None:
        super().__init__(prob, clip)
        self.level = _non_negative("level", level)

    def _degrade(self, img, generator):
        if self.level == 0:
            return img
        scale = self.level**2
        return torch.poisson(img.clamp(min=0) / scale, generator=generator) * scale


class SpeckleNoise(_NoiseBase):
    """Multiplicative noise ``y = x + x * N(0, sigma^2)`` (ultrasound-like speckle)."""

    def __init__(self, sigma: float, prob: float = 1.0, clip=(0.0, 1.0)) -> None:
        super().__init__(prob, clip)
        self.sigma = _non_negative("sigma", sigma)

    def _degrade(self, img, generator):
        noise = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype)
        return img + img * self.sigma * noise


class GaussianBlur(Transform):
    """Separable Gaussian blur with exactly ``kernel_size`` taps per spatial axis (normalised to sum 1).

    Circular padding keeps the image mean exactly (each pixel's mass is spread over the torus); edges are
    mixed with the opposite side over ``kernel_size // 2`` pixels, which for the papers' 3-tap kernel is one.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, kernel_size: int = 3, sigma: float = 2.0, clip=(0.0, 1.0)) -> None:
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        if _non_negative("sigma", sigma) == 0:
            raise ValueError("sigma must be > 0 for a Gaussian blur, got 0")
        self.kernel_size, self.sigma = kernel_size, float(sigma)
        self.clip = _check_clip(clip)

    def kernel(self, dtype=torch.float32, device=None) -> torch.Tensor:
        half = self.kernel_size // 2
        taps = torch.arange(-half, half + 1, dtype=torch.float64)
        weights = torch.exp(-(taps**2) / (2 * self.sigma**2))
        return (weights / weights.sum()).to(dtype=dtype, device=device)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
        spatial = x.ndim - 1
        if spatial not in (2, 3):
            raise ValueError(f"GaussianBlur expects a channel-first 2D or 3D image, got shape {tuple(x.shape)}")
        kernel = self.kernel(x.dtype, x.device)
        half = self.kernel_size // 2
        out = x[None]
        conv = F.conv2d if spatial == 2 else F.conv3d
        channels = x.shape[0]
        for axis in range(spatial):
            shape = [1] * spatial
            shape[axis] = self.kernel_size
            weight = kernel.reshape(1, 1, *shape).repeat(channels, 1, *([1] * spatial))
            pad = [0, 0] * spatial
            pad[2 * (spatial - 1 - axis)] = pad[2 * (spatial - 1 - axis) + 1] = half
            out = conv(F.pad(out, pad, mode="circular"), weight, groups=channels)
        return _finish(out[0], img, self.clip)


class Downsample(Transform):
    """The super-resolution input: resize by ``1 / factor`` to exactly ``floor(size / factor)`` per axis.

    2D uses bicubic interpolation with antialiasing (``torch.nn.functional.interpolate``); 3D uses trilinear,
    since torch has no 3D bicubic. A MetaTensor's affine is updated so its voxel spacing grows by the factor.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, factor: int, mode: str | None = None, antialias: bool = True, clip=(0.0, 1.0)) -> None:
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
        self.factor, self.mode, self.antialias = factor, mode, antialias
        self.clip = _check_clip(clip)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
        spatial = x.ndim - 1
        if spatial not in (2, 3):
            raise ValueError(f"Downsample expects a channel-first 2D or 3D image, got shape {tuple(x.shape)}")
        size = [s // self.factor for s in x.shape[1:]]
        if min(size) < 1:
            raise ValueError(f"image of shape {tuple(x.shape)} is too small to downsample by {self.factor}")
        mode = self.mode or ("bicubic" if spatial == 2 else "trilinear")
        antialias = self.antialias and mode in ("bilinear", "bicubic")
        out = F.interpolate(x[None], size=size, mode=mode, align_corners=False, antialias=antialias)[0]
        result = _finish(out, img, self.clip)
        if isinstance(img, MetaTensor) and isinstance(result, MetaTensor):
            affine = img.affine.clone()
            affine[:spatial, :spatial] = affine[:spatial, :spatial] * self.factor
            result.affine = affine
        return result


class JPEGCompression(Transform):
    """Encode and decode with Pillow's JPEG at ``quality`` (1-95). 2D only, 1 or 3 channels; the data is assumed
    to lie in [0, 1] and is quantised to 8 bits on the way (as a JPEG file would be)."""

    backend = [TransformBackends.NUMPY]

    def __init__(self, quality: int, clip=(0.0, 1.0)) -> None:
        if not isinstance(quality, int) or not 1 <= quality <= 95:
            raise ValueError(f"quality must be an integer in 1..95, got {quality!r}")
        self.quality = quality
        self.clip = _check_clip(clip)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _as_float_tensor(img)
        if x.ndim != 3 or x.shape[0] not in (1, 3):
            raise ValueError(
                f"JPEGCompression needs a 2D image with 1 or 3 channels (C, H, W), got shape {tuple(x.shape)}; "
                "JPEG has no 3D form"
            )
        array = (x.detach().cpu().clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
        pil = Image.fromarray(array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1))
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=self.quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0
        decoded = decoded[None] if decoded.ndim == 2 else np.moveaxis(decoded, -1, 0)
        return _finish(torch.as_tensor(decoded, device=x.device, dtype=x.dtype), img, self.clip)


class Identity(Transform):
    """No degradation (``"none"``): keeps configs uniform when a run wants the clean image as input."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return img


class DegradationSequence(RandomizableTransform):
    """Apply degradations in order; ``set_random_state`` seeds every random member from one seed."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, transforms: Sequence[Transform]) -> None:
        RandomizableTransform.__init__(self, 1.0)
        self.transforms = list(transforms)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        for t in self.transforms:
            if isinstance(t, RandomizableTransform):
                t.set_random_state(seed=int(self.R.randint(0, 2**31 - 1)))
        return self

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        for t in self.transforms:
            img = t(img)
        return img


class ChallengingDegradation(DegradationSequence):
    """The papers' "challenging" setting: Gaussian blur (kernel 3, sigma 2), then Poisson 0.1, then Gaussian
    0.3. Blur comes first because it is optical (before the detector); both noises arise at acquisition."""

    def __init__(self, blur_kernel: int = 3, blur_sigma: float = 2.0, poisson: float = 0.1, gaussian: float = 0.3,
                 clip=(0.0, 1.0)) -> None:
        super().__init__([
            GaussianBlur(blur_kernel, blur_sigma, clip=clip),
            PoissonNoise(poisson, clip=clip),
            GaussianNoise(gaussian, clip=clip),
        ])


DEGRADATION_NAMES = ("gaussian", "poisson", "speckle", "blur", "downsample", "sr", "jpeg", "challenging", "none")


def _parse_one(token: str, clip) -> Transform:
    name, *args = token.strip().split(":")
    name = name.strip().lower()
    try:
        if name == "gaussian" and len(args) == 1:
            return GaussianNoise(float(args[0]), clip=clip)
        if name == "poisson" and len(args) == 1:
            return PoissonNoise(float(args[0]), clip=clip)
        if name == "speckle" and len(args) == 1:
            return SpeckleNoise(float(args[0]), clip=clip)
        if name == "blur" and len(args) in (1, 2):
            return GaussianBlur(int(args[0]), float(args[1]) if len(args) == 2 else 2.0, clip=clip)
        if name in ("downsample", "sr") and len(args) == 1:
            return Downsample(int(args[0].lower().lstrip("x")), clip=clip)
        if name == "jpeg" and len(args) == 1:
            return JPEGCompression(int(args[0]), clip=clip)
        if name == "challenging" and not args:
            return ChallengingDegradation(clip=clip)
        if name == "none" and not args:
            return Identity()
    except ValueError as exc:
        raise ValueError(f"bad degradation {token!r}: {exc}") from exc
    raise ValueError(
        f"unknown degradation {token!r}; use one of gaussian:SIGMA, poisson:LEVEL, speckle:SIGMA, "
        "blur:KERNEL[:SIGMA], downsample:FACTOR (or sr:xFACTOR), jpeg:QUALITY, challenging, none, "
        "joined with '+'"
    )


def build_degradation(spec: str | dict | Transform, clip=(0.0, 1.0)) -> Transform:
    """A degradation from a config value: a transform (returned as is), a dict ``{"name": ..., **kwargs}``, or a
    string such as ``"gaussian:0.1"``, ``"sr:x4"``, ``"jpeg:10"``, ``"challenging"`` or ``"blur:3:2+gaussian:0.1"``.
    """
    if isinstance(spec, Transform):
        return spec
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        classes = {"gaussian": GaussianNoise, "poisson": PoissonNoise, "speckle": SpeckleNoise,
                   "blur": GaussianBlur, "downsample": Downsample, "jpeg": JPEGCompression,
                   "challenging": ChallengingDegradation, "none": Identity}
        if name not in classes:
            raise ValueError(f"unknown degradation name {name!r}; choose one of {sorted(classes)}")
        return classes[name](**kwargs)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"degradation spec must be a non-empty string, dict or transform, got {spec!r}")
    parts = [_parse_one(token, clip) for token in spec.split("+")]
    return parts[0] if len(parts) == 1 else DegradationSequence(parts)
