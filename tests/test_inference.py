"""enhance_directory: whole folders, sliding windows, volumes slice by slice, upscaling, checkpoints."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SimpleInferer, SlidingWindowInferer
from PIL import Image

from monai_gradprom.inference import EnhanceDirectory, enhance_array, enhance_directory
from monai_gradprom.networks import SRResNet


class Up2(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def test_sliding_window_equals_whole_image_for_a_pointwise_network():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Sigmoid())
    image = np.random.default_rng(0).random((1, 70, 45)).astype(np.float32)
    windowed = enhance_array(net, image, SlidingWindowInferer((16, 16), overlap=0.25, mode="gaussian"))
    whole = enhance_array(net, image, SimpleInferer())
    np.testing.assert_allclose(windowed, whole, atol=1e-5)


def test_volume_is_enhanced_slice_by_slice_in_order_and_upscaled_in_plane():
    volume = np.random.default_rng(1).random((1, 6, 8, 4)).astype(np.float32)
    out = enhance_array(Up2(), volume, SlidingWindowInferer((8, 8)))
    assert out.shape == (1, 12, 16, 4)
    np.testing.assert_allclose(out[:, ::2, ::2, :], volume, atol=1e-6)


def test_rgb_image_with_one_channel_network_is_enhanced_per_channel():
    image = np.random.default_rng(2).random((3, 10, 12)).astype(np.float32)
    out = enhance_array(Up2(), image, SimpleInferer())
    np.testing.assert_allclose(out[:, ::2, ::2], image, atol=1e-6)


def test_directory_mirrors_subfolders_and_skips_other_files(tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(np.full((20, 24), 100, np.uint8)).save(inputs / "a.png")
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 2).astype(np.float32), np.eye(4)), inputs / "sub" / "v.nii.gz")
    (inputs / "README.txt").write_text("not an image")
    records = enhance_directory(Up2(), inputs, tmp_path / "out", roi_size=(16, 16), progress=False)
    assert len(records) == 2
    assert Image.open(tmp_path / "out" / "a.png").size == (48, 40)
    assert nib.load(tmp_path / "out" / "sub" / "v.nii.gz").shape == (16, 16, 2)


def test_missing_or_empty_input_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        enhance_directory(Up2(), tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no supported image"):
        enhance_directory(Up2(), tmp_path / "empty", tmp_path / "out")


def test_checkpoint_of_another_architecture_names_the_file(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    torch.save({"ip_network": SRResNet(channels=8, num_blocks=1).state_dict()}, tmp_path / "model.pt")
    enhancer = EnhanceDirectory(SRResNet(channels=16, num_blocks=2), str(tmp_path), str(tmp_path / "out"),
                                checkpoint=str(tmp_path / "model.pt"), roi_size=(8, 8), progress=False)
    with pytest.raises(ValueError, match="model.pt"):
        enhancer()
    good = EnhanceDirectory(SRResNet(channels=8, num_blocks=1), str(tmp_path), str(tmp_path / "out"),
                            checkpoint=str(tmp_path / "model.pt"), roi_size=(8, 8), progress=False)
    assert len(good()) == 1
