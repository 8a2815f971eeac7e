"""Dictionary degradations: clean clone to the target key once, degrade the input, seed through MONAI Compose."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandFlipd

from monai_gradprom.transforms import (
    Downsampled,
    GaussianBlurd,
    JPEGCompressiond,
    RandChallengingDegradationd,
    RandDegradeD,
    RandDegraded,
    RandGaussianNoise,
    RandGaussianNoiseD,
    RandGaussianNoised,
    RandGaussianNoiseDict,
    RandPoissonNoised,
    RandSpeckleNoised,
)


def test_target_is_an_independent_clone_of_the_clean_image_and_input_is_degraded():
    clean = torch.rand(1, 32, 32)
    data = {"image": clean.clone(), "label": 1}
    out = RandGaussianNoised("image", 0.2).set_random_state(0)(data)
    assert torch.equal(out["target"], clean) and out["label"] == 1
    assert not torch.equal(out["image"], clean)
    assert out["target"].data_ptr() != data["image"].data_ptr()
    data["image"].add_(1.0)  # an in-place op on the original must not reach the target
    assert torch.equal(out["target"], clean)
    assert "target" not in data  # the input dictionary is not modified


def test_stacked_degradations_copy_the_clean_image_only_once():
    clean = torch.rand(1, 32, 32)
    out = Compose([GaussianBlurd("image"), RandPoissonNoised("image", 0.1), RandGaussianNoised("image", 0.2)])(
        {"image": clean.clone()}
    )
    assert torch.equal(out["target"], clean)
    assert not torch.equal(out["image"], clean)


def test_target_key_none_makes_no_copy_and_custom_keys_work():
    clean = torch.rand(1, 16, 16)
    assert "target" not in RandGaussianNoised("image", 0.2, target_key=None)({"image": clean})
    out = RandSpeckleNoised(["a", "b"], 0.2, target_key=["clean_a", None])({"a": clean, "b": clean})
    assert torch.equal(out["clean_a"], clean) and set(out) == {"a", "b", "clean_a"}
    assert not torch.equal(out["a"], out["b"])  # each key gets its own noise draw
    with pytest.raises(ValueError, match="one target key per input key"):
        RandGaussianNoised(["a", "b"], 0.1, target_key="target")
    with pytest.raises(ValueError, match="one entry per key"):
        RandGaussianNoised(["a", "b"], 0.1, target_key=["x"])
    with pytest.raises(ValueError, match="differ"):
        RandGaussianNoised("image", 0.1, target_key="image")


def test_missing_keys():
    with pytest.raises(KeyError):
        RandGaussianNoised("image", 0.1)({"other": torch.rand(1, 4, 4)})
    assert RandGaussianNoised("image", 0.1, allow_missing_keys=True)({"other": 1}) == {"other": 1}


def test_dict_form_equals_array_form_for_the_same_seed():
    x = torch.rand(1, 32, 32)
    out = RandGaussianNoised("image", 0.1).set_random_state(11)({"image": x})
    assert torch.equal(out["image"], RandGaussianNoise(0.1).set_random_state(11)(x))


def test_seeding_through_monai_compose():
    data = {"image": torch.rand(1, 32, 32)}

    def run(seed):
        pipeline = Compose(
            [
                RandFlipd("image", prob=0.5, spatial_axis=0),
                RandDegraded("image", "blur:3:2+poisson:0.1"),
                RandGaussianNoised("image", 0.2),
                RandChallengingDegradationd("image"),
            ]
        )
        assert pipeline.set_random_state(seed) is pipeline
        return pipeline(dict(data))["image"]

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_downsampled_keeps_full_size_target_and_its_affine():
    image = MetaTensor(torch.rand(1, 32, 32), meta={"patient": "p1"})
    out = Downsampled("image", 4)({"image": image})
    assert out["image"].shape == (1, 8, 8) and out["target"].shape == (1, 32, 32)
    assert out["image"].affine[0, 0] == 4 and out["target"].affine[0, 0] == 1
    assert out["target"].meta["patient"] == "p1" and out["image"].meta["patient"] == "p1"


def test_numpy_values_are_copied_and_kept_numpy():
    clean = np.random.default_rng(0).random((1, 16, 16)).astype(np.float32)
    out = JPEGCompressiond("image", 10)({"image": clean})
    assert isinstance(out["image"], np.ndarray) and out["image"].dtype == np.float32
    assert out["target"] is not clean and np.array_equal(out["target"], clean)


def test_generic_form_takes_specs_dicts_and_transforms_and_aliases_exist():
    x = torch.rand(1, 16, 16)
    for degradation in ("gaussian:0.1", {"name": "gaussian", "sigma": 0.1}, RandGaussianNoise(0.1)):
        out = RandDegraded("image", degradation).set_random_state(2)({"image": x})
        assert torch.equal(out["image"], RandGaussianNoise(0.1).set_random_state(2)(x))
    assert RandDegraded("image", "none")({"image": x})["image"] is x
    assert RandGaussianNoiseD is RandGaussianNoised and RandGaussianNoiseDict is RandGaussianNoised
    assert RandDegradeD is RandDegraded


def test_batches_from_a_monai_dataset_carry_degraded_image_and_clean_target():
    from monai.data import DataLoader, Dataset

    items = [{"image": np.random.default_rng(i).random((1, 16, 16)).astype(np.float32)} for i in range(4)]
    pipeline = Compose([Downsampled("image", 2), RandGaussianNoised("image", 0.1)]).set_random_state(0)
    batch = next(iter(DataLoader(Dataset(items, pipeline), batch_size=4)))
    assert batch["image"].shape == (4, 1, 8, 8) and batch["target"].shape == (4, 1, 16, 16)
    np.testing.assert_array_equal(batch["target"][2].numpy(), items[2]["image"])
