"""A synthetic lesion phantom generated from a seed at run time: the demo bundle's data set (no download).

Each image shows textured tissue inside an organ-like ellipse with one lesion. The class is in the lesion's
*shape and texture*, not its brightness:

- ``label 0`` "benign": a round lesion with a smooth margin and homogeneous interior;
- ``label 1`` "malignant": an irregular, spiculated margin and a heterogeneous interior.

Lesion contrast against the tissue is modest (0.15-0.25 in [0, 1] intensity) and both classes draw it from the
same range, so the mean intensity does not give the class away, while Gaussian noise of sigma 0.1-0.3 hides
the fine margin and texture cues: recognition on the degraded image is hard, on the clean image learnable.
``seg`` is the lesion mask.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_phantom", "make_phantom_datalist", "split_phantom"]


def _smooth_field(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Low-frequency random texture in [-1, 1]: coarse noise upsampled by Fourier-domain low-pass filtering."""
    noise = rng.standard_normal((size, size))
    freq_y = np.fft.fftfreq(size)[:, None]
    freq_x = np.fft.fftfreq(size)[None, :]
    lowpass = np.exp(-((freq_y**2 + freq_x**2) * (scale**2) * 8.0))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * lowpass))
    field -= field.mean()
    peak = np.abs(field).max()
    return field / peak if peak > 0 else field


def make_phantom(rng: np.random.Generator, image_size: int, label: int) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image (H, W) float32 in [0, 1], mask (H, W) uint8)`` pair of the given class."""
    size = image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    # organ: a rotated ellipse with smooth tissue texture
    cy, cx = 0.5 + rng.uniform(-0.04, 0.04, 2)
    ry, rx = rng.uniform(0.36, 0.44, 2)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dy * np.cos(theta) + dx * np.sin(theta)) / ry
    v = (-dy * np.sin(theta) + dx * np.cos(theta)) / rx
    organ = u**2 + v**2 <= 1.0
    tissue_level = rng.uniform(0.45, 0.6)
    texture = 0.06 * _smooth_field(rng, size, scale=6) + 0.03 * _smooth_field(rng, size, scale=2)
    image = np.where(organ, tissue_level + texture, 0.05 + 0.02 * _smooth_field(rng, size, scale=8))

    # lesion: inside the organ, radius 8-15 % of the image
    radius = rng.uniform(0.08, 0.15)
    angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5)
    ly = cy + distance * (ry - radius) * np.sin(angle)
    lx = cx + distance * (rx - radius) * np.cos(angle)
    dist = np.hypot(yy - ly, xx - lx)
    polar = np.arctan2(yy - ly, xx - lx)
    if label == 0:
        boundary = radius * (1.0 + 0.04 * np.sin(2 * polar + rng.uniform(0, 2 * np.pi)))
    else:
        spikes = rng.integers(6, 11)
        jagged = 0.25 * np.abs(np.sin(spikes * polar / 2 + rng.uniform(0, np.pi))) ** 3
        wobble = 0.12 * np.sin(3 * polar + rng.uniform(0, 2 * np.pi))
        boundary = radius * (1.0 + jagged + wobble)
    mask = dist <= boundary
    contrast = rng.uniform(0.15, 0.25) * rng.choice([-1.0, 1.0])
    if label == 0:
        interior = 0.01 * _smooth_field(rng, size, scale=4)
    else:
        interior = 0.08 * _smooth_field(rng, size, scale=1) + 0.04 * rng.standard_normal((size, size))
    lesion = np.clip(tissue_level + contrast + interior, 0.0, 1.0)
    # soft edge of one pixel so the benign margin is smooth rather than aliased
    edge = np.clip((boundary - dist) * size + 0.5, 0.0, 1.0)
    image = image * (1 - edge) + lesion * edge
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask.astype(np.uint8)


def make_phantom_datalist(
    num_samples: int, image_size: int = 64, seed: int = 0, spatial_dims: int = 2
) -> list[dict]:
    """``num_samples`` items ``{"image": (1, H, W) float32, "seg": (1, H, W) uint8, "label": int, "id": str}``.

    Classes are balanced (a seeded permutation of alternating labels); the same seed gives the same images.
    """
    if spatial_dims != 2:
        raise NotImplementedError("the lesion phantom is 2D only (spatial_dims=2)")
    if num_samples < 0 or image_size < 16:
        raise ValueError(f"need num_samples >= 0 and image_size >= 16, got {num_samples} and {image_size}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_samples) % 2)
    items = []
    for index, label in enumerate(labels):
        image, mask = make_phantom(rng, image_size, int(label))
        items.append({"image": image[None], "seg": mask[None], "label": int(label), "id": f"phantom_{seed}_{index:05d}"})
    return items


def split_phantom(
    num_train: int, num_val: int, num_test: int, image_size: int = 64, seed: int = 0
) -> dict[str, list[dict]]:
    """Training / validation / test data lists drawn from disjoint seeds (no image appears in two splits)."""
    seeds = np.random.SeedSequence(seed).spawn(3)
    return {
        split: make_phantom_datalist(n, image_size, int(s.generate_state(1)[0]))
        for split, n, s in zip(("training", "validation", "test"), (num_train, num_val, num_test), seeds)
    }
