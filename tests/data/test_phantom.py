"""The demo phantom: determinism, ranges, balance, and that its classes differ in shape, not brightness."""

from __future__ import annotations

import numpy as np
import pytest

from monai_gradprom.data.phantom import make_phantom_datalist, split_phantom


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = (make_phantom_datalist(4, 32, seed) for seed in (0, 0, 1))
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_ranges_shapes_and_balance():
    items = make_phantom_datalist(40, 48, seed=3)
    labels = [i["label"] for i in items]
    assert sum(labels) == 20
    for item in items:
        assert item["image"].shape == (1, 48, 48) and item["image"].dtype == np.float32
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert item["seg"].dtype == np.uint8 and set(np.unique(item["seg"])) == {0, 1}


def _perimeter_ratio(mask: np.ndarray) -> float:
    """Boundary pixels over sqrt(area): larger for irregular shapes."""
    m = mask[0].astype(bool)
    interior = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    boundary = m[1:-1, 1:-1].sum() - interior.sum()
    return boundary / np.sqrt(m.sum())


def test_classes_differ_in_margin_irregularity_but_not_in_mean_intensity():
    items = make_phantom_datalist(200, 64, seed=0)
    labels = np.array([i["label"] for i in items])
    ratio = np.array([_perimeter_ratio(i["seg"]) for i in items])
    assert ratio[labels == 1].mean() > 1.15 * ratio[labels == 0].mean()
    means = np.array([i["image"].mean() for i in items])
    assert abs(means[labels == 1].mean() - means[labels == 0].mean()) < 0.01


def test_splits_are_disjoint():
    splits = split_phantom(8, 4, 4, 32, seed=0)
    ids = [i["id"] for s in splits.values() for i in s]
    images = [i["image"].tobytes() for s in splits.values() for i in s]
    assert len(set(ids)) == len(ids) == 16 and len(set(images)) == 16
    with pytest.raises(NotImplementedError):
        make_phantom_datalist(1, 32, spatial_dims=3)
