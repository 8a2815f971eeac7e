"""The strategies benchmark's data and verdict logic (benchmarks/strategies.py): labels by hand, disjoint
train / test slices, and the paired-seed verdicts that docs/results.md is written from."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "strategies.py"
spec = importlib.util.spec_from_file_location("strategies_benchmark", PATH)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


def test_band_split_keeps_a_gap_between_train_and_test():
    train, test = bench.band_split(100, 10, 90, train=10, gap=4, test=4)
    assert set(train).isdisjoint(test) and min(train) == 10 and max(train + test) < 90
    assert train[:10] == list(range(10, 20)) and test[:4] == [24, 25, 26, 27]
    assert min(abs(a - b) for a in train for b in test) == 5  # gap 4: at least 4 slices between them


def test_segmentation_labels_by_hand():
    t1 = np.array([0.0, 0.5, 0.5, 0.5, 0.5])
    gm = np.array([0.9, 0.6, 0.2, 0.3, 0.5])
    wm = np.array([0.0, 0.3, 0.7, 0.2, 0.5])
    # outside the head, grey matter, white matter, neither above 0.5 = other, a GM = WM tie goes to white matter
    assert bench.segmentation_labels(t1, gm, wm).tolist() == [0, 1, 2, 3, 2]


def test_wm_share_and_diagnosis_labels():
    seg = np.array([[0, 1, 2, 2], [0, 0, 3, 2]])
    assert bench.wm_share(seg) == pytest.approx(3 / 5)
    crops = [{"seg": seg}, {"seg": np.zeros((2, 2), dtype=int)}]
    assert [c["label"] for c in bench.add_diagnosis_labels(crops, threshold=0.5)] == [1, 0]


def test_sample_crops_respects_tissue_share_and_size():
    image = np.zeros((20, 20), dtype=np.float32)
    seg = np.zeros((20, 20), dtype=np.int64)
    seg[:, 10:] = 1
    crops = bench.sample_crops([{"image": image, "seg": seg, "plane": "axial", "index": 3}], 6, 8, seed=0,
                               min_tissue=0.5)
    assert len(crops) == 6
    for c in crops:
        assert c["image"].shape == (1, 8, 8) and (c["seg"] > 0).mean() >= 0.5
    with pytest.raises(ValueError, match="at least 32 pixels"):
        bench.sample_crops([{"image": image, "seg": seg, "plane": "axial", "index": 3}], 1, 32, seed=0)


def test_verdicts_and_paired_differences():
    assert bench._verdict([0.1, 0.2, 0.05]) == "holds"
    assert bench._verdict([-0.1, -0.2]) == "reversed"
    assert bench._verdict([0.1, -0.2]) == "mixed"
    assert bench._verdict([0.0, 0.0]) == "equal"
    a = {0: {"psnr": 30.0}, 1: {"psnr": 31.0}, 2: {"psnr": 29.0}}
    b = {0: {"psnr": 29.0}, 1: {"psnr": 31.5}}
    assert bench._paired(a, b, "psnr") == [1.0, -0.5]  # seeds present in both only
    mean, std = bench._mean_std([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert math.isnan(bench._mean_std([])[0]) and bench._fmt([], 2) == "-"
