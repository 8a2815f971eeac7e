"""Degradation transforms measure what they claim: noise levels, seeds, shapes, mean, metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from monai_gradprom.transforms import (
    ChallengingDegradation,
    Degraded,
    Downsample,
    GaussianBlur,
    GaussianBlurd,
    GaussianNoise,
    GaussianNoiseD,
    GaussianNoised,
    GaussianNoiseDict,
    JPEGCompression,
    PoissonNoise,
    SpeckleNoise,
    build_degradation,
)


def _flat(value=0.5, size=512):
    return torch.full((1, size, size), value)


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.3])
def test_gaussian_noise_std_within_5_percent_of_sigma(sigma):
    t = GaussianNoise(sigma, clip=None)
    t.set_random_state(0)
    noise = t(_flat()) - 0.5
    assert abs(float(noise.std()) - sigma) < 0.05 * sigma
    assert abs(float(noise.mean())) < 0.05 * sigma


def test_poisson_variance_is_level_squared_times_intensity():
    for value in (0.2, 0.8):
        t = PoissonNoise(0.1, clip=None)
        t.set_random_state(1)
        out = t(_flat(value))
        assert float(out.var()) == pytest.approx(0.01 * value, rel=0.05)
        assert float(out.mean()) == pytest.approx(value, rel=0.01)


def test_speckle_std_scales_with_intensity():
    t = SpeckleNoise(0.2, clip=None)
    t.set_random_state(2)
    assert float((t(_flat(0.25)) - 0.25).std()) == pytest.approx(0.2 * 0.25, rel=0.05)


def test_same_seed_same_output_other_seed_other_output():
    x = torch.rand(1, 32, 32)
    a = GaussianNoise(0.1).set_random_state(7)(x)
    b = GaussianNoise(0.1).set_random_state(7)(x)
    c = GaussianNoise(0.1).set_random_state(8)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seeding_through_monai_compose_of_dict_transforms():
    data = {"image": torch.rand(1, 32, 32)}

    def run(seed):
        pipeline = Compose([Degraded("image", "blur:3:2+poisson:0.1"), GaussianNoised("image", 0.2)])
        pipeline.set_random_state(seed)
        return pipeline(dict(data))["image"]

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_clipping_to_valid_range_and_disabled_clip():
    x = torch.rand(1, 64, 64)
    clipped = GaussianNoise(0.5).set_random_state(0)(x)
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0
    raw = GaussianNoise(0.5, clip=None).set_random_state(0)(x)
    assert float(raw.min()) < 0.0 and float(raw.max()) > 1.0


def test_dtype_type_and_metadata_are_kept():
    array = np.random.rand(1, 16, 16).astype(np.float64)
    out = GaussianNoise(0.1).set_random_state(0)(array)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    meta = MetaTensor(torch.rand(1, 16, 16), meta={"patient": "p1"})
    meta.affine = torch.diag(torch.tensor([0.5, 0.7, 1.0, 1.0], dtype=torch.float64))
    out = GaussianNoise(0.1).set_random_state(0)(meta)
    assert isinstance(out, MetaTensor) and out.meta["patient"] == "p1" and out.dtype == torch.float32
    torch.testing.assert_close(out.affine, meta.affine)


def test_downsample_gives_exact_shape_and_scales_spacing():
    x = MetaTensor(torch.rand(1, 65, 64))
    out = Downsample(2)(x)
    assert out.shape == (1, 32, 32)
    assert out.affine[0, 0] == 2 and out.affine[1, 1] == 2
    assert Downsample(4)(torch.rand(2, 64, 63)).shape == (2, 16, 15)
    assert Downsample(2)(torch.rand(1, 16, 17, 9)).shape == (1, 8, 8, 4)


def test_blur_preserves_mean_and_constants_and_kernel_sums_to_one():
    x = torch.rand(1, 40, 37)
    blur = GaussianBlur(3, 2.0, clip=None)
    assert abs(float(blur(x).mean() - x.mean())) < 1e-6  # circular padding: exact up to float rounding
    torch.testing.assert_close(blur(torch.full((1, 20, 20), 0.3)), torch.full((1, 20, 20), 0.3))
    assert float(blur.kernel().sum()) == pytest.approx(1.0)
    assert blur.kernel().shape == (3,)
    volume = torch.rand(1, 12, 12, 12)
    assert abs(float(blur(volume).mean() - volume.mean())) < 1e-6
    assert float(blur(x).std()) < float(x.std())


def test_jpeg_lower_quality_means_larger_error_and_3d_is_refused():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    image = torch.tensor((0.5 + 0.4 * np.sin(8 * x) * np.cos(5 * y))[None], dtype=torch.float32)
    error_10 = float((JPEGCompression(10)(image) - image).abs().mean())
    error_90 = float((JPEGCompression(90)(image) - image).abs().mean())
    assert error_10 > 2 * error_90
    with pytest.raises(ValueError, match="3D"):
        JPEGCompression(10)(torch.rand(1, 8, 8, 8))
    with pytest.raises(ValueError, match="quality"):
        JPEGCompression(0)


def test_dict_form_copies_clean_target_once_and_can_skip_copy():
    clean = torch.rand(1, 32, 32)
    out = Compose([GaussianBlurd("image", 3, 2.0), GaussianNoised("image", 0.2)])({"image": clean.clone()})
    assert torch.equal(out["target"], clean)
    assert not torch.equal(out["image"], clean)
    no_copy = GaussianNoised("image", 0.2, target_key=None)({"image": clean.clone()})
    assert "target" not in no_copy
    assert GaussianNoiseD is GaussianNoised and GaussianNoiseDict is GaussianNoised


def test_factory_parses_specs_and_names_bad_tokens():
    assert isinstance(build_degradation("gaussian:0.1"), GaussianNoise)
    assert build_degradation("sr:x4").factor == 4
    assert build_degradation("downsample:2").factor == 2
    assert build_degradation("jpeg:10").quality == 10
    assert isinstance(build_degradation("challenging"), ChallengingDegradation)
    assert len(build_degradation("blur:3:2+gaussian:0.1").transforms) == 2
    with pytest.raises(ValueError, match="'wobble:3'"):
        build_degradation("gaussian:0.1+wobble:3")
    with pytest.raises(ValueError, match="sigma"):
        build_degradation("gaussian:-1")


def test_challenging_is_blur_then_poisson_then_gaussian():
    x = torch.rand(1, 48, 48)
    composite = ChallengingDegradation()
    composite.set_random_state(5)
    blur, poisson, gauss = composite.transforms
    assert isinstance(blur, GaussianBlur) and (blur.kernel_size, blur.sigma) == (3, 2.0)
    assert poisson.level == 0.1 and gauss.sigma == 0.3
    # set_random_state gives each copy its own RandomState (MONAI's default R is shared by the class)
    manual_p, manual_g = PoissonNoise(0.1).set_random_state(0), GaussianNoise(0.3).set_random_state(0)
    manual_p.R.set_state(poisson.R.get_state())
    manual_g.R.set_state(gauss.R.get_state())
    expected = manual_g(manual_p(GaussianBlur(3, 2.0)(x)))
    torch.testing.assert_close(composite(x), expected)
