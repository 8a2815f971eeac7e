"""COVID-CT on its miniature layout: official and random splits, the download's quirks, loading, data checks."""

from __future__ import annotations

import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from PIL import Image

from monai_gradprom.data import covid_ct
from monai_gradprom.data.common import DataCheckError, check_datalist
from monai_gradprom.data.fixtures import write_fixture

NUM = 10  # per class; the fixture's official split is 6 / 2 / 2 per class


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixture("covid_ct", tmp_path_factory.mktemp("covid") / "COVID-CT", num=NUM)


@pytest.fixture
def copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / "COVID-CT")


@pytest.fixture(scope="module")
def lists(root):
    return covid_ct.load_datalists(root)


def test_official_split_counts_and_labels(lists):
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [12, 4, 4]
    for item in (x for s in lists.values() for x in s):
        folder = os.path.basename(os.path.dirname(item["image"]))
        assert item["label"] == {"CT_COVID": 1, "CT_NonCOVID": 0}[folder]
        assert os.path.isabs(item["image"]) and os.path.isfile(item["image"])
    for split in lists.values():
        assert {x["label"] for x in split} == {0, 1}


def test_names_with_percent_and_spaces_are_used_verbatim(lists):
    names = {os.path.basename(x["image"]) for s in lists.values() for x in s}
    assert {"PIIS0140673620303603%2.png", "2020.02.10.20021584-p6-52%2 (1).png", "1%0 a.jpg"} <= names
    transform = Compose(covid_ct.loading_transforms())
    for item in (x for s in lists.values() for x in s if "%" in x["image"]):
        assert transform(item)["image"].shape[0] == 1


def test_a_name_listed_with_the_wrong_extension_is_matched_by_stem(lists):
    names = {os.path.basename(x["image"]) for s in lists.values() for x in s}
    assert "5.jpeg" in names and "5.png" not in names


def test_every_mode_and_the_jpeg_inside_a_png_load_as_one_grey_channel(root, lists):
    folder = root / "Images-processed" / "CT_COVID"
    modes = {p.name: (Image.open(p).format, Image.open(p).mode) for p in folder.iterdir()}
    assert {("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("PNG", "I;16"), ("PNG", "L")} <= set(modes.values())
    transform = Compose(covid_ct.loading_transforms())
    for item in (x for s in lists.values() for x in s):
        out = transform(item)
        width, height = Image.open(item["image"]).size
        image = out["image"]
        assert image.shape == (1, height, width) and image.dtype == torch.float32, item["image"]
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert out["label"] == item["label"]
    jpeg_in_png = next(p for p, (fmt, _) in modes.items() if fmt == "JPEG")
    out = transform({"image": str(folder / jpeg_in_png)})["image"][0]
    expected = np.asarray(Image.open(folder / jpeg_in_png).convert("L"), np.float32) / 255.0
    assert np.abs(out.numpy() - expected).max() < 1e-6


def test_lungs_are_darker_than_the_body(lists):
    """Orientation and content survive loading: the body centre is brighter than the lung fields."""
    out = Compose(covid_ct.loading_transforms())(lists["training"][0])["image"][0]
    h, w = out.shape
    assert out[h // 2, w // 2] > out[h // 2, int(w * 0.3)]


def test_spatial_size_makes_batches_possible(lists):
    transform = pickle.loads(pickle.dumps(Compose(covid_ct.loading_transforms(spatial_size=(64, 64)))))
    batch = torch.stack([transform(x)["image"] for x in lists["validation"]])
    assert batch.shape == (4, 1, 64, 64)


def test_random_split_without_data_split(copy, caplog):
    shutil.rmtree(copy / "Data-split")
    lists = covid_ct.load_datalists(copy, seed=1)
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [12, 3, 5]
    assert "seeded random split" in caplog.text
    assert all({x["label"] for x in s} == {0, 1} for s in lists.values())
    with pytest.raises(FileNotFoundError, match="Data-split"):
        covid_ct.load_datalists(copy, split="official")


def test_listed_file_missing_raises_or_is_skipped(copy):
    gone = copy / "Images-processed" / "CT_COVID" / "PIIS0140673620303603%2.png"
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="PIIS0140673620303603%2.png"):
        covid_ct.load_datalists(copy)
    lists = covid_ct.load_datalists(copy, on_error="skip")
    assert [s["path"] for s in lists.skipped] == [str(gone)]
    assert sum(len(s) for s in lists.values()) == 2 * NUM - 1


def test_corrupt_file_is_named(copy):
    bad = copy / "Images-processed" / "CT_NonCOVID" / "1%0 a.jpg"
    bad.write_bytes(b"GIF89a...")
    with pytest.raises(DataCheckError, match="1%0 a.jpg"):
        covid_ct.load_datalists(copy)


def test_split_list_problems_are_named(copy):
    lists_dir = copy / "Data-split" / "COVID"
    first = (lists_dir / "trainCT_COVID.txt").read_text().splitlines()[0].strip()
    with open(lists_dir / "testCT_COVID.txt", "a") as f:
        f.write(first + "\n")
    with pytest.raises(DataCheckError, match="trainCT_COVID.txt.*testCT_COVID.txt"):
        covid_ct.load_datalists(copy)
    (lists_dir / "testCT_COVID.txt").write_text("")
    (copy / "Data-split" / "NonCOVID" / "testCT_NonCOVID.txt").write_text("\n\n")
    with pytest.raises(DataCheckError, match="'test' split is empty.*Data-split"):
        covid_ct.load_datalists(copy)
    (lists_dir / "valCT_COVID.txt").unlink()
    with pytest.raises(FileNotFoundError, match="valCT_COVID.txt"):
        covid_ct.load_datalists(copy)


def test_missing_root_and_image_folder_are_named(tmp_path, copy):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        covid_ct.load_datalists(tmp_path / "nowhere")
    shutil.rmtree(copy / "Images-processed" / "CT_NonCOVID")
    with pytest.raises(FileNotFoundError, match="CT_NonCOVID"):
        covid_ct.load_datalists(copy)


def test_a_png_cut_off_after_its_header_is_named_by_the_check_and_the_loader(copy):
    bad = copy / "Images-processed" / "CT_COVID" / "2020.02.10.20021584-p6-52%2 (1).png"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(DataCheckError, match=rf"unreadable image \(OSError.*\): .*{re.escape(bad.name)}"):
        covid_ct.load_datalists(copy)
    assert [s["path"] for s in covid_ct.load_datalists(copy, on_error="skip").skipped] == [str(bad)]
    item = {"image": str(bad), "label": 1}
    with pytest.raises(DataCheckError, match=rf"cannot load image file .*{re.escape(bad.name)}"):
        for transform in covid_ct.loading_transforms():
            item = transform(item)


def test_a_label_outside_the_two_classes_is_named(lists):
    item = dict(lists["training"][0], label=2)
    with pytest.raises(DataCheckError, match=rf"label 2 is not one of the classes 0, 1: {re.escape(item['image'])}"):
        check_datalist([item], keys=("image", "label"), values={"label": range(len(covid_ct.CLASSES))})
