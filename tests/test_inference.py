"""enhance_directory and friends: sliding windows (also for x2 networks), channels, volumes slice by slice,
whole folders in every format, checkpoints, and the bundle entry point."""

from __future__ import annotations

import logging
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer, SlidingWindowInferer
from PIL import Image
from pydicom.data import get_testdata_file

from monai_gradprom import io
from monai_gradprom.inference import EnhanceDirectory, enhance_array, enhance_directory, load_enhancer_weights
from monai_gradprom.networks import SRResNet


class Up2(torch.nn.Module):
    """A toy x2 super-resolver: nearest up-sampling."""

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def pointwise(upscale: int = 1) -> torch.nn.Module:
    """A 1x1 convolution (optionally followed by nearest x``upscale``): its output at a pixel depends on that
    pixel only, so any tiling must give the whole-image result."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(1, 1, 1), torch.nn.Sigmoid()]
    return torch.nn.Sequential(*layers, *([torch.nn.Upsample(scale_factor=upscale)] if upscale > 1 else []))


@pytest.mark.parametrize("upscale", [1, 2])
def test_sliding_window_equals_whole_image_for_a_pointwise_network(upscale):
    net = pointwise(upscale)
    image = np.random.default_rng(0).random((1, 70, 45)).astype(np.float32)
    windowed = enhance_array(net, image, SlidingWindowInferer((16, 16), overlap=0.25, mode="gaussian"))
    whole = enhance_array(net, image, SimpleInferer())
    assert windowed.shape == (1, 70 * upscale, 45 * upscale)
    np.testing.assert_allclose(windowed, whole, atol=1e-5)


def test_image_of_exactly_one_window_skips_the_sliding_window_with_the_same_result(monkeypatch):
    torch.manual_seed(0)
    net = SRResNet(channels=4, num_blocks=1).eval()
    image = np.random.default_rng(2).random((1, 32, 32)).astype(np.float32)
    inferer = SlidingWindowInferer((32, 32), overlap=0.25, mode="gaussian")
    expected = torch.as_tensor(inferer(torch.as_tensor(image)[None], net)).detach().clamp(0, 1).numpy()[0]
    import monai.inferers.inferer as inferer_module

    def forbidden(*args, **kwargs):
        raise AssertionError("the sliding window ran for a one-window image")

    monkeypatch.setattr(inferer_module, "sliding_window_inference", forbidden)
    np.testing.assert_allclose(enhance_array(net, image, inferer), expected, atol=1e-6)
    with pytest.raises(AssertionError, match="one-window"):  # a larger image still goes through it
        enhance_array(net, np.zeros((1, 40, 32), np.float32), inferer)


def test_image_smaller_than_the_window_is_padded_and_cropped_back():
    net = pointwise(2)
    image = np.random.default_rng(1).random((1, 10, 7)).astype(np.float32)
    padded = enhance_array(net, image, SlidingWindowInferer((32, 32), mode="gaussian", padding_mode="replicate"))
    np.testing.assert_allclose(padded, enhance_array(net, image, SimpleInferer()), atol=1e-6)


def test_volume_is_enhanced_slice_by_slice_in_order_and_upscaled_in_plane():
    volume = np.random.default_rng(1).random((1, 6, 8, 4)).astype(np.float32)
    out = enhance_array(Up2(), volume, SlidingWindowInferer((8, 8)))
    assert out.shape == (1, 12, 16, 4)
    np.testing.assert_allclose(out[:, ::2, ::2, :], volume, atol=1e-6)


def test_channel_rules():
    image = np.random.default_rng(2).random((3, 10, 12)).astype(np.float32)
    out = enhance_array(Up2(), image, SimpleInferer())  # one-channel network: colour enhanced per channel
    np.testing.assert_allclose(out[:, ::2, ::2], image, atol=1e-6)

    colour_net = torch.nn.Conv2d(3, 3, 1, bias=False)
    torch.nn.init.eye_(colour_net.weight[:, :, 0, 0])
    grey = image[:1]
    np.testing.assert_allclose(enhance_array(colour_net, grey, SimpleInferer()), grey, atol=1e-6)  # repeated
    np.testing.assert_allclose(enhance_array(colour_net, image, SimpleInferer()), image, atol=1e-6)
    with pytest.raises(ValueError, match="takes 3 channels"):
        enhance_array(colour_net, np.zeros((2, 4, 4), np.float32), SimpleInferer())


def test_network_runs_in_eval_mode_and_its_mode_is_restored():
    net = torch.nn.Sequential(torch.nn.Dropout(p=1.0))  # zeros in training mode, identity in eval mode
    net.train()
    image = np.random.default_rng(3).random((1, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(enhance_array(net, image, SimpleInferer()), image)
    assert net.training


# -- whole folders ------------------------------------------------------------------------------------------------
def _folder(root):
    """One image per format, sub-folders, and files that are not images."""
    import itk

    (root / "sub" / "series").mkdir(parents=True)
    png = (np.random.default_rng(0).random((20, 24)) * 255).astype(np.uint8)
    Image.fromarray(png).save(root / "a.png")
    volume = np.random.default_rng(1).random((8, 8, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([0.5, 0.5, 2, 1])), root / "sub" / "v.nii.gz")
    shutil.copy(get_testdata_file("MR_small.dcm"), root / "sub" / "series" / "IM0001")  # no suffix
    shutil.copy(get_testdata_file("rtplan.dcm"), root / "sub" / "series" / "plan.dcm")  # DICOM, not an image
    mhd = (np.random.default_rng(2).random((1, 12, 10)) * 255).astype(np.uint8)  # CAMUS-like 2D frame
    itk.imwrite(itk.image_from_array(mhd), str(root / "sub" / "p_4CH_ED.mhd"))
    (root / "README.txt").write_text("not an image")
    return png, volume, mhd


def test_identity_over_a_folder_reproduces_every_format_and_mirrors_subfolders(tmp_path, caplog):
    import itk

    png, volume, mhd = _folder(tmp_path / "in")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="monai_gradprom.inference"):
        records = enhance_directory(torch.nn.Identity(), tmp_path / "in", out, roi_size=(16, 16), progress=False)
    assert sorted(r["format"] for r in records) == ["dicom", "itk", "nifti", "png"]
    assert "README.txt" in caplog.text and "plan.dcm" in caplog.text  # skipped, with a message
    assert {"input", "output", "input_shape", "output_shape", "seconds"} <= set(records[0])
    assert np.array_equal(np.asarray(Image.open(out / "a.png")), png)  # 20 x 24 < roi: padded and cropped
    np.testing.assert_allclose(nib.load(out / "sub" / "v.nii.gz").get_fdata(), volume, atol=1e-6)
    a, b = pydicom.dcmread(get_testdata_file("MR_small.dcm")), pydicom.dcmread(out / "sub" / "series" / "IM0001")
    assert np.array_equal(a.pixel_array, b.pixel_array) and a.PatientID == b.PatientID
    assert np.array_equal(itk.array_from_image(itk.imread(str(out / "sub" / "p_4CH_ED.mhd"))), mhd)
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["p_4CH_ED.mhd", "p_4CH_ED.raw", "series", "v.nii.gz"]
    assert not (out / "README.txt").exists() and not (out / "sub" / "series" / "plan.dcm").exists()


def test_x2_network_over_a_folder_doubles_sizes_and_halves_spacing(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.full((20, 24), 100, np.uint8)).save(inputs / "a.png")
    shutil.copy(get_testdata_file("CT_small.dcm"), inputs / "ct.dcm")
    records = enhance_directory(Up2(), inputs, tmp_path / "out", roi_size=(48, 48), upscale=2, progress=False)
    assert [r["output_shape"] for r in records] == [[1, 40, 48], [1, 256, 256]]
    assert Image.open(tmp_path / "out" / "a.png").size == (48, 40)
    a, b = pydicom.dcmread(inputs / "ct.dcm"), pydicom.dcmread(tmp_path / "out" / "ct.dcm")
    assert (b.Rows, b.Columns) == (256, 256) and a.SOPInstanceUID != b.SOPInstanceUID
    assert float(b.PixelSpacing[0]) == pytest.approx(float(a.PixelSpacing[0]) / 2)
    assert np.array_equal(b.pixel_array[1::2, ::2], a.pixel_array)

    with pytest.raises(ValueError, match="a.png.*not x1"):  # the declared factor is checked
        enhance_directory(Up2(), inputs, tmp_path / "other", roi_size=(48, 48), progress=False)


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        enhance_directory(Up2(), tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no supported image"):
        enhance_directory(Up2(), tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="input_dir and output_dir are the same folder"):
        enhance_directory(Up2(), tmp_path / "empty", tmp_path / "empty")
    shutil.copy(get_testdata_file("rtplan.dcm"), tmp_path / "empty" / "plan.dcm")
    with pytest.raises(ValueError, match="no pixel data"):
        enhance_directory(Up2(), tmp_path / "empty", tmp_path / "out", progress=False)
    (tmp_path / "empty" / "bad.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(ValueError, match="bad.png"):
        enhance_directory(Up2(), tmp_path / "empty", tmp_path / "out", progress=False)


def test_output_inside_input_is_not_enhanced_again(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    for _ in range(2):
        records = enhance_directory(torch.nn.Identity(), tmp_path, tmp_path / "enhanced", roi_size=(8, 8),
                                    progress=False)
        assert [r["input"] for r in records] == [str(tmp_path / "a.png")]


def test_failed_write_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / name)
    original = io._WRITERS["png"]

    def fail_on_b(array, source, path):
        original(array, source, path)
        if source.path.name == "b.png":
            raise OSError("disk full")

    monkeypatch.setitem(io._WRITERS, "png", fail_on_b)
    with pytest.raises(OSError, match="disk full"):
        enhance_directory(torch.nn.Identity(), inputs, tmp_path / "out", roi_size=(8, 8), progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]  # a is complete, b absent, no debris


# -- checkpoints and the bundle entry point -----------------------------------------------------------------------
def test_checkpoint_of_another_architecture_names_the_file_and_keys(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    torch.save({"ip_network": SRResNet(channels=8, num_blocks=1).state_dict()}, tmp_path / "model.pt")
    enhancer = EnhanceDirectory(SRResNet(channels=16, num_blocks=2), tmp_path, tmp_path / "out",
                                checkpoint=tmp_path / "model.pt", roi_size=(8, 8), progress=False)
    with pytest.raises(ValueError, match=r"model\.pt.*missing keys: blocks\.1\..*shape mismatches: head"):
        enhancer()
    assert not (tmp_path / "out").exists()
    good = EnhanceDirectory(SRResNet(channels=8, num_blocks=1), tmp_path, tmp_path / "out",
                            checkpoint=tmp_path / "model.pt", roi_size=(8, 8), progress=False)
    assert len(good()) == 1
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_enhancer_weights(SRResNet(), tmp_path / "absent.pt")


def test_checkpoint_under_network_key_with_ddp_prefix_loads(tmp_path):
    trained = torch.nn.Conv2d(1, 1, 3, padding=1)
    state = {f"module.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"network": state, "epoch": 3}, tmp_path / "ddp.pt")
    fresh = load_enhancer_weights(torch.nn.Conv2d(1, 1, 3, padding=1), tmp_path / "ddp.pt")
    assert torch.equal(fresh.weight, trained.weight)


def test_bundle_config_runs_the_enhancer(tmp_path):
    Image.fromarray(np.full((12, 12), 7, np.uint8)).save(tmp_path / "a.png")
    config = {
        "input_dir": str(tmp_path),
        "output_dir": str(tmp_path / "out"),
        "network": {"_target_": "torch.nn.Identity"},
        "enhancer": {"_target_": "monai_gradprom.inference.EnhanceDirectory", "network": "@network",
                     "input_dir": "@input_dir", "output_dir": "@output_dir", "roi_size": [16, 16],
                     "progress": False},
        "run": "$@enhancer()",
    }
    parser = ConfigParser(config)
    records = parser.get_parsed_content("run")
    assert len(records) == 1 and np.asarray(Image.open(tmp_path / "out" / "a.png")).max() == 7


def test_same_input_and_output_folder_is_refused_saying_so_before_anything_is_read(tmp_path):
    Image.fromarray(np.full((12, 12), 7, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    before = (tmp_path / "a.png").read_bytes()
    # the same folder spelled differently; the missing checkpoint shows that the folders are checked first
    enhancer = EnhanceDirectory(torch.nn.Identity(), tmp_path, tmp_path / "sub" / "..", roi_size=(16, 16),
                                checkpoint=tmp_path / "missing.pt", progress=False)
    with pytest.raises(ValueError, match="input_dir and output_dir are the same folder.*would overwrite the inputs"):
        enhancer()
    with pytest.raises(ValueError, match="input_dir and output_dir are the same folder"):
        enhance_directory(torch.nn.Identity(), tmp_path, tmp_path, roi_size=(16, 16), progress=False)
    assert (tmp_path / "a.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "sub"]
    # an output folder inside the input folder stays allowed
    assert len(EnhanceDirectory(torch.nn.Identity(), tmp_path, tmp_path / "sub", roi_size=(16, 16),
                                progress=False)()) == 1


def test_images_with_nan_or_inf_voxels_are_named_skipped_and_fail_the_run(tmp_path, caplog):
    """The documented rule: a non-finite input is never enhanced (no all-NaN output), the other images are, and
    the run ends in an error naming each such file."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = np.random.default_rng(0).random((8, 8, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(good, np.eye(4)), inputs / "good.nii.gz")
    for name, value in (("nan.nii.gz", np.nan), ("inf.nii.gz", np.inf)):
        bad = good.copy()
        bad[3, 4, 1] = value
        nib.save(nib.Nifti1Image(bad, np.eye(4)), inputs / name)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="monai_gradprom.inference"):
        with pytest.raises(ValueError, match="NaN / Inf") as info:
            enhance_directory(torch.nn.Identity(), inputs, out, roi_size=(8, 8), progress=False)
    message = str(info.value)
    assert "nan.nii.gz" in message and "inf.nii.gz" in message and "good.nii.gz" not in message
    assert "nan.nii.gz" in caplog.text and "inf.nii.gz" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["good.nii.gz"]  # nothing written for the bad ones
    np.testing.assert_allclose(nib.load(out / "good.nii.gz").get_fdata(), good, atol=1e-6)


def test_a_network_returning_nan_writes_nothing_and_names_the_file(tmp_path):
    Image.fromarray(np.full((12, 12), 7, np.uint8)).save(tmp_path / "a.png")

    class NaNNet(torch.nn.Module):
        def forward(self, x):
            return x * float("nan")

    with pytest.raises(ValueError, match=r"a\.png.*NaN / Inf"):
        enhance_directory(NaNNet(), tmp_path, tmp_path / "out", roi_size=(16, 16), progress=False)
    assert not any((tmp_path / "out").glob("*.png"))
