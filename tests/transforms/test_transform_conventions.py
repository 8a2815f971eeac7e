"""MONAI users' habits (issue 13, points 12-15): Rand names with deprecated aliases, float32 out, a clear error on
unscaled intensities, one prob coin per sample, an invertible Downsample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, MetaTensor
from monai.transforms import Compose, Randomizable

import monai_gradprom.transforms as T
from monai_gradprom.transforms import (
    Downsample,
    Downsampled,
    GaussianBlur,
    GaussianBlurd,
    JPEGCompression,
    NoDegradation,
    RandChallengingDegradation,
    RandChallengingDegradationd,
    RandDegraded,
    RandGaussianNoise,
    RandGaussianNoised,
    RandPoissonNoise,
    RandPoissonNoised,
    RandSpeckleNoise,
    RandSpeckleNoised,
)


# ---------------------------------------------------------------------------------------------- 12: names
@pytest.mark.parametrize(
    "old, new, args",
    [
        ("GaussianNoise", RandGaussianNoise, (0.1,)),
        ("PoissonNoise", RandPoissonNoise, (0.1,)),
        ("SpeckleNoise", RandSpeckleNoise, (0.1,)),
        ("ChallengingDegradation", RandChallengingDegradation, ()),
        ("Identity", NoDegradation, ()),
    ],
)
def test_old_array_names_warn_and_behave_like_the_new_ones(old, new, args):
    x = torch.rand(1, 16, 16)
    with pytest.warns(FutureWarning, match=f"{old}.*deprecated.*{new.__name__}"):
        legacy = getattr(T, old)(*args)
    assert isinstance(legacy, new)
    if isinstance(legacy, Randomizable):
        legacy.set_random_state(3)
        torch.testing.assert_close(legacy(x), new(*args).set_random_state(3)(x), atol=0, rtol=0)
    else:
        assert legacy(x) is x


@pytest.mark.parametrize(
    "old, new, args",
    [
        ("GaussianNoised", RandGaussianNoised, (0.1,)),
        ("GaussianNoiseD", RandGaussianNoised, (0.1,)),
        ("PoissonNoiseDict", RandPoissonNoised, (0.1,)),
        ("SpeckleNoised", RandSpeckleNoised, (0.1,)),
        ("ChallengingDegradationd", RandChallengingDegradationd, ()),
    ],
)
def test_old_dictionary_names_warn_and_behave_like_the_new_ones(old, new, args):
    x = torch.rand(1, 16, 16)
    with pytest.warns(FutureWarning, match=f"deprecated.*{new.__name__}"):
        legacy = getattr(T, old)("image", *args)
    assert isinstance(legacy, new)
    out = legacy.set_random_state(4)({"image": x})["image"]
    torch.testing.assert_close(out, new("image", *args).set_random_state(4)({"image": x})["image"], atol=0, rtol=0)


def test_new_names_follow_monai_and_degraded_stays_a_silent_alias_for_the_bundles(recwarn):
    assert T.RandGaussianNoiseD is T.RandGaussianNoiseDict is RandGaussianNoised
    assert T.RandDegradeD is T.RandDegradeDict is RandDegraded
    assert T.Degraded is T.DegradeD is T.DegradeDict is RandDegraded  # bundles/<x>/train.json name Degraded
    T.Degraded("image", "gaussian:0.1")
    RandGaussianNoise(0.1)
    assert not [w for w in recwarn if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert isinstance(RandGaussianNoised("image", 0.1), Randomizable)
    assert isinstance(RandChallengingDegradation(), Randomizable)


def test_star_import_does_not_shadow_monai_identity():
    namespace: dict = {}
    exec("from monai.transforms import *\nfrom monai_gradprom.transforms import *", namespace)
    import monai.transforms

    assert namespace["Identity"] is monai.transforms.Identity
    assert "Identity" not in T.__all__ and "NoDegradation" in T.__all__


def test_deterministic_dictionary_forms_are_cacheable_random_ones_are_not():
    assert not isinstance(GaussianBlurd("image"), Randomizable)
    assert not isinstance(Downsampled("image", 2), Randomizable)
    items = [{"image": torch.rand(1, 8, 8)} for _ in range(2)]
    dataset = CacheDataset(items, Compose([GaussianBlurd("image"), RandGaussianNoised("image", 0.1)]), progress=False)
    cached = dataset._cache[0]  # CacheDataset caches up to the first random transform
    assert "target" in cached and not torch.equal(cached["image"], items[0]["image"])  # blurred, then cached


# ------------------------------------------------------------------------------------------ 13: dtype, range
def test_gaussian_noise_on_a_uint8_image_is_float32_noise_not_all_ones():
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[:, :, 32:] = 1  # a 0/1 uint8 image is in [0, 1]
    out = RandGaussianNoise(0.1).set_random_state(0)(mask)
    assert out.dtype == torch.float32
    ones = out[:, :, 32:]
    assert float(ones.mean()) == pytest.approx(1 - 0.1 / np.sqrt(2 * np.pi), abs=0.01)  # E[min(1, 1 + N)]
    assert 0 < float((ones < 1).float().mean()) < 1 and float(out.max()) <= 1.0
    meta = RandGaussianNoise(0.1)(MetaTensor(mask, meta={"patient": "p"}))
    assert isinstance(meta, MetaTensor) and meta.dtype == torch.float32 and meta.meta["patient"] == "p"


UNSCALED = [
    lambda **kw: RandGaussianNoise(0.1, **kw),
    lambda **kw: RandPoissonNoise(0.1, **kw),
    lambda **kw: RandSpeckleNoise(0.1, **kw),
    lambda **kw: GaussianBlur(3, 2.0, **kw),
    lambda **kw: Downsample(2, **kw),
    lambda **kw: RandChallengingDegradation(**kw),
]


@pytest.mark.parametrize("make", UNSCALED)
def test_0_255_images_get_an_error_that_says_to_scale_and_clip_none_is_the_opt_out(make):
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 16, 16)).astype(np.uint8))
    with pytest.raises(ValueError, match=r"expects intensities in \[0, 1\].*\[0, 255\].*ScaleIntensityd.*clip=None"):
        make()(image)
    out = make(clip=None)(image)  # explicit opt-out: no check, no clipping, float32
    assert out.dtype == torch.float32 and float(out.max()) > 1.0


def test_clip_states_the_data_range_and_jpeg_always_needs_unit_range():
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 32, 32)).astype(np.float32))
    out = RandGaussianNoise(25.5, clip=(0, 255)).set_random_state(0)(image)
    assert 0 <= float(out.min()) and float(out.max()) <= 255 and float(out.max()) > 200
    with pytest.raises(ValueError, match=r"JPEGCompression expects intensities in \[0, 1\]"):
        JPEGCompression(50, clip=None)(image)
    with pytest.raises(ValueError, match="ScaleIntensityd"):
        RandDegraded("image", "gaussian:0.1")({"image": image})
    with pytest.raises(ValueError, match=r"\[-1000, 2000\]"):
        GaussianBlur()(torch.linspace(-1000, 2000, 64).reshape(1, 8, 8))  # CT in HU


def test_float_rounding_above_one_is_tolerated_and_real_overshoot_is_not():
    x = torch.full((1, 8, 8), 0.5)
    x[0, 0, 0] = 1 + 0.5 * T.RANGE_TOLERANCE
    assert float(GaussianBlur(1, 1.0)(x).max()) == 1.0  # within tolerance: clipped
    x[0, 0, 0] = 1.01
    with pytest.raises(ValueError, match="1.01"):
        GaussianBlur(1, 1.0)(x)
    with pytest.raises(ValueError, match="expects intensities"):  # checked even when the coin skips the noise
        RandGaussianNoise(0.1, prob=0.0)(x)


# --------------------------------------------------------------------------------------- 14: one coin per sample
@pytest.mark.parametrize(
    "make",
    [
        lambda: RandGaussianNoised(["a", "b"], 0.2, prob=0.5, target_key=["ta", "tb"]),
        lambda: RandSpeckleNoised(["a", "b"], 0.2, prob=0.5, target_key=["ta", "tb"]),
        lambda: RandChallengingDegradationd(["a", "b"], prob=0.5, target_key=["ta", "tb"]),
        lambda: RandDegraded(["a", "b"], "poisson:0.1+blur:3", prob=0.5, target_key=["ta", "tb"]),
    ],
)
def test_multi_key_prob_is_drawn_once_per_sample(make):
    t = make().set_random_state(0)
    data = {"a": torch.rand(1, 16, 16) * 0.8 + 0.1, "b": torch.rand(1, 16, 16) * 0.8 + 0.1}
    outcomes = []
    for _ in range(20):
        out = t(data)
        changed = [not torch.equal(out[k], data[k]) for k in ("a", "b")]
        assert changed[0] == changed[1]  # both keys degraded or neither, every time
        assert torch.equal(out["ta"], data["a"]) and torch.equal(out["tb"], data["b"])  # target copied either way
        if changed[0]:
            assert not torch.equal(out["a"] - data["a"], out["b"] - data["b"])  # own noise per key
        outcomes.append(changed[0])
    assert 0 < sum(outcomes) < 20


def test_skipped_samples_share_the_dtype_and_the_range_check_of_degraded_ones():
    t = RandDegraded("image", "blur:3+gaussian:0.1", prob=0.5).set_random_state(1)
    mask = {"image": (torch.rand(1, 8, 8) > 0.5).to(torch.uint8)}
    outs = [t(mask) for _ in range(12)]
    assert {o["image"].dtype for o in outs} == {torch.float32}  # a batch mixing both collates
    assert {torch.equal(o["image"], mask["image"].float()) for o in outs} == {True, False}  # both coin outcomes
    with pytest.raises(ValueError, match="ScaleIntensityd"):
        RandGaussianNoised("image", 0.1, prob=0.0)({"image": torch.full((1, 4, 4), 200.0)})


# ---------------------------------------------------------------------------------------- 15: invertible Downsample
def _smooth(shape: tuple[int, ...]) -> torch.Tensor:
    grids = torch.meshgrid(*(torch.linspace(0, 1, n) for n in shape), indexing="ij")
    return (0.5 + 0.3 * torch.sin(3 * sum(grids)))[None]


def test_downsample_inverse_restores_shape_affine_and_smooth_content():
    image = MetaTensor(_smooth((65, 64, 10)), meta={"patient": "p1"})
    image.affine = torch.tensor(
        [[0.5, 0, 0, 10.0], [0, 0.7, 0, -4.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]], dtype=torch.float64
    )
    down = Downsample(2)
    small = down(image)
    assert small.shape == (1, 32, 32, 5) and len(small.applied_operations) == 1 and not image.applied_operations
    back = down.inverse(small)
    assert back.shape == image.shape and back.meta["patient"] == "p1" and not back.applied_operations
    torch.testing.assert_close(back.affine, image.affine)
    assert torch.all(back[:, 64:] == 0)  # the mod-cropped row comes back as zeros
    interior = (slice(None), slice(4, 60), slice(4, 60), slice(2, 8))
    assert float((back[interior] - image[interior]).abs().max()) < 0.02  # trilinear resampling of a smooth image


def test_downsample_inverse_refuses_plain_tensors_with_a_reason():
    with pytest.raises(ValueError, match="MetaTensor"):
        Downsample(2).inverse(Downsample(2)(torch.rand(1, 8, 8)))


def test_downsampled_inverts_through_monai_compose():
    image = MetaTensor(_smooth((32, 32)))
    pipeline = Compose([Downsampled("image", 4, mode="bilinear")])
    out = pipeline({"image": image})
    assert out["image"].shape == (1, 8, 8) and out["target"].shape == (1, 32, 32)
    restored = pipeline.inverse(out)
    assert restored["image"].shape == (1, 32, 32)
    torch.testing.assert_close(restored["image"].affine, image.affine)
    assert float((restored["image"] - image)[:, 4:-4, 4:-4].abs().max()) < 0.05
