"""A corrupt, missing, non-finite or out-of-class file fails before training with its path named (or is skipped and
reported), and a file that fails while loading in a worker is named too."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from monai_gradprom.data.checks import DataCheckError, verify_datalist
from monai_gradprom.data.common import check_datalist


def _datalist(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    return [
        {"image": str(good), "label": 0},
        {"image": str(truncated), "label": 1},
        {"image": str(good), "seg": str(tmp_path / "missing_mask.png"), "label": 0},
    ]


def test_corrupt_file_raises_naming_it(tmp_path):
    with pytest.raises(DataCheckError, match="truncated.png"):
        verify_datalist(_datalist(tmp_path), progress=False)


def test_missing_mask_is_named(tmp_path):
    items = _datalist(tmp_path)
    with pytest.raises(DataCheckError, match="missing_mask.png: file not found"):
        verify_datalist([items[2]], progress=False)


def test_skip_mode_drops_and_reports(tmp_path):
    report = tmp_path / "out" / "skipped_files.json"
    kept = verify_datalist(_datalist(tmp_path), on_error="skip", report_path=report, progress=False)
    assert len(kept) == 1 and kept[0]["label"] == 0
    skipped = json.loads(report.read_text())
    assert [s["item"]["image"].endswith("truncated.png") for s in skipped] == [True, False]
    assert "seg" in skipped[1]["problems"]


def test_in_memory_items_pass_and_bad_mode_is_refused(tmp_path):
    assert len(verify_datalist([{"image": np.zeros((1, 4, 4))}], progress=False)) == 1
    with pytest.raises(ValueError, match="on_error"):
        verify_datalist([], on_error="ignore")


# ---------------------------------------------------------------------------------------------------------------
# The loaders' check (common.check_datalist): pixel content, class values, frame dimensions, named load errors
# ---------------------------------------------------------------------------------------------------------------


def _nifti(path, array):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4)), str(path))
    return str(path)


def test_non_finite_pixels_are_a_data_error_naming_the_file(tmp_path):
    frame = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    good = _nifti(tmp_path / "good.nii.gz", frame)
    frame[2, 3] = np.nan
    frame[0, 0] = np.inf
    bad = _nifti(tmp_path / "bad.nii.gz", frame)
    items = [{"image": good}, {"image": bad}]
    with pytest.raises(DataCheckError, match=r"non-finite pixel values \(1 NaN, 1 Inf of 30\).*bad.nii.gz"):
        check_datalist(items, keys=("image",))
    with pytest.raises(DataCheckError, match="bad.nii.gz: non-finite"):  # the inference-reader check too
        verify_datalist(items, progress=False)
    assert check_datalist([items[0]], keys=("image",)) == [items[0]]


def test_class_values_outside_the_classes_name_the_mask(tmp_path):
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "image.png")
    mask = np.zeros((6, 5), np.uint8)
    mask[1, 1], mask[2, 2] = 3, 7
    _nifti(tmp_path / "mask.nii.gz", mask.T)  # ITK order: (x, y)
    item = {"image": str(tmp_path / "image.png"), "seg": str(tmp_path / "mask.nii.gz")}
    assert check_datalist([item], values={"seg": range(8)}) == [item]
    with pytest.raises(DataCheckError, match=r"seg holds values 7 outside the classes 0..3: .*mask.nii.gz"):
        check_datalist([item], values={"seg": range(4)})
    _nifti(tmp_path / "mask.nii.gz", mask.T.astype(np.float32) / 2)  # 1.5: a resampled, interpolated map
    with pytest.raises(DataCheckError, match="non-integer values.*mask.nii.gz"):
        check_datalist([item], values={"seg": range(8)})
    with pytest.raises(DataCheckError, match=r"label 2 is not one of the classes 0, 1: .*image.png"):
        check_datalist([{"image": item["image"], "label": 2}], keys=("image", "label"), values={"label": (0, 1)})


def test_a_png_with_an_intact_header_and_a_cut_body_fails_in_the_check_and_in_a_worker(tmp_path):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, EnsureChannelFirstd

    from monai_gradprom.data.common import load_pil, read_size, to_grayscale

    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:300])
    assert read_size(cut) == (40, 40)  # the header check alone passes it
    with pytest.raises(DataCheckError, match=r"unreadable image \(.*[Tt]runcated.*\): .*cut.png"):
        check_datalist([{"image": str(full)}, {"image": str(cut)}], keys=("image",))
    load = Compose([load_pil("image", to_grayscale), EnsureChannelFirstd("image")])
    with pytest.raises(DataCheckError, match="cannot load image file .*cut.png: OSError"):
        load.transforms[0]({"image": str(cut)})
    with pytest.raises(RuntimeError, match="applying transform") as caught:  # MONAI's Compose wraps it...
        load({"image": str(cut)})
    assert "cut.png" in str(caught.value.__cause__)  # ...as the cause that the traceback prints
    iterator = iter(DataLoader(Dataset([{"image": str(cut)}], load), batch_size=1, num_workers=1))
    try:
        with pytest.raises(RuntimeError, match="(?s)DataLoader worker.*cannot load image file .*cut.png"):
            next(iterator)  # re-raised in the main process with the worker's traceback, cause included
    finally:
        iterator._shutdown_workers()  # now, not at garbage collection (a 5 s join timeout)


def test_a_volume_where_a_frame_is_expected_is_named(tmp_path):
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "image.png")
    volume = _nifti(tmp_path / "volume.nii.gz", np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(DataCheckError, match=r"image has size \(6, 5, 3\): expected a 2-D frame.*volume.nii.gz"):
        check_datalist([{"image": volume}], keys=("image",))
    assert check_datalist([{"image": volume}], keys=("image",), spatial_dims=3) == [{"image": volume}]


def test_isic_masks_other_than_0_255_and_bad_diagnoses_are_named(tmp_path):
    from monai_gradprom.data import isic2018
    from monai_gradprom.data.fixtures import write_fixture

    root = write_fixture("isic2018", tmp_path / "isic", num=6, num_val=2, num_test=0)
    mask = root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000003_segmentation.png"
    Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8)).save(mask)  # 0 / 1: would train as empty
    with pytest.raises(DataCheckError, match=r"seg holds values 1 outside the classes 0, 255: .*ISIC_0000003_seg"):
        isic2018.load_datalists(root)
    assert len(isic2018.load_datalists(root, on_error="skip").skipped) == 1
    with pytest.raises(DataCheckError, match=r"label 7 is not one of the classes -100, 0..6: .*ISIC_0000000.jpg"):
        check_datalist([{"image": str(root / "ISIC2018_Task3_Training_Input" / "ISIC_0000000.jpg"), "label": 7}],
                       keys=("image", "label"), values={"label": (*range(7), -100)})


def test_check_cost_per_thousand_small_images_stays_small(tmp_path):
    """Not a benchmark: a guard that the default check stays within a few ms per item (measured: about 0.2 ms
    per PNG image + mask pair on 2 cores)."""
    import time

    rng = np.random.default_rng(0)
    items = []
    for i in range(50):
        Image.fromarray(rng.integers(0, 255, (64, 80), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        Image.fromarray((rng.random((64, 80)) > 0.5).astype(np.uint8) * 255).save(tmp_path / f"{i}_m.png")
        items.append({"image": str(tmp_path / f"{i}.png"), "seg": str(tmp_path / f"{i}_m.png")})
    start = time.perf_counter()
    assert len(check_datalist(items, values={"seg": (0, 255)})) == 50
    assert (time.perf_counter() - start) / 50 < 0.01
