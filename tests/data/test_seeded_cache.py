"""SeededCacheDataset: evaluation samples degraded once per (seed, index), identical on every pass."""

from __future__ import annotations

import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.transforms import Compose, EnsureTyped

from monai_gradprom.data.seeded_cache import SeededCacheDataset
from monai_gradprom.engines import EnhancementEvaluator
from monai_gradprom.transforms import RandDegraded
from tests.conftest import TinyClassifier, TinyIP


def _data(n: int = 6, size: int = 16) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(1, size, size, generator=g), "label": i % 2} for i in range(n)]


def _transform() -> Compose:
    degrade = RandDegraded(keys="image", degradation="gaussian:0.2")
    return Compose([EnsureTyped(keys="image", track_meta=False), degrade])


def _two_validation_passes(dataset) -> tuple[list[torch.Tensor], list[dict]]:
    torch.manual_seed(0)
    evaluator = EnhancementEvaluator("cpu", DataLoader(dataset, batch_size=4), TinyIP(), vr_network=TinyClassifier())
    inputs, metrics = [], []
    seen: list[torch.Tensor] = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.output["image"].clone()))
    for epoch in (1, 2):
        seen.clear()
        evaluator.run(global_epoch=epoch)
        inputs.append(torch.cat(seen))
        metrics.append(dict(evaluator.state.metrics))
    return inputs, metrics


def test_two_validation_passes_see_identical_inputs_and_metrics():
    inputs, metrics = _two_validation_passes(SeededCacheDataset(_data(), _transform(), seed=3, progress=False))
    assert torch.equal(inputs[0], inputs[1])
    assert metrics[0] == metrics[1]
    # MONAI's CacheDataset redraws the noise on every pass: the check above has teeth
    redrawn, redrawn_metrics = _two_validation_passes(CacheDataset(_data(), _transform(), progress=False))
    assert not torch.equal(redrawn[0], redrawn[1])
    assert redrawn_metrics[0]["input_psnr"] != redrawn_metrics[1]["input_psnr"]


def test_sample_depends_on_seed_and_index_only():
    transform = _transform()
    state = transform.transforms[1].degradation.R.get_state()[1].copy()
    full = SeededCacheDataset(_data(), transform, seed=3, progress=False, num_workers=3)
    lazy = SeededCacheDataset(_data(), transform, seed=3, progress=False, cache_rate=0.0)  # computed on access
    other = SeededCacheDataset(_data(), transform, seed=4, progress=False)
    for i in range(len(full)):
        assert torch.equal(full[i]["image"], lazy[i]["image"]), i
        assert torch.equal(lazy[i]["image"], lazy[i]["image"]), i  # uncached, still the same draw
        assert not torch.equal(full[i]["image"], other[i]["image"]), i
        assert torch.equal(full[i]["target"], _data()[i]["image"])  # the clean copy is untouched
    noise = full[0]["image"] - full[0]["target"]
    assert 0.1 < float(noise.std()) < 0.25  # sigma 0.2, clipped to [0, 1]
    assert (transform.transforms[1].degradation.R.get_state()[1] == state).all()  # caller's transform not reseeded


def test_cached_samples_are_not_recomputed():
    calls = []

    def counting(d):
        calls.append(1)
        return d

    dataset = SeededCacheDataset(_data(3), Compose([counting, *_transform().transforms]), progress=False)
    assert len(calls) == 3
    _ = [dataset[i] for i in range(3)] + [dataset[i] for i in range(3)]
    assert len(calls) == 3

