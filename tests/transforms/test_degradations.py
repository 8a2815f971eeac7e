"""Array degradations measure what they claim: noise levels, seeds, shapes, mean, alignment, types, metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.utils.misc import MAX_SEED
from scipy import ndimage

from monai_gradprom.transforms import (
    DegradationSequence,
    Downsample,
    GaussianBlur,
    JPEGCompression,
    RandChallengingDegradation,
    RandGaussianNoise,
    RandPoissonNoise,
    RandSpeckleNoise,
)


def _flat(value: float = 0.5, size: int = 512) -> torch.Tensor:
    return torch.full((1, size, size), value)


def _smooth(size: int = 64, channels: int = 1) -> torch.Tensor:
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.5 + 0.4 * np.sin(8 * x) * np.cos(5 * y)
    return torch.tensor(np.repeat(image[None], channels, axis=0), dtype=torch.float32)


# --------------------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.3])
def test_gaussian_noise_std_within_5_percent_of_sigma_and_zero_mean(sigma):
    noise = RandGaussianNoise(sigma, clip=None).set_random_state(0)(_flat()) - 0.5
    assert abs(float(noise.std()) - sigma) < 0.05 * sigma
    assert abs(float(noise.mean())) < 0.02 * sigma  # standard error is sigma / 512


@pytest.mark.parametrize("value", [0.2, 0.8])
def test_poisson_mean_is_intensity_and_variance_is_level_squared_times_intensity(value):
    out = RandPoissonNoise(0.1, clip=None).set_random_state(1)(_flat(value))
    assert float(out.var()) == pytest.approx(0.01 * value, rel=0.05)
    assert float(out.mean()) == pytest.approx(value, rel=0.01)
    photons = out / 0.01  # one photon = level^2 of intensity
    torch.testing.assert_close(photons, photons.round(), atol=1e-3, rtol=0)


def test_speckle_std_is_sigma_times_intensity():
    noise = RandSpeckleNoise(0.2, clip=None).set_random_state(2)(_flat(0.25)) - 0.25
    assert float(noise.std()) == pytest.approx(0.2 * 0.25, rel=0.05)
    assert abs(float(noise.mean())) < 0.02 * 0.05


@pytest.mark.parametrize(
    "make", [lambda: RandGaussianNoise(0.1), lambda: RandPoissonNoise(0.1), lambda: RandSpeckleNoise(0.2)]
)
def test_same_seed_same_output_other_seed_other_output(make):
    x = torch.rand(1, 32, 32)
    a, b, c = make().set_random_state(7)(x), make().set_random_state(7)(x), make().set_random_state(8)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    t = make().set_random_state(7)
    assert not torch.equal(t(x), t(x))  # successive calls draw fresh noise


def test_prob_zero_returns_the_input_and_prob_is_validated():
    x = torch.rand(1, 8, 8)
    assert torch.equal(RandGaussianNoise(0.5, prob=0.0).set_random_state(0)(x), x)
    with pytest.raises(ValueError, match="prob"):
        RandGaussianNoise(0.1, prob=1.5)


def test_clipping_to_unit_range_and_clip_none_allows_values_outside():
    x = torch.rand(1, 64, 64)
    clipped = RandGaussianNoise(0.5).set_random_state(0)(x)
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0
    raw = RandGaussianNoise(0.5, clip=None).set_random_state(0)(x)
    assert float(raw.min()) < 0.0 and float(raw.max()) > 1.0
    narrow = RandGaussianNoise(0.5, clip=(0.2, 0.3)).set_random_state(0)(0.2 + 0.1 * x)  # data in its clip range
    assert 0.2 - 1e-7 <= float(narrow.min()) and float(narrow.max()) <= 0.3 + 1e-7


# ------------------------------------------------------------------------------------------ types and metadata
ALL_2D = [
    lambda **kw: RandGaussianNoise(0.1, **kw),
    lambda **kw: RandPoissonNoise(0.1, **kw),
    lambda **kw: RandSpeckleNoise(0.1, **kw),
    lambda **kw: GaussianBlur(3, 2.0, **kw),
    lambda **kw: JPEGCompression(50, **kw),
    lambda **kw: RandChallengingDegradation(**kw),
    lambda **kw: Downsample(2, **kw),
]


@pytest.mark.parametrize("make", ALL_2D)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8])
def test_numpy_in_numpy_out_float32_whatever_the_input_dtype(make, dtype):
    t = make()
    if hasattr(t, "set_random_state"):
        t.set_random_state(0)
    image = np.random.default_rng(0).random((1, 16, 16))
    out = t((image > 0.5).astype(dtype) if dtype == np.uint8 else image.astype(dtype))  # uint8: a 0/1 mask
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("make", ALL_2D)
def test_dtype_none_keeps_a_floating_input_dtype(make):
    t = make(dtype=None)
    if hasattr(t, "set_random_state"):
        t.set_random_state(0)
    assert t(torch.rand(1, 16, 16, dtype=torch.float64)).dtype == torch.float64
    assert t(torch.ones(1, 16, 16, dtype=torch.uint8)).dtype == torch.float32  # never back to an integer type


@pytest.mark.parametrize("make", ALL_2D)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_metatensor_in_float32_metatensor_out_with_affine_and_custom_meta(make, dtype):
    image = MetaTensor(torch.rand(1, 16, 16, dtype=dtype), meta={"patient": "p1"})
    image.affine = torch.diag(torch.tensor([0.5, 0.7, 1.0, 1.0], dtype=torch.float64))
    t = make()
    if hasattr(t, "set_random_state"):
        t.set_random_state(0)
    out = t(image)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and out.meta["patient"] == "p1"
    if not isinstance(t, Downsample):
        torch.testing.assert_close(out.affine, image.affine)
    assert image.affine[0, 0] == 0.5  # the input's metadata is not modified
    assert type(t(torch.rand(1, 16, 16))) is torch.Tensor


# -------------------------------------------------------------------------------------------------------- blur
def test_blur_matches_separable_reference_with_mirror_border():
    x = torch.rand(1, 20, 17, dtype=torch.float64)
    blur = GaussianBlur(5, 1.5, clip=None, dtype=None)
    k = blur.kernel(torch.float64).numpy()
    reference = ndimage.convolve(x[0].numpy(), np.outer(k, k), mode="mirror")  # scipy "mirror" = torch "reflect"
    np.testing.assert_allclose(blur(x)[0].numpy(), reference, atol=1e-12)


def test_blur_kernel_has_exactly_kernel_size_taps_summing_to_one():
    for size, sigma in [(3, 2.0), (7, 1.0), (1, 1.0)]:
        k = GaussianBlur(size, sigma).kernel(torch.float64)
        assert k.shape == (size,)
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(k, k.flip(0))
    weights = GaussianBlur(3, 2.0).kernel(torch.float64)
    assert float(weights[0] / weights[1]) == pytest.approx(np.exp(-1 / 8))


def test_blur_preserves_mean_constants_and_works_in_3d():
    x = torch.rand(1, 40, 37, dtype=torch.float64)
    reflect = GaussianBlur(3, 2.0, clip=None, dtype=None)
    # reflect: |mean change| <= (1 - w0) * range * sum(1 / n_axis), the border term stated in the docstring
    w0 = float(reflect.kernel(torch.float64)[1])
    bound = (1 - w0) * float(x.max() - x.min()) * (1 / 40 + 1 / 37)
    assert abs(float(reflect(x).mean() - x.mean())) <= bound
    smooth = _smooth().double()
    assert abs(float(reflect(smooth).mean() - smooth.mean())) < 1e-4
    circular = GaussianBlur(3, 2.0, clip=None, padding_mode="circular", dtype=None)
    assert abs(float(circular(x).mean() - x.mean())) < 1e-12  # exact up to float rounding
    constant = torch.full((2, 20, 20), 0.3)
    torch.testing.assert_close(reflect(constant), constant)
    assert float(reflect(x).std()) < 0.7 * float(x.std())
    volume = torch.rand(1, 12, 10, 8, dtype=torch.float64)
    blurred = GaussianBlur(3, 2.0, clip=None, padding_mode="circular", dtype=None)(volume)
    assert blurred.shape == volume.shape and float(blurred.std()) < 0.7 * float(volume.std())
    assert abs(float(blurred.mean() - volume.mean())) < 1e-12
    torch.testing.assert_close(reflect(torch.full((1, 6, 6, 6), 0.4)), torch.full((1, 6, 6, 6), 0.4))


# -------------------------------------------------------------------------------------------------- downsample
def test_downsample_gives_floor_shape_in_2d_and_3d():
    assert Downsample(2)(torch.rand(1, 65, 64)).shape == (1, 32, 32)
    assert Downsample(4)(torch.rand(3, 64, 63)).shape == (3, 16, 15)
    assert Downsample(3)(np.random.rand(1, 10, 9).astype(np.float32)).shape == (1, 3, 3)
    assert Downsample(2)(torch.rand(1, 16, 17, 9)).shape == (1, 8, 8, 4)
    assert Downsample(2, mode="area")(torch.rand(1, 8, 8, 8)).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="too small"):
        Downsample(4)(torch.rand(1, 3, 8))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsample_samples_block_centres(factor):
    ramp = (torch.arange(64.0) / 64).expand(1, 64, 64).contiguous()  # intensity = column / 64
    out = Downsample(factor, clip=None)(ramp)
    centres = (torch.arange(out.shape[-1]) * factor + (factor - 1) / 2) / 64
    torch.testing.assert_close(out[0, 3, 2:-2], centres[2:-2], atol=1e-5, rtol=0)  # interior: linear is exact


def test_downsample_updates_metatensor_spacing_and_origin():
    image = MetaTensor(torch.rand(1, 65, 64, 10), meta={"patient": "p1"})
    image.affine = torch.tensor(
        [[0.5, 0, 0, 10.0], [0, 0.7, 0, -4.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]], dtype=torch.float64
    )
    out = Downsample(2)(image)
    assert out.shape == (1, 32, 32, 5) and out.meta["patient"] == "p1"
    spacing = torch.linalg.norm(out.affine[:3, :3], dim=0)
    torch.testing.assert_close(spacing, torch.tensor([1.0, 1.4, 4.0], dtype=torch.float64))
    # output voxel 0 sits at the centre of the first 2x2x2 block of input voxels
    torch.testing.assert_close(out.affine[:, 3], image.affine @ torch.tensor([0.5, 0.5, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(image.affine[0, 0], torch.tensor(0.5, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------------- jpeg
def test_jpeg_lower_quality_larger_error_and_output_kept_in_range():
    image = _smooth().double()
    low, high = JPEGCompression(10)(image), JPEGCompression(90)(image)
    error_10, error_90 = float((low - image).abs().mean()), float((high - image).abs().mean())
    assert error_10 > 2 * error_90 > 0
    assert low.dtype == torch.float32 and float(low.min()) >= 0 and float(low.max()) <= 1
    rgb = JPEGCompression(30)(_smooth(channels=3))
    assert rgb.shape == (3, 64, 64) and rgb.dtype == torch.float32
    torch.testing.assert_close(JPEGCompression(10)(image), low)  # deterministic
    assert JPEGCompression(10, dtype=None)(image).dtype == torch.float64


def test_jpeg_refuses_3d_and_other_channel_counts():
    with pytest.raises(ValueError, match="3D"):
        JPEGCompression(10)(torch.rand(1, 8, 8, 8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        JPEGCompression(10)(torch.rand(2, 8, 8))


# ------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: RandGaussianNoise(-0.1), "sigma"),
        (lambda: RandGaussianNoise(float("nan")), "sigma"),
        (lambda: RandPoissonNoise(-1), "level"),
        (lambda: RandSpeckleNoise("0.1"), "sigma"),
        (lambda: GaussianBlur(4, 2.0), "kernel_size"),
        (lambda: GaussianBlur(0, 2.0), "kernel_size"),
        (lambda: GaussianBlur(3, 0.0), "sigma"),
        (lambda: GaussianBlur(3, 1.0, padding_mode="zeros"), "padding_mode"),
        (lambda: Downsample(0), "factor"),
        (lambda: Downsample(1.5), "factor"),
        (lambda: Downsample(2, mode="lanczos"), "mode"),
        (lambda: JPEGCompression(0), "quality"),
        (lambda: JPEGCompression(96), "quality"),
        (lambda: RandGaussianNoise(0.1, clip=(1.0, 0.0)), "clip"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_non_image_shapes_are_refused():
    with pytest.raises(ValueError, match="channel-first"):
        GaussianBlur()(torch.rand(8, 8))
    with pytest.raises(ValueError, match="channel-first"):
        Downsample(2)(torch.rand(1, 1, 8, 8, 8))


# ------------------------------------------------------------------------------------------------- composites
def test_challenging_follows_the_gradprom_paper_order_gaussian_then_poisson_then_blur():
    """GradProm (TPAMI 2025) appendix A-5: Poisson noise and blur "on top of" white Gaussian noise (sigma 0.3)."""
    x = torch.rand(1, 48, 48)
    composite = RandChallengingDegradation().set_random_state(5)
    gauss, poisson, blur = composite.transforms
    assert isinstance(gauss, RandGaussianNoise) and gauss.sigma == 0.3
    assert isinstance(poisson, RandPoissonNoise) and poisson.level == 0.1
    assert isinstance(blur, GaussianBlur) and (blur.kernel_size, blur.sigma) == (3, 2.0)
    # documented: random members get, in order, seeds R.randint(MAX_SEED) from the sequence's own seed
    seeds = np.random.RandomState(5)
    seed_g, seed_p = (int(seeds.randint(MAX_SEED, dtype="uint32")) for _ in range(2))
    manual = GaussianBlur(3, 2.0)(
        RandPoissonNoise(0.1).set_random_state(seed_p)(RandGaussianNoise(0.3).set_random_state(seed_g)(x))
    )
    torch.testing.assert_close(composite(x), manual, atol=0, rtol=0)


def test_challenging_blur_comes_last_so_the_noise_is_smoothed():
    # flat 0.5, Gaussian 0.1 (far from the 0 clamp), no clipping: white noise of variance 0.1^2 + 0.1^2 * 0.5,
    # then the 3-tap blur scales a white noise's variance by (sum w^2)^2 in 2D. Blur first would leave 0.015.
    out = RandChallengingDegradation(gaussian=0.1, clip=None).set_random_state(0)(_flat(0.5, 256))
    w = GaussianBlur(3, 2.0).kernel(torch.float64)
    expected = (0.1**2 + 0.1**2 * 0.5) * float((w**2).sum()) ** 2  # 0.015 * 0.112 = 0.00168
    assert float(out.var()) == pytest.approx(expected, rel=0.05)
    assert float(out.mean()) == pytest.approx(0.5, abs=0.005)


def test_sequence_seeding_reproduces_and_differs():
    x = torch.rand(1, 32, 32)

    def run(seed):
        sequence = DegradationSequence([GaussianBlur(), RandPoissonNoise(0.1), RandSpeckleNoise(0.1)])
        return sequence.set_random_state(seed)(x)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
