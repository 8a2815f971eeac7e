"""ISIC 2018 on its miniature layout: splits, targets, loading, alignment, and every data check."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from PIL import Image

from monai_gradprom.data import isic2018
from monai_gradprom.data.common import IGNORE_INDEX, DataCheckError
from monai_gradprom.data.fixtures import write_fixture

NUM, NUM_VAL, NUM_TEST = 16, 4, 2


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixture("isic2018", tmp_path_factory.mktemp("isic") / "ISIC2018", num=NUM, num_val=NUM_VAL,
                         num_test=NUM_TEST)


@pytest.fixture
def copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / "ISIC2018")


def test_segmentation_splits(root):
    lists = isic2018.load_datalists(root)
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [13, 3, NUM_VAL]
    train_ids = {x["id"] for x in lists["training"]}
    assert not train_ids & {x["id"] for x in lists["validation"]}
    assert all(x["image"].endswith(".jpg") and x["seg"].endswith("_segmentation.png") for s in lists.values() for x in s)
    assert all(x["id"].startswith("ISIC_0012") for x in lists["test"])  # the official validation set
    both_sets = isic2018.load_datalists(root, test_sets=("validation", "test"))
    assert len(both_sets["test"]) == NUM_VAL + NUM_TEST
    assert isic2018.load_datalists(root, seed=0)["validation"] == lists["validation"]
    assert isic2018.load_datalists(root, seed=1)["validation"] != lists["validation"]


def test_without_official_sets_the_test_split_is_the_seeded_held_out_part(copy, caplog):
    for name in ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth",
                 "ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth"):
        shutil.rmtree(copy / name)
    with caplog.at_level("WARNING", logger="monai_gradprom.data.isic2018"):
        lists = isic2018.load_datalists(copy, test_sets=("validation", "test"))
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [13, 3, 3]  # 80 / 20 of 16
    assert lists["test"] == lists["validation"] and lists["test"] is not lists["validation"]
    assert not {x["id"] for x in lists["test"]} & {x["id"] for x in lists["training"]}  # never trained on
    assert lists["test"] == isic2018.load_datalists(copy, seed=0)["test"]  # seeded
    assert lists["test"] != isic2018.load_datalists(copy, seed=1)["test"]
    assert "'test' is the seeded 20% held-out part of the training set (seed 0, 3 images" in caplog.text
    assert isic2018.load_datalists(copy, test_sets=())["test"] == []  # no test data asked for: none given


def test_classification_labels_come_from_the_csv(root):
    lists = isic2018.load_datalists(root, task="classification")
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [13, 3, NUM_VAL]
    rows = {}
    for name in ("Training", "Validation"):
        text = (root / f"ISIC2018_Task3_{name}_GroundTruth" / f"ISIC2018_Task3_{name}_GroundTruth.csv").read_text()
        for line in text.splitlines()[1:]:
            fields = line.split(",")
            rows[fields[0]] = fields[1:].index("1.0")
    for item in (x for s in lists.values() for x in s):
        assert item["label"] == rows[item["id"]] and "seg" not in item
        assert item["image"].endswith(f"{item['id']}.jpg")


def test_both_tasks_use_both_targets_where_present(root):
    lists = isic2018.load_datalists(root, task="both")
    items = [x for s in lists.values() for x in s]
    both = [x for x in items if "seg" in x and x["label"] != IGNORE_INDEX]
    seg_only = [x for x in items if "seg" in x and x["label"] == IGNORE_INDEX]
    label_only = [x for x in items if "seg" not in x]
    assert len(both) == NUM // 2 and seg_only and label_only
    transform = Compose(isic2018.loading_transforms(("image", "seg")))
    out = transform(label_only[0])
    assert out["seg"].shape == (1, *out["image"].shape[1:]) and (out["seg"] == IGNORE_INDEX).all()
    out = transform(both[0])
    assert set(torch.unique(out["seg"]).tolist()) == {0, 1} and out["label"] == both[0]["label"]
    mixed = [both[0], seg_only[0], label_only[0]]  # one batch mixing the three kinds of item
    loader = DataLoader(Dataset(mixed, Compose(isic2018.loading_transforms(spatial_size=(32, 32)))), batch_size=3)
    batch = next(iter(pickle.loads(pickle.dumps(loader))))  # picklable, as worker processes need
    assert batch["seg"].shape == (3, 1, 32, 32) and batch["label"].tolist()[1] == IGNORE_INDEX
    assert (batch["seg"][2] == IGNORE_INDEX).all() and set(torch.unique(batch["seg"][0]).tolist()) == {0, 1}


def test_non_image_files_are_ignored(root):
    assert (root / "ISIC2018_Task1-2_Training_Input" / "LICENSE.txt").is_file()
    lists = isic2018.load_datalists(root)
    assert sum(len(s) for s in lists.values()) == NUM + NUM_VAL
    assert not any(x["image"].endswith(".txt") for s in lists.values() for x in s)


def test_loading_gives_rgb_in_unit_range_and_aligned_binary_masks(root):
    lists = isic2018.load_datalists(root)
    transform = Compose(isic2018.loading_transforms())
    for item in lists["training"][:6]:
        out = transform(item)
        width, height = Image.open(item["image"]).size
        image, seg = out["image"], out["seg"]
        assert image.shape == (3, height, width) and image.dtype == torch.float32
        assert seg.shape == (1, height, width) and seg.dtype == torch.int64
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert set(torch.unique(seg).tolist()) == {0, 1}
        grey = image.mean(0)
        assert grey[seg[0] == 1].mean() < grey[seg[0] == 0].mean() - 0.1  # the dark lesion is where the mask is


def test_spatial_size_resizes_image_and_mask(root):
    item = isic2018.load_datalists(root)["training"][0]
    out = Compose(isic2018.loading_transforms(spatial_size=(32, 48)))(item)
    assert out["image"].shape == (3, 32, 48) and out["seg"].shape == (1, 32, 48)
    assert set(torch.unique(out["seg"]).tolist()) <= {0, 1} and out["seg"].dtype == torch.int64


def test_missing_root_and_folders_are_named(tmp_path, copy):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        isic2018.load_datalists(tmp_path / "nowhere")
    shutil.rmtree(copy / "ISIC2018_Task1_Validation_GroundTruth")
    with pytest.raises(FileNotFoundError, match="ISIC2018_Task1_Validation_GroundTruth"):
        isic2018.load_datalists(copy)
    shutil.rmtree(copy / "ISIC2018_Task1-2_Training_Input")
    with pytest.raises(FileNotFoundError, match="ISIC2018_Task1-2_Training_Input"):
        isic2018.load_datalists(copy)


def test_missing_mask_raises_or_is_skipped(copy):
    mask = copy / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000003_segmentation.png"
    mask.unlink()
    with pytest.raises(FileNotFoundError, match="ISIC_0000003_segmentation.png"):
        isic2018.load_datalists(copy)
    lists = isic2018.load_datalists(copy, on_error="skip")
    assert [s["path"] for s in lists.skipped] == [str(mask)]
    assert sum(len(lists[k]) for k in ("training", "validation")) == NUM - 1


def test_size_mismatch_and_corrupt_files_are_named(copy):
    mask = copy / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000005_segmentation.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask)
    with pytest.raises(DataCheckError, match="size mismatch.*ISIC_0000005_segmentation.png"):
        isic2018.load_datalists(copy)
    image = copy / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000007.jpg"
    image.write_bytes(b"\xff\xd8 broken")
    lists = isic2018.load_datalists(copy, on_error="skip")
    assert {s["path"] for s in lists.skipped} == {str(mask), str(image)}
    width, height = Image.open(copy / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000005.jpg").size
    Image.fromarray(np.zeros((height, width), np.uint8)).save(mask)
    with pytest.raises(DataCheckError, match="unreadable image.*ISIC_0000007.jpg"):
        isic2018.load_datalists(copy, test_sets=())


def test_csv_problems_are_named(copy):
    csv = copy / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # one image loses its row
    dropped = lines[2].split(",")[0]
    with pytest.raises(DataCheckError, match=f"'label'.*{dropped}.jpg"):
        isic2018.load_datalists(copy, task="classification")
    csv.write_text("\n".join([lines[0], lines[1].replace("0.0", "1.0", 1)] + lines[2:]) + "\n")
    with pytest.raises(DataCheckError, match="not one-hot.*GroundTruth.csv"):
        isic2018.load_datalists(copy, task="classification")


def test_empty_training_set_is_an_error(copy):
    folder = copy / "ISIC2018_Task1-2_Training_Input"
    for path in folder.glob("*.jpg"):
        path.unlink()
    with pytest.raises(DataCheckError, match="'training' split is empty"):
        isic2018.load_datalists(copy)


def test_truncated_image_is_caught_by_the_deep_check(copy):
    image = copy / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000002.jpg"
    image.write_bytes(image.read_bytes()[:-400])  # the header survives, the pixels do not
    assert sum(len(s) for s in isic2018.load_datalists(copy).values()) == NUM + NUM_VAL
    with pytest.raises(DataCheckError, match="ISIC_0000002.jpg"):
        isic2018.load_datalists(copy, deep=True)
