"""Lizard on its miniature layout: folds, MAT labels with mixed types, class maps, the derived label, checks."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from PIL import Image
from scipy.io import loadmat, savemat

from monai_gradprom.data import lizard
from monai_gradprom.data.common import DataCheckError
from monai_gradprom.data.fixtures import write_fixture

NUM = 18  # folds 1, 2, 3: six images each


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fixture("lizard", tmp_path_factory.mktemp("lizard") / "Lizard", num=NUM)


@pytest.fixture
def copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / "Lizard")


@pytest.fixture(scope="module")
def lists(root):
    return lizard.load_datalists(root)


def test_fold_splits(root, lists):
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [10, 2, 6]
    assert {x["fold"] for x in lists["training"] + lists["validation"]} == {1, 2}
    assert {x["fold"] for x in lists["test"]} == {3}
    both_dirs = {x["image"].split("/")[-2] for s in lists.values() for x in s}
    assert both_dirs == {"Lizard_Images1", "Lizard_Images2"}
    by_fold = lizard.load_datalists(root, train_folds=(1,), val_folds=(2,))
    assert [len(by_fold[k]) for k in ("training", "validation", "test")] == [6, 6, 6]
    with pytest.raises(ValueError, match="both train_folds and test_folds"):
        lizard.load_datalists(root, train_folds=(1, 3))
    no_test = lizard.load_datalists(root, test_folds=())
    assert no_test["test"] == []


def test_mat_labels_are_cast_whatever_their_types(root):
    folder = root / "Lizard_Labels" / "Labels"
    types = {loadmat(p)["inst_map"].dtype for p in folder.glob("*.mat")}
    assert len(types) > 1  # the fixture writes mixed types, as the real files come
    for path in sorted(folder.glob("*.mat"))[:3]:
        label = lizard.read_label(path)
        assert label["inst_map"].dtype == np.int32 and label["id"].dtype == np.int64
        assert label["class"].dtype == np.int64 and label["bbox"].shape[1] == 4
        assert label["centroid"].dtype == np.float64 and label["centroid"].shape == (label["id"].size, 2)


def test_class_map_gives_each_instance_its_class():
    inst_map = np.array([[0, 5, 5], [7, 0, 9]])
    classes = lizard.class_map(inst_map, ids=np.array([5, 7]), classes=np.array([3, 6]))
    assert classes.tolist() == [[0, 3, 3], [6, 0, 0]]  # 9 has no entry: background


def test_loading_gives_rgb_and_a_class_map_aligned_with_the_nuclei(lists):
    transform = Compose(lizard.loading_transforms())
    for item in lists["training"][:4]:
        out = transform(item)
        width, height = Image.open(item["image"]).size
        image, seg = out["image"], out["seg"]
        assert image.shape == (3, height, width) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert seg.shape == (1, height, width) and seg.dtype == torch.int64
        assert set(torch.unique(seg).tolist()) <= set(range(7))
        label = lizard.read_label(item["seg"])
        for k, cls in zip(label["id"], label["class"]):
            assert (seg[0][torch.from_numpy(label["inst_map"] == k)] == int(cls)).all()
        grey = image.mean(0)
        assert grey[seg[0] > 0].mean() < grey[seg[0] == 0].mean() - 0.2  # nuclei are the dark stained blobs


def test_derived_label_is_the_inflammatory_fraction_over_the_threshold(lists, root):
    items = [x for s in lists.values() for x in s]
    for item in items:
        classes = lizard.read_label(item["seg"])["class"]
        fraction = np.isin(classes, lizard.INFLAMMATORY).mean()
        assert item["inflammatory_fraction"] == pytest.approx(fraction)
        assert item["label"] == int(fraction > 0.25) and item["num_nuclei"] == classes.size
    assert {x["label"] for x in items} == {0, 1}
    median = lizard.load_datalists(root, inflammatory_threshold="median")
    labels = [x["label"] for x in median["training"] + median["validation"]]
    assert abs(sum(labels) - len(labels) / 2) <= 1


def test_spatial_size_resizes_image_and_class_map(lists):
    transform = pickle.loads(pickle.dumps(Compose(lizard.loading_transforms(spatial_size=(48, 40)))))
    out = transform(lists["test"][0])
    assert out["image"].shape == (3, 48, 40) and out["seg"].shape == (1, 48, 40)
    assert out["seg"].dtype == torch.int64 and set(torch.unique(out["seg"]).tolist()) <= set(range(7))


def test_nested_mirror_layout(tmp_path, lists):
    nested = write_fixture("lizard", tmp_path / "mirror", num=NUM, nested=True)
    assert (nested / "lizard_images1" / "Lizard_Images1").is_dir()
    mirrored = lizard.load_datalists(nested)
    assert [len(mirrored[k]) for k in mirrored] == [len(lists[k]) for k in lists]
    assert [x["id"] for x in mirrored["test"]] == [x["id"] for x in lists["test"]]


def test_missing_label_raises_or_is_skipped(copy):
    mat = copy / "Lizard_Labels" / "Labels" / "crag_1.mat"
    mat.unlink()
    with pytest.raises(FileNotFoundError, match="crag_1.mat"):
        lizard.load_datalists(copy)
    lists = lizard.load_datalists(copy, on_error="skip")
    assert [s["path"] for s in lists.skipped] == [str(mat)]
    assert sum(len(s) for s in lists.values()) == NUM - 1


def test_corrupt_label_and_size_mismatch_are_named(copy):
    labels = copy / "Lizard_Labels" / "Labels"
    (labels / "consep_1.mat").write_bytes(b"MATLAB 5.0 MAT-file, but not really")
    with pytest.raises(DataCheckError, match="consep_1.mat"):
        lizard.load_datalists(copy)
    shutil.copyfile(labels / "crag_1.mat", labels / "consep_1.mat")
    with pytest.raises(DataCheckError, match="size mismatch.*consep_1.mat"):
        lizard.load_datalists(copy)
    savemat(labels / "consep_1.mat", {"inst_map": np.zeros((4, 4)), "id": np.array([[1]]), "class": np.array([[9]])})
    with pytest.raises(DataCheckError, match="outside 1..6.*consep_1.mat"):
        lizard.load_datalists(copy)


def test_missing_image_and_folders_are_named(tmp_path, copy):
    (copy / "Lizard_Images2" / "glas_1.png").unlink()
    with pytest.raises(FileNotFoundError, match="glas_1.png"):
        lizard.load_datalists(copy)
    shutil.rmtree(copy / "Lizard_Images2")
    with pytest.raises(FileNotFoundError, match="Lizard_Images2"):
        lizard.load_datalists(copy)
    (copy / "Lizard_Labels" / "info.csv").unlink()
    with pytest.raises(FileNotFoundError, match="Lizard_Images2"):
        lizard.load_datalists(copy)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        lizard.load_datalists(tmp_path / "nowhere")


def test_missing_info_csv_is_named(copy):
    (copy / "Lizard_Labels" / "info.csv").unlink()
    with pytest.raises(FileNotFoundError, match="info.csv"):
        lizard.load_datalists(copy)


def test_nan_or_negative_instance_ids_are_named(copy):
    path = copy / "Lizard_Labels" / "Labels" / "consep_1.mat"
    mat = loadmat(path)
    inst_map = mat["inst_map"].astype(np.float64)
    inst_map[0, 0] = np.nan  # would become INT_MIN, then silently background
    savemat(path, {"inst_map": inst_map, "id": mat["id"], "class": mat["class"]})
    with pytest.raises(DataCheckError, match="inst_map holds non-finite values.*consep_1.mat"):
        lizard.load_datalists(copy)
    inst_map[0, 0] = -2
    savemat(path, {"inst_map": inst_map, "id": mat["id"], "class": mat["class"]})
    with pytest.raises(DataCheckError, match=r"negative instance ids \(min -2\).*consep_1.mat"):
        lizard.load_datalists(copy)


def test_an_image_cut_off_after_its_header_is_named_by_the_check_and_the_loader(copy, lists):
    image = copy / "Lizard_Images1" / "crag_1.png"
    image.write_bytes(image.read_bytes()[:-500])
    with pytest.raises(DataCheckError, match=r"unreadable image \(OSError.*\): .*crag_1.png"):
        lizard.load_datalists(copy)
    item = {"image": str(image), "seg": str(copy / "Lizard_Labels" / "Labels" / "crag_1.mat")}
    with pytest.raises(DataCheckError, match="cannot load image file .*crag_1.png"):
        for transform in lizard.loading_transforms():
            item = transform(item)
