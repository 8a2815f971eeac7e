"""Recognition losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from monai_gradprom.losses import SoftmaxKLLoss, SoftmaxL2Loss, default_vr_loss


def test_softmax_l2_is_the_ra_codes_mse_on_softmaxes():
    # sample 1: softmax(0, 0) = (0.5, 0.5), softmax(ln 3, 0) = (0.75, 0.25): squared differences 0.0625, 0.0625
    # sample 2: identical outputs: 0. Mean over classes and samples: 0.125 / 4 = 0.03125 (a sum over classes
    # would give 0.0625: twice as large with 2 classes, K times with K)
    prediction = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [1.0, 2.0]])
    loss = SoftmaxL2Loss()(prediction, teacher)
    assert float(loss) == pytest.approx(0.03125, abs=1e-7)
    # Transferable_RA train.py (ra_unsupervised): nn.MSELoss()(Softmax(output), Softmax(teacher))
    reference = torch.nn.MSELoss()(prediction.softmax(1), teacher.softmax(1))
    assert float(loss) == pytest.approx(float(reference), abs=1e-7)


def test_softmax_l2_averages_over_classes_for_a_segmenter_too():
    # 4 classes, uniform prediction (0.25 each) against a teacher certain of class 0 (softmax ~ (1, 0, 0, 0)):
    # squared differences 0.5625, 0.0625, 0.0625, 0.0625 -> mean 0.1875 at every pixel
    prediction = torch.zeros(2, 4, 3, 3)
    teacher = torch.zeros(2, 4, 3, 3)
    teacher[:, 0] = 100.0
    assert float(SoftmaxL2Loss()(prediction, teacher)) == pytest.approx(0.1875, abs=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        SoftmaxL2Loss()(prediction, teacher[:, :3])


def test_softmax_kl_and_default_unsupervised_loss():
    prediction = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    # KL((0.75, 0.25) || (0.5, 0.5)) = 0.75 ln 1.5 + 0.25 ln 0.5
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert float(SoftmaxKLLoss()(prediction, teacher)) == pytest.approx(expected, abs=1e-6)
    assert isinstance(default_vr_loss("seg", "unsupervised"), SoftmaxL2Loss)
    assert isinstance(default_vr_loss("label", "unsupervised", "kl"), SoftmaxKLLoss)
