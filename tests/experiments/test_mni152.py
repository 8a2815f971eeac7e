"""The MNI152 data source of the comparison: labels by hand, disjoint slice bands, crops with enough tissue,
and the datalists from the template that ships inside nilearn."""

from __future__ import annotations

import numpy as np
import pytest

from monai_gradprom.experiments import mni152 as mni


def test_band_split_keeps_a_gap_between_train_and_test():
    train, test = mni.band_split(100, 10, 90, train=10, gap=4, test=4)
    assert set(train).isdisjoint(test) and min(train) == 10 and max(train + test) < 90
    assert train[:10] == list(range(10, 20)) and test[:4] == [24, 25, 26, 27]
    assert min(abs(a - b) for a in train for b in test) == 5  # gap 4: at least 4 slices between them


def test_segmentation_labels_by_hand():
    t1 = np.array([0.0, 0.5, 0.5, 0.5, 0.5])
    gm = np.array([0.9, 0.6, 0.2, 0.3, 0.5])
    wm = np.array([0.0, 0.3, 0.7, 0.2, 0.5])
    # outside the head, grey matter, white matter, neither above 0.5 = other, a GM = WM tie goes to white matter
    assert mni.segmentation_labels(t1, gm, wm).tolist() == [0, 1, 2, 3, 2]


def test_wm_share_and_diagnosis_labels():
    seg = np.array([[0, 1, 2, 2], [0, 0, 3, 2]])
    assert mni.wm_share(seg) == pytest.approx(3 / 5)
    crops = [{"seg": seg}, {"seg": np.zeros((2, 2), dtype=int)}]
    assert [c["label"] for c in mni.add_diagnosis_labels(crops, threshold=0.5)] == [1, 0]


def test_sample_crops_respects_tissue_share_and_size():
    image = np.zeros((20, 20), dtype=np.float32)
    seg = np.zeros((20, 20), dtype=np.int64)
    seg[:, 10:] = 1
    crops = mni.sample_crops([{"image": image, "seg": seg, "plane": "axial", "index": 3}], 6, 8, seed=0,
                               min_tissue=0.5)
    assert len(crops) == 6
    for c in crops:
        assert c["image"].shape == (1, 8, 8) and (c["seg"] > 0).mean() >= 0.5
    with pytest.raises(ValueError, match="at least 32 pixels"):
        mni.sample_crops([{"image": image, "seg": seg, "plane": "axial", "index": 3}], 1, 32, seed=0)


def test_validation_and_test_slices_come_from_disjoint_bands():
    slices = [{"plane": "axial", "index": i} for i in range(0, 72, 2)] + [{"plane": "coronal", "index": 5}]
    val, test = mni._split_slices(slices)
    assert len(val) + len(test) == len(slices)
    assert {(s["plane"], s["index"] // 18) for s in val}.isdisjoint({(s["plane"], s["index"] // 18) for s in test})


@pytest.mark.slow
def test_datalists_from_the_shipped_template():
    pytest.importorskip("nilearn")
    lists = mni.datalists(crop=32, num_train=8, num_val=4, num_test=4, mm=3.0)
    assert [len(lists[k]) for k in ("training", "validation", "test")] == [8, 4, 4]
    item = lists["training"][0]
    assert item["image"].shape == (1, 32, 32) and item["seg"].shape == (1, 32, 32) and item["label"] in (0, 1)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0


def test_source_configs_resolve_in_a_fresh_process():
    """A spawned worker imports only what it needs: the sources' ``$monai_gradprom.experiments.mni152...``
    expressions must resolve there too (a `compare --bundle mni152 --jobs 2` once died on this)."""
    import subprocess
    import sys

    code = ("import monai_gradprom.experiments.data, monai_gradprom;"
            "print(monai_gradprom.experiments.mni152.datalists.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "datalists"
