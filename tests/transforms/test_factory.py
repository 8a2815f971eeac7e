"""build_degradation parses every config spelling and names the bad token when it cannot."""

from __future__ import annotations

import pytest
import torch

from monai_gradprom.transforms import (
    DEGRADATION_NAMES,
    DegradationSequence,
    Downsample,
    GaussianBlur,
    JPEGCompression,
    NoDegradation,
    RandChallengingDegradation,
    RandGaussianNoise,
    RandPoissonNoise,
    RandSpeckleNoise,
    build_degradation,
)


@pytest.mark.parametrize(
    "spec, cls, attributes",
    [
        ("gaussian:0.1", RandGaussianNoise, {"sigma": 0.1}),
        (" Gaussian : 0.05 ", RandGaussianNoise, {"sigma": 0.05}),
        ("poisson:0.1", RandPoissonNoise, {"level": 0.1}),
        ("speckle:0.2", RandSpeckleNoise, {"sigma": 0.2}),
        ("blur:3:2.0", GaussianBlur, {"kernel_size": 3, "sigma": 2.0}),
        ("blur:5", GaussianBlur, {"kernel_size": 5, "sigma": 2.0}),
        ("downsample:4", Downsample, {"factor": 4, "mode": "bicubic"}),
        ("sr:x4", Downsample, {"factor": 4}),
        ("sr:2", Downsample, {"factor": 2}),
        ("jpeg:10", JPEGCompression, {"quality": 10}),
        ("challenging", RandChallengingDegradation, {}),
        ("none", NoDegradation, {}),
    ],
)
def test_each_spec_builds_the_right_transform(spec, cls, attributes):
    t = build_degradation(spec)
    assert type(t) is cls
    for name, value in attributes.items():
        assert getattr(t, name) == value


def test_plus_joins_a_sequence_in_order_and_clip_is_passed_on():
    t = build_degradation("blur:3:2+poisson:0.1+gaussian:0.1", clip=None)
    assert isinstance(t, DegradationSequence)
    assert [type(m) for m in t.transforms] == [GaussianBlur, RandPoissonNoise, RandGaussianNoise]
    assert all(m.clip is None for m in t.transforms)
    assert build_degradation("gaussian:0.1").clip == (0.0, 1.0)


def test_dicts_lists_and_transforms():
    assert build_degradation({"name": "jpeg", "quality": 20}).quality == 20
    assert build_degradation({"name": "sr", "factor": 2, "mode": "bilinear"}).mode == "bilinear"
    seq = build_degradation(["blur:3", {"name": "gaussian", "sigma": 0.1}])
    assert [type(m) for m in seq.transforms] == [GaussianBlur, RandGaussianNoise]
    given = RandGaussianNoise(0.3)
    assert build_degradation(given) is given
    x = torch.rand(1, 8, 8)
    assert build_degradation("none")(x) is x
    assert set(DEGRADATION_NAMES) >= {"gaussian", "poisson", "speckle", "blur", "downsample", "sr", "jpeg"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gaussian:0.1+wobble:3", r"'wobble:3'.*valid: gaussian:SIGMA"),
        ("gausian:0.1", r"'gausian:0.1'"),
        ("gaussian", r"'gaussian'.*gaussian:SIGMA"),
        ("blur:3:2:1", r"'blur:3:2:1'"),
        ("gaussian:-1", r"'gaussian:-1'.*sigma"),
        ("gaussian:abc", r"'gaussian:abc'"),
        ("blur:4", r"'blur:4'.*kernel_size"),
        ("sr:x1.5", r"'sr:x1.5'"),
        ("jpeg:100", r"'jpeg:100'.*quality"),
        ("challenging:2", r"'challenging:2'"),
        ("blur:3++gaussian:0.1", r"empty"),
        ("", r"empty"),
    ],
)
def test_bad_specs_raise_value_error_naming_the_token(spec, message):
    with pytest.raises(ValueError, match=message):
        build_degradation(spec)


def test_bad_dict_and_types():
    with pytest.raises(ValueError, match="'wobble'"):
        build_degradation({"name": "wobble"})
    with pytest.raises(ValueError, match="spec must be"):
        build_degradation(3)
