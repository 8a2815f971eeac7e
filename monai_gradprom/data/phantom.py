"""A synthetic lesion phantom generated from a seed at run time: the demo bundle's data set (no download).

Each image shows textured tissue inside an organ-like ellipse (ellipsoid in 3D) with one lesion inside it. The
class is in the lesion's *shape and texture*, not in its brightness or size:

- ``label 0`` "benign": a round lesion with a smooth margin and a homogeneous interior;
- ``label 1`` "malignant": a lobulated margin and a fine oriented texture inside (period 3.5-5 pixels, amplitude
  0.12, random orientation and phase).

Both classes draw the lesion's contrast (0.15-0.25 in [0, 1] intensity, either sign), size (radius 8-15 % of the
image, margin normalised to the same area / volume) and position from the same distributions, so neither mean
intensity nor lesion size gives the class away. The texture is the cue that matters: a recognizer trained on
clean images learns it within a few hundred steps, and Gaussian noise of sigma 0.1 makes that recognizer fail
(it sees texture everywhere) while the information survives (a recognizer trained on noisy images recovers it),
and it is exactly the kind of fine detail an MSE denoiser averages away. (An earlier version put the class in
pixel-level interior noise, which any added noise destroys: no enhancement could restore it.) ``seg`` is the
lesion mask.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

__all__ = ["make_phantom", "make_phantom_datalist", "split_phantom"]

_SPIKE, _WOBBLE = 0.7, 0.12  # malignant margin: spike height and coarse wobble, relative to the radius
_MAX_MARGIN = 1.35  # largest lesion extent over its nominal radius, both classes: keeps every lesion in the organ


@lru_cache(maxsize=8)
def _grid(size: int, spatial_dims: int) -> np.ndarray:
    """Pixel coordinates ``(dims, *shape)`` in units of the image size (cached, read-only)."""
    axes = [np.arange(size, dtype=np.float64) / size] * spatial_dims
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    coords.flags.writeable = False
    return coords


@lru_cache(maxsize=32)
def _lowpass(shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Gaussian low-pass filter on the real-FFT grid of ``shape`` (cached, read-only)."""
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape[:-1]], np.fft.rfftfreq(shape[-1]), indexing="ij")
    lowpass = np.exp(-sum(f**2 for f in freqs) * (scale**2) * 8.0)
    lowpass.flags.writeable = False
    return lowpass


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Random texture in [-1, 1]: white noise low-pass filtered in the Fourier domain (larger scale, smoother)."""
    field = np.fft.irfftn(np.fft.rfftn(rng.standard_normal(shape)) * _lowpass(shape, scale), s=shape)
    field -= field.mean()
    peak = np.abs(field).max()
    return field / peak if peak > 0 else field


def _random_rotation(rng: np.random.Generator, spatial_dims: int) -> np.ndarray:
    """A uniformly random orthogonal matrix (QR of a Gaussian matrix with the sign convention fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((spatial_dims, spatial_dims)))
    return q * np.sign(np.diag(r))


def _fibonacci_sphere(count: int) -> np.ndarray:
    """``count`` nearly evenly spread unit vectors ``(count, 3)``: the spike directions of a 3D lesion."""
    index = np.arange(count) + 0.5
    z = 1.0 - 2.0 * index / count
    azimuth = np.pi * (1.0 + 5**0.5) * index
    ring = np.sqrt(1.0 - z**2)
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)


def _margin(rng: np.random.Generator, label: int, spatial_dims: int) -> Callable[[np.ndarray], np.ndarray]:
    """The lesion's radius as a function of direction, over its nominal radius: ``f(unit vectors (dims, ...))``.

    Benign: a faint low-order wobble. Malignant: evenly spaced sharp spikes plus a coarse wobble. Both are scaled
    to the area (2D) / volume (3D) of the nominal disc / ball, so lesion size carries no class information.
    """
    if spatial_dims == 2:
        phase = rng.uniform(0, 2 * np.pi, 2)
        if label == 0:
            def factor(n):
                return 1.0 + 0.04 * np.sin(2 * np.arctan2(n[0], n[1]) + phase[0])
        else:
            spikes = rng.integers(3, 6)

            def factor(n):
                angle = np.arctan2(n[0], n[1])
                jagged = _SPIKE * np.abs(np.sin(spikes * angle / 2 + phase[0])) ** 1.5
                return 1.0 + jagged + _WOBBLE * np.sin(3 * angle + phase[1])
        angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        samples = np.stack([np.sin(angles), np.cos(angles)])
    else:
        rotation = _random_rotation(rng, 3)
        axis = rotation[:, 0]
        if label == 0:
            def factor(n):
                return 1.0 + 0.04 * (2 * np.tensordot(axis, n, 1) ** 2 - 1)
        else:
            spikes = _fibonacci_sphere(int(rng.integers(12, 21))) @ rotation.T

            def factor(n):
                cosines = np.tensordot(spikes, n, 1).clip(0, None)
                jagged = _SPIKE * (cosines**16).max(axis=0)
                return 1.0 + jagged + _WOBBLE * np.tensordot(axis, n, 1) * np.tensordot(rotation[:, 1], n, 1)
        samples = _fibonacci_sphere(4000).T
    norm = np.mean(factor(samples) ** spatial_dims) ** (1.0 / spatial_dims)
    return lambda n: np.minimum(factor(n) / norm, _MAX_MARGIN)


def make_phantom(
    rng: np.random.Generator, image_size: int, label: int, spatial_dims: int = 2, return_organ: bool = False
) -> tuple[np.ndarray, ...]:
    """One ``(image float32 in [0, 1], lesion mask uint8)`` pair of the given class, each of shape
    ``(image_size,) * spatial_dims``; with ``return_organ`` also the organ mask (bool)."""
    if label not in (0, 1) or spatial_dims not in (2, 3):
        raise ValueError(f"label must be 0 or 1 and spatial_dims 2 or 3, got {label!r} and {spatial_dims!r}")
    coords = _grid(image_size, spatial_dims)
    shape = coords.shape[1:]
    expand = (slice(None),) + (None,) * spatial_dims  # a (dims,) vector against the (dims, *shape) grid

    # organ: a randomly rotated ellipse / ellipsoid of smooth tissue texture on a dark background
    centre = 0.5 + rng.uniform(-0.04, 0.04, spatial_dims)
    semi_axes = rng.uniform(0.36, 0.44, spatial_dims)
    local = np.tensordot(_random_rotation(rng, spatial_dims).T, coords - centre[expand], 1)
    organ = np.sum((local / semi_axes[expand]) ** 2, axis=0) <= 1.0
    tissue_level = rng.uniform(0.45, 0.6)
    texture = 0.06 * _smooth_field(rng, shape, 6) + 0.03 * _smooth_field(rng, shape, 2)
    image = np.where(organ, tissue_level + texture, 0.05 + 0.02 * _smooth_field(rng, shape, 8))

    # lesion: nominal radius 8-15 % of the image, centred so that its largest possible extent stays within the
    # ball inscribed in the organ (the same placement for both classes, so position carries no class information)
    radius = rng.uniform(0.08, 0.15)
    direction = rng.standard_normal(spatial_dims)
    direction /= np.linalg.norm(direction)
    offset = rng.uniform(0.0, 1.0) * (semi_axes.min() - _MAX_MARGIN * radius)
    lesion_centre = centre + offset * direction
    delta = coords - lesion_centre[expand]
    dist = np.sqrt(np.sum(delta**2, axis=0))
    unit = delta / np.maximum(dist, 1e-12)
    boundary = radius * _margin(rng, label, spatial_dims)(unit)
    mask = dist <= boundary

    contrast = rng.uniform(0.15, 0.25) * rng.choice([-1.0, 1.0])
    if label == 0:
        interior = 0.01 * _smooth_field(rng, shape, 4)
    else:
        # a fine oriented texture (period 3.5-5 pixels): visible through noise as a pattern over the lesion's area,
        # but exactly the kind of detail an MSE denoiser averages away
        direction = rng.standard_normal(spatial_dims)
        direction /= np.linalg.norm(direction)
        period = rng.uniform(3.5, 5.0) / image_size
        phase_shift = rng.uniform(0, 2 * np.pi)
        interior = 0.12 * np.sin(2 * np.pi * np.tensordot(direction, coords, 1) / period + phase_shift)
    lesion = np.clip(tissue_level + contrast + interior, 0.0, 1.0)
    # a one-pixel soft edge, so that the benign margin is smooth rather than aliased
    edge = np.clip((boundary - dist) * image_size + 0.5, 0.0, 1.0)
    image = image * (1 - edge) + lesion * edge
    result = (np.clip(image, 0.0, 1.0).astype(np.float32), mask.astype(np.uint8))
    return result + (organ,) if return_organ else result


def make_phantom_datalist(
    num_samples: int, image_size: int = 64, seed: int = 0, spatial_dims: int = 2
) -> list[dict]:
    """A MONAI datalist of ``num_samples`` phantoms, ready for ``monai.data.Dataset`` / ``CacheDataset``.

    Items: ``{"image": (1, *spatial) float32 in [0, 1], "seg": (1, *spatial) uint8 0/1, "label": int 0/1,
    "id": str}``, with ``spatial = (image_size,) * spatial_dims`` (2D or 3D). Classes are balanced (a seeded
    permutation of alternating labels); the same seed gives the same images, another seed other images.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if num_samples < 0 or image_size < 16:
        raise ValueError(f"need num_samples >= 0 and image_size >= 16, got {num_samples} and {image_size}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_samples) % 2)
    items = []
    for index, label in enumerate(labels):
        image, mask = make_phantom(rng, image_size, int(label), spatial_dims)
        items.append(
            {"image": image[None], "seg": mask[None], "label": int(label), "id": f"phantom_{seed}_{index:05d}"}
        )
    return items


def split_phantom(
    num_train: int, num_val: int, num_test: int, image_size: int = 64, seed: int = 0, spatial_dims: int = 2
) -> dict[str, list[dict]]:
    """``{"training", "validation", "test"}`` datalists generated from disjoint seeds spawned from ``seed``."""
    seeds = np.random.SeedSequence(seed).spawn(3)
    return {
        split: make_phantom_datalist(n, image_size, int(s.generate_state(1)[0]), spatial_dims)
        for split, n, s in zip(("training", "validation", "test"), (num_train, num_val, num_test), seeds)
    }
