"""The pretrained-VR cache records what it depends on; another data set or setting never reuses it silently, and a
file it cannot vouch for is never overwritten (issue 18, point 3)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from monai_gradprom.engines import load_network_weights, pretrain_recognizer
from monai_gradprom.engines.pretrain import RECORD_KEY, StaleRecognizerCacheError, datalist_digest
from tests.conftest import TinyClassifier, make_batches

SETTINGS = {"datalist": "abc", "seed": 0, "image_size": 16, "degradation": "gaussian:0.1"}


class NoData:
    """A data loader that fails when iterated: proves that a call loaded the cache instead of training."""

    def __iter__(self):
        raise AssertionError("pretrained although the cache fits")

    def __len__(self):
        return 1


def _pretrain(vr, ckpt, data=None, epochs=1, lr=1e-2, **settings):
    optimizer = torch.optim.Adam(vr.parameters(), lr)
    record = {**SETTINGS, **settings}
    return pretrain_recognizer(vr, make_batches(2) if data is None else data, optimizer, epochs=epochs,
                               device="cpu", checkpoint=ckpt, record=record)


def test_the_cache_records_its_settings_and_a_match_is_loaded_without_training(tmp_path):
    ckpt = tmp_path / "vr_pretrained.pt"
    trained = _pretrain(TinyClassifier(), ckpt)
    content = torch.load(ckpt, weights_only=True)
    record = content[RECORD_KEY]
    assert {k: record[k] for k in SETTINGS} == SETTINGS
    assert record["epochs"] == 1 and record["optimizer"].startswith("Adam") and '"lr": 0.01' in record["optimizer"]
    assert record["network"].startswith("TinyClassifier:") and record["task_key"] == "label"
    fresh = _pretrain(TinyClassifier(), ckpt, data=NoData())
    for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    load_network_weights(TinyClassifier(), ckpt)  # what the analysis tools and users call still reads it


@pytest.mark.parametrize("change, expected", [
    ({"seed": 3}, "seed: 0 (cache) vs 3 (this run)"),
    ({"datalist": "def"}, "datalist: 'abc' (cache) vs 'def' (this run)"),
    ({"epochs": 2}, "epochs: 1 (cache) vs 2 (this run)"),
    ({"lr": 1e-3}, "optimizer:"),
])
def test_a_cache_for_other_settings_is_pretrained_again_naming_the_differences(tmp_path, caplog, change, expected):
    ckpt = tmp_path / "vr_pretrained.pt"
    _pretrain(TinyClassifier(), ckpt)
    before = torch.load(ckpt, weights_only=True)
    caplog.set_level(logging.WARNING)
    kwargs = {k: v for k, v in change.items() if k in ("epochs", "lr")}
    settings = {k: v for k, v in change.items() if k not in kwargs}
    torch.manual_seed(1)
    _pretrain(TinyClassifier(), ckpt, **kwargs, **settings)
    assert expected in caplog.text and "pretraining VR again and replacing it" in caplog.text
    after = torch.load(ckpt, weights_only=True)
    assert after[RECORD_KEY] != before[RECORD_KEY]
    assert any(not torch.equal(after["vr_network"][k], v) for k, v in before["vr_network"].items())


def test_a_file_without_a_record_is_neither_used_nor_overwritten(tmp_path):
    ckpt = tmp_path / "vr_pretrained.pt"
    theirs = TinyClassifier()
    torch.save(theirs.state_dict(), ckpt)  # an older cache, or the user's own weights
    original = ckpt.read_bytes()
    vr = TinyClassifier()
    before = copy.deepcopy(vr.state_dict())
    with pytest.raises(StaleRecognizerCacheError, match=r"vr_pretrained.pt records no pretraining settings.*neither "
                                                        r"used nor overwritten.*--pretrain_epochs 0"):
        _pretrain(vr, ckpt, data=NoData())
    assert ckpt.read_bytes() == original
    assert all(torch.equal(before[k], v) for k, v in vr.state_dict().items())
    loaded = _pretrain(TinyClassifier(), ckpt, data=NoData(), epochs=0)  # the user vouches for it
    assert all(torch.equal(theirs.state_dict()[k], v) for k, v in loaded.state_dict().items())
    assert ckpt.read_bytes() == original


def test_datalist_digest_sees_content_order_and_names():
    import numpy as np

    a = [{"image": np.zeros((2, 2)), "label": 0}, {"image": np.ones((2, 2)), "label": 1}]
    b = copy.deepcopy(a)
    assert datalist_digest(a) == datalist_digest(b)
    b[1]["image"][0, 0] = 2
    assert datalist_digest(a) != datalist_digest(b)
    assert datalist_digest(a) != datalist_digest(a[::-1])
    assert datalist_digest([{"image": "x/1.png"}]) != datalist_digest([{"image": "x/2.png"}])
