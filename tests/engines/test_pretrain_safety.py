"""A non-finite recognizer is never saved as the pretrained cache, nor reused from it (issue 14, point 3)."""

from __future__ import annotations

import copy

import pytest
import torch

from monai_gradprom.engines import load_network_weights, pretrain_recognizer
from monai_gradprom.engines.pretrain import NonFiniteWeightsError, non_finite_tensors
from tests.conftest import TinyClassifier, make_batches


def test_pretraining_on_nan_pixels_refuses_to_save_the_result(tmp_path):
    batches = make_batches(2)
    batches[1]["target"][0, 0, 3, 5] = float("nan")  # one bad pixel poisons conv weights and BatchNorm statistics
    ckpt = tmp_path / "vr_pretrained.pt"
    vr = TinyClassifier()
    with pytest.raises(NonFiniteWeightsError, match=r"NaN / Inf in \d+ of \d+ tensors .*nothing was saved to "
                                                    r".*vr_pretrained.pt.*non-finite pixels"):
        pretrain_recognizer(vr, batches, torch.optim.SGD(vr.parameters(), 0.1), epochs=1, device="cpu",
                            checkpoint=ckpt)
    assert not ckpt.exists() and list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_a_cached_checkpoint_with_nan_is_refused_naming_it_and_how_to_clear_it(tmp_path):
    poisoned = TinyClassifier()
    with torch.no_grad():
        poisoned.fc.weight[0, 0] = float("inf")
    ckpt = tmp_path / "vr_pretrained.pt"
    torch.save(poisoned.state_dict(), ckpt)
    vr = TinyClassifier()
    before = copy.deepcopy(vr.state_dict())
    with pytest.raises(NonFiniteWeightsError, match=r"vr_pretrained.pt holds NaN / Inf in 1 of \d+ tensors "
                                                    r"\(fc.weight\).*delete .*vr_pretrained.pt to train it again"):
        pretrain_recognizer(vr, make_batches(1), torch.optim.SGD(vr.parameters(), 0.1), epochs=1, device="cpu",
                            checkpoint=ckpt)
    assert all(torch.equal(before[k], v) for k, v in vr.state_dict().items())  # nothing was loaded
    assert ckpt.is_file()  # the user's file is theirs to delete
    with pytest.raises(NonFiniteWeightsError, match="vr_pretrained.pt"):  # the analysis tools' loader too
        load_network_weights(TinyClassifier(), ckpt)


def test_finite_weights_pass_and_integer_buffers_are_not_inspected():
    state = TinyClassifier().state_dict()
    assert non_finite_tensors(state) == []
    assert state["bn.num_batches_tracked"].dtype == torch.int64  # isfinite would be pointless on it
    state["bn.running_var"] = torch.tensor([1.0, float("nan"), 1.0, 1.0])
    assert non_finite_tensors(state) == ["bn.running_var"]
