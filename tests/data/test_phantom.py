"""The demo phantom: determinism, ranges, balance, lesions inside the organ, and classes that differ in shape and
texture but not in brightness or size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from monai_gradprom.data.phantom import make_phantom, make_phantom_datalist, split_phantom


@pytest.fixture(scope="module")
def items():
    return make_phantom_datalist(200, 64, seed=0)


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = (make_phantom_datalist(4, 32, seed) for seed in (0, 0, 1))
    for x, y in zip(a, b):
        assert np.array_equal(x["image"], y["image"]) and np.array_equal(x["seg"], y["seg"])
        assert x["label"] == y["label"] and x["id"] == y["id"]
    assert not any(np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))


def test_ranges_shapes_dtypes_and_balance(items):
    labels = [i["label"] for i in items]
    assert sum(labels) == 100 and set(labels) == {0, 1}
    assert len({i["id"] for i in items}) == 200
    for item in items:
        assert item["image"].shape == item["seg"].shape == (1, 64, 64)
        assert item["image"].dtype == np.float32 and item["seg"].dtype == np.uint8
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert set(np.unique(item["seg"])) == {0, 1}
    odd = [i["label"] for i in make_phantom_datalist(7, 32, seed=2)]
    assert sum(odd) in (3, 4)


@pytest.mark.parametrize("spatial_dims, size, count", [(2, 48, 200), (3, 24, 8)])
def test_lesion_is_non_empty_and_inside_the_organ(spatial_dims, size, count):
    rng = np.random.default_rng(7)
    for k in range(count):
        image, mask, organ = make_phantom(rng, size, k % 2, spatial_dims, return_organ=True)
        assert image.shape == mask.shape == organ.shape == (size,) * spatial_dims
        assert mask.sum() >= 4
        assert not np.any(mask.astype(bool) & ~organ)
        assert image[organ].mean() > 0.3 > image[~organ].mean()  # bright organ on a dark background


def _irregularity(mask: np.ndarray) -> float:
    """Boundary pixels over sqrt(area): about 3.5 for a disc, larger for irregular outlines."""
    m = mask[0].astype(bool)
    return (m & ~ndimage.binary_erosion(m)).sum() / np.sqrt(m.sum())


def _interior_std(item: dict) -> float:
    inner = ndimage.binary_erosion(item["seg"][0].astype(bool), iterations=2)
    return float(item["image"][0][inner].std()) if inner.sum() > 4 else np.nan


def test_classes_differ_in_margin_and_texture(items):
    labels = np.array([i["label"] for i in items])
    irregular = np.array([_irregularity(i["seg"]) for i in items])
    assert irregular[labels == 1].mean() > 1.15 * irregular[labels == 0].mean()
    texture = np.array([_interior_std(i) for i in items])
    assert np.nanmean(texture[labels == 1]) > 3 * np.nanmean(texture[labels == 0])


def test_classes_do_not_differ_in_mean_intensity_or_lesion_size(items):
    labels = np.array([i["label"] for i in items])
    means = np.array([i["image"].mean() for i in items])
    assert abs(means[labels == 1].mean() - means[labels == 0].mean()) < 0.01
    area = np.array([i["seg"].sum() for i in items])
    assert 0.85 < area[labels == 1].mean() / area[labels == 0].mean() < 1.15


def test_splits_come_from_disjoint_seeds():
    splits = split_phantom(8, 4, 4, 32, seed=0)
    assert [len(splits[k]) for k in ("training", "validation", "test")] == [8, 4, 4]
    ids = [i["id"] for s in splits.values() for i in s]
    images = [i["image"].tobytes() for s in splits.values() for i in s]
    assert len(set(ids)) == len(ids) == 16 and len(set(images)) == 16


def test_3d_variant_and_bad_arguments():
    volumes = split_phantom(2, 1, 1, 24, seed=0, spatial_dims=3)["training"]
    assert [v["image"].shape for v in volumes] == [(1, 24, 24, 24)] * 2
    assert sorted(v["label"] for v in volumes) == [0, 1]
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got 4"):
        make_phantom_datalist(1, 32, spatial_dims=4)
    with pytest.raises(ValueError, match="image_size"):
        make_phantom_datalist(1, 8)
