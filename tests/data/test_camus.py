"""CAMUS, both releases, on their miniature layouts: patient splits, quality metadata, identical upright arrays from
MHD and NIfTI, and every data check."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_gradprom.data import camus
from monai_gradprom.data.common import DataCheckError
from monai_gradprom.data.fixtures import _write_mhd, write_fixture

NUM = 6  # patients; 4 frames each (2 views x 2 phases)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return write_fixture("camus", tmp_path_factory.mktemp("camus") / "original", num=NUM, release="original")


@pytest.fixture(scope="module")
def nifti(tmp_path_factory):
    return write_fixture("camus", tmp_path_factory.mktemp("camus") / "nifti", num=NUM, release="nifti", nested=True)


@pytest.fixture
def original_copy(original, tmp_path):
    return shutil.copytree(original, tmp_path / "original")


@pytest.fixture
def nifti_copy(nifti, tmp_path):
    return shutil.copytree(nifti, tmp_path / "nifti")


def _patients(split):
    return {x["patient"] for x in split}


def test_release_detection(original, nifti):
    assert camus.find_release(original) == ("original", original)
    assert camus.find_release(nifti) == ("nifti", nifti / "CAMUS_public" / "CAMUS_public")  # nested unzip
    with pytest.raises(FileNotFoundError, match="database_nifti"):
        camus.find_release(original, "nifti")


def test_original_release_is_split_by_patient(original):
    lists = camus.load_datalists(original)
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [16, 4, 4]
    for seed in range(4):
        parts = [_patients(s) for s in camus.load_datalists(original, seed=seed).values()]
        assert sum(len(p) for p in parts) == len(set().union(*parts)) == NUM  # no patient in two splits
    assert camus.load_datalists(original, seed=0) == lists
    item = lists["training"][0]
    assert item["image"].endswith(f"{item['id']}.mhd") and item["seg"].endswith(f"{item['id']}_gt.mhd")
    assert not any("sequence" in x["image"] for s in lists.values() for x in s)


def test_nifti_release_uses_the_official_split(nifti):
    lists = camus.load_datalists(nifti)
    split_dir = nifti / "CAMUS_public" / "CAMUS_public" / "database_split"
    for name, file_name in (("training", "training"), ("validation", "validation"), ("test", "testing")):
        listed = set((split_dir / f"subgroup_{file_name}.txt").read_text().split())
        assert _patients(lists[name]) == listed
        assert len(lists[name]) == 4 * len(listed)
    assert all(x["image"].endswith(".nii.gz") for s in lists.values() for x in s)


def test_both_releases_load_to_identical_upright_arrays(original, nifti):
    from_mhd = camus.load_datalists(original, split="random", seed=0)
    from_nii = camus.load_datalists(nifti, split="random", seed=0)
    mhd_items = {x["id"]: x for s in from_mhd.values() for x in s}
    nii_items = {x["id"]: x for s in from_nii.values() for x in s}
    assert mhd_items.keys() == nii_items.keys()
    assert [_patients(s) for s in from_mhd.values()] == [_patients(s) for s in from_nii.values()]
    load_mhd = Compose(camus.loading_transforms(release="original"))
    load_nii = Compose(camus.loading_transforms(release="nifti"))
    load_any = pickle.loads(pickle.dumps(Compose(camus.loading_transforms())))  # as worker processes get it
    for key in sorted(mhd_items)[:8]:
        a, b, c = load_mhd(mhd_items[key]), load_nii(nii_items[key]), load_any(nii_items[key])
        for name in ("image", "seg"):
            assert a[name].shape == b[name].shape and torch.equal(a[name].as_tensor(), b[name].as_tensor()), key
            assert torch.equal(b[name].as_tensor(), c[name].as_tensor())
        assert torch.equal(load_any(mhd_items[key])["image"].as_tensor(), a["image"].as_tensor())


def test_frames_are_upright_with_their_labels(original):
    lists = camus.load_datalists(original)
    transform = Compose(camus.loading_transforms())
    for item in lists["training"][:4]:
        out = transform(item)
        image, seg = out["image"], out["seg"]
        header = dict(line.split(" = ") for line in open(item["image"]).read().splitlines())
        width, height, _ = (int(v) for v in header["DimSize"].split())
        assert image.shape == (1, height, width) and height > width and image.dtype == torch.float32
        assert seg.shape == (1, height, width) and seg.dtype == torch.int64
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert set(torch.unique(seg).tolist()) == {0, 1, 2, 3}
        stored = np.fromfile(item["seg"].replace(".mhd", ".raw"), np.uint8).reshape(height, width)  # x fastest
        assert np.array_equal(seg[0].numpy(), stored)
        rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
        assert rows[seg[0] == 1].mean() < rows[seg[0] == 3].mean()  # ventricle above atrium: apex at the top
        fan = (image[0] > 0).float().sum(1)
        assert fan[:5].mean() < fan[-5:].mean()  # the sector widens with depth
        assert image[0][seg[0] == 2].mean() > image[0][seg[0] == 1].mean()  # bright wall, dark cavity


def test_quality_metadata_and_filter(original):
    lists = camus.load_datalists(original)
    items = [x for s in lists.values() for x in s]
    assert {x["image_quality"] for x in items} == {"Good", "Medium", "Poor"}
    for item in items:
        cfg = f"{item['image'].rsplit('/', 1)[0]}/Info_{item['view']}.cfg"
        assert camus.read_info(cfg)["ImageQuality"] == item["image_quality"]
    good = camus.load_datalists(original, qualities=("good", "Medium"))
    assert {x["image_quality"] for s in good.values() for x in s} == {"Good", "Medium"}
    for name in lists:  # the filter does not move patients between splits
        assert _patients(good[name]) <= _patients(lists[name])


def test_view_and_phase_options(nifti):
    lists = camus.load_datalists(nifti, views=("4CH",), phases=("ED",))
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [4, 1, 1]
    assert all(x["view"] == "4CH" and x["phase"] == "ED" for s in lists.values() for x in s)
    with pytest.raises(ValueError, match="views"):
        camus.load_datalists(nifti, views=("3CH",))


def test_testing_folder_without_ground_truth(original):
    with pytest.raises(FileNotFoundError, match="testing/patient0001/patient0001_2CH_ED_gt.mhd"):
        camus.load_datalists(original, test_source="testing")
    lists = camus.load_datalists(original, test_source="testing", require_gt=False)
    assert len(lists["test"]) == 2 * 4 and all("seg" not in x for x in lists["test"])
    assert all(x["id"].startswith("testing/") for x in lists["test"])
    assert len(lists["training"]) + len(lists["validation"]) == NUM * 4
    out = Compose(camus.loading_transforms())(lists["test"][0])
    assert out["image"].shape[0] == 1 and "seg" not in out


def test_missing_ground_truth_in_training_raises_or_is_skipped(original_copy):
    gt = original_copy / "training" / "patient0002" / "patient0002_4CH_ES_gt.mhd"
    gt.unlink()
    with pytest.raises(FileNotFoundError, match="patient0002_4CH_ES_gt.mhd"):
        camus.load_datalists(original_copy)
    lists = camus.load_datalists(original_copy, on_error="skip")
    assert [s["path"] for s in lists.skipped] == [str(gt)]
    assert sum(len(s) for s in lists.values()) == NUM * 4 - 1


def test_size_mismatch_and_truncated_raw_are_named(original_copy):
    folder = original_copy / "training" / "patient0003"
    _write_mhd(folder / "patient0003_2CH_ED_gt.mhd", np.zeros((10, 12), np.uint8))
    with pytest.raises(DataCheckError, match="size mismatch.*patient0003_2CH_ED_gt.mhd"):
        camus.load_datalists(original_copy)
    raw = folder / "patient0003_4CH_ED.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    lists = camus.load_datalists(original_copy, on_error="skip")
    assert {s["path"] for s in lists.skipped} == {str(folder / "patient0003_2CH_ED_gt.mhd"),
                                                  str(folder / "patient0003_4CH_ED.mhd")}
    assert any("patient0003_4CH_ED.raw" in s["reason"] for s in lists.skipped)


def test_corrupt_nifti_and_split_problems_are_named(nifti_copy):
    base = nifti_copy / "CAMUS_public" / "CAMUS_public"
    bad = base / "database_nifti" / "patient0001" / "patient0001_2CH_ES.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataCheckError, match="patient0001_2CH_ES.nii.gz"):
        camus.load_datalists(nifti_copy)
    shutil.rmtree(base / "database_nifti" / "patient0002")
    with pytest.raises(FileNotFoundError, match="database_nifti/patient0002"):
        camus.load_datalists(nifti_copy)
    (base / "database_split" / "subgroup_validation.txt").write_text("\n")
    with pytest.raises(DataCheckError, match="'validation' split is empty.*database_split"):
        camus.load_datalists(nifti_copy, on_error="skip")


def test_missing_root_and_missing_info_are_named(tmp_path, original_copy):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        camus.load_datalists(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="database_nifti.*training"):
        camus.load_datalists(tmp_path / "empty")
    (original_copy / "training" / "patient0004" / "Info_2CH.cfg").unlink()
    with pytest.raises(FileNotFoundError, match="patient0004/Info_2CH.cfg"):
        camus.load_datalists(original_copy)
    with pytest.raises(ValueError, match="no official split"):
        camus.load_datalists(original_copy, split="official")


def test_a_nifti_frame_with_a_singleton_third_axis_loads_the_same(nifti, tmp_path):
    import nibabel as nib

    item = camus.load_datalists(nifti)["training"][0]
    frame = nib.load(item["image"])
    assert frame.shape[0] < frame.shape[1]  # stored (W, H)
    variant = tmp_path / "frame_3d.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(frame.dataobj)[..., None], frame.affine), variant)
    load = Compose(camus.loading_transforms(("image",), release="nifti"))
    assert torch.equal(load({"image": str(variant)})["image"].as_tensor(), load(item)["image"].as_tensor())


def _load_each(transforms, item):
    """Apply the loading transforms one by one (MONAI's Compose would wrap the error in a RuntimeError)."""
    for transform in transforms:
        item = transform(item)
    return item


def test_mask_values_outside_0_3_are_named_before_training_even_in_validation(original_copy):
    gt = Path(camus.load_datalists(original_copy)["validation"][0]["seg"])
    raw = gt.with_suffix(".raw")
    data = bytearray(raw.read_bytes())
    data[len(data) // 2] = 5
    raw.write_bytes(bytes(data))
    with pytest.raises(DataCheckError, match=rf"seg holds values 5 outside the classes 0..3: .*{gt.name}"):
        camus.load_datalists(original_copy)
    assert [s["path"] for s in camus.load_datalists(original_copy, on_error="skip").skipped] == [str(gt)]


def test_a_sequence_where_a_frame_is_expected_is_named_in_the_check_and_when_loading(original_copy):
    folder = original_copy / "training" / "patient0002"
    image, gt = folder / "patient0002_4CH_ES.mhd", folder / "patient0002_4CH_ES_gt.mhd"
    _write_mhd(image, np.zeros((3, 8, 6), np.uint8))  # both three frames: the sizes agree, the dimensions do not
    _write_mhd(gt, np.zeros((3, 8, 6), np.uint8))
    with pytest.raises(DataCheckError, match=r"image has size \(8, 6, 3\): expected a 2-D frame.*patient0002_4CH_ES"):
        camus.load_datalists(original_copy)
    with pytest.raises(DataCheckError, match=r"image file .*patient0002_4CH_ES.mhd: expected a 2D frame"):
        _load_each(camus.loading_transforms(("image",)), {"image": str(image)})


def test_nan_pixels_and_a_cut_gzip_stream_are_named(nifti_copy):
    import nibabel as nib

    item = camus.load_datalists(nifti_copy)["training"][0]
    frame = nib.load(item["image"])
    data = np.asarray(frame.dataobj).astype(np.float32)
    data[3, 4] = np.nan
    nib.save(nib.Nifti1Image(data, frame.affine), item["image"])
    name = Path(item["image"]).name
    with pytest.raises(DataCheckError, match=rf"image holds non-finite pixel values \(1 NaN, 0 Inf .*{name}"):
        camus.load_datalists(nifti_copy)
    gt = Path(item["seg"])
    shutil.copyfile(gt, item["image"])
    gt.write_bytes(gt.read_bytes()[:-20])  # header intact, the compressed pixels cut short
    with pytest.raises(DataCheckError, match=rf"unreadable seg .*{gt.name}"):
        camus.load_datalists(nifti_copy)
    with pytest.raises(DataCheckError, match=rf"cannot load seg file .*{gt.name}"):
        _load_each(camus.loading_transforms(), dict(item))
