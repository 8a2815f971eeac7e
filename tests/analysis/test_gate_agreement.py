"""gate_sign_agreement on cases with known answers.

IP is ``a * x`` (one parameter, so every cosine is +1 or -1), L_IP = mean((a x)^2) (dL/da = 2 a v^2 > 0 on
images of constant value v) and VR is a fixed ``w * y`` with L_VR = mean(k * VR(IP(x))), k read from the
batch's ``label``: dL_VR/da = k w v, so a batch's cosine is sign(k).
"""

from __future__ import annotations

import copy

import pytest
import torch

from monai_gradprom.analysis.gate_agreement import gate_sign_agreement
from monai_gradprom.engines import GradPromTrainer
from monai_gradprom.gradients import cosine
from tests.conftest import TinyClassifier, TinyIP, make_batches
from tests.engines.test_calibration import Scale


def k_weighted_mean(prediction, k):
    return (k.float().reshape(-1, 1, 1, 1) * prediction).mean()


def _batch(v: float, k: float) -> dict:
    return {"image": torch.full((2, 1, 2, 2), v), "target": torch.zeros(2, 1, 2, 2), "label": torch.full((2,), k)}


def _trainer(ip=None, vr=None, **kwargs):
    ip = ip if ip is not None else Scale(1.0)
    vr = vr if vr is not None else Scale(1.0)
    return GradPromTrainer("cpu", 1, [], ip, torch.optim.SGD(ip.parameters(), 0.1), vr,
                           torch.optim.SGD(vr.parameters(), 0.1), strategy="gradprom", **kwargs)


def test_agreement_with_the_summed_gradient_reference():
    trainer = _trainer(vr_loss_function=k_weighted_mean)
    # G_VR per batch: +1, +1, -1, +2 (k v); summed: +3, same sign as the summed G_IP: reference cos = +1
    batches = [_batch(1, 1), _batch(1, 1), _batch(1, -1), _batch(2, 1)]
    out = gate_sign_agreement(trainer, batches)
    assert out["cosines"] == pytest.approx([1.0, 1.0, -1.0, 1.0])
    assert out["reference_cos"] == pytest.approx(1.0)
    assert out["agreement"] == 0.75 and out["median_abs_cos"] == pytest.approx(1.0) and out["n_batches"] == 4
    # a reference that points the other way: G_VR summed = -3 (k = -3): only the one negative batch agrees
    out = gate_sign_agreement(trainer, batches, reference_batches=[_batch(1, -3)])
    assert out["reference_cos"] == pytest.approx(-1.0) and out["agreement"] == 0.25


def test_cosines_match_hand_gradients_and_nothing_changes():
    torch.manual_seed(0)
    ip, vr = TinyIP(), TinyClassifier()
    trainer = _trainer(ip, vr)
    batches = make_batches(3, seed=11)
    state = copy.deepcopy({**ip.state_dict(), **{f"vr.{k}": v for k, v in vr.state_dict().items()}})
    out = gate_sign_agreement(trainer, batches)
    expected, sum_ip, sum_vr = [], None, None
    for batch in batches:
        ip_c, vr_c = copy.deepcopy(ip).train(), copy.deepcopy(vr).train()
        enhanced = ip_c(batch["image"])
        params = list(ip_c.parameters())
        g_ip = torch.autograd.grad(torch.nn.functional.mse_loss(enhanced, batch["target"]), params, retain_graph=True)
        g_vr = torch.autograd.grad(torch.nn.functional.cross_entropy(vr_c(enhanced), batch["label"]), params)
        expected.append(float(cosine(g_ip, g_vr)))
        sum_ip = list(g_ip) if sum_ip is None else [a + b for a, b in zip(sum_ip, g_ip)]
        sum_vr = list(g_vr) if sum_vr is None else [a + b for a, b in zip(sum_vr, g_vr)]
    assert out["cosines"] == pytest.approx(expected, abs=1e-5)
    assert out["reference_cos"] == pytest.approx(float(cosine(sum_ip, sum_vr)), abs=1e-5)
    assert out["median_abs_cos"] == pytest.approx(sorted(abs(c) for c in expected)[1], abs=1e-5)
    reference_open = out["reference_cos"] >= 0
    assert out["agreement"] == pytest.approx(sum((c >= 0) == reference_open for c in expected) / 3)
    after = {**ip.state_dict(), **{f"vr.{k}": v for k, v in vr.state_dict().items()}}
    for key, value in state.items():
        assert torch.equal(value, after[key]), key  # parameters and BatchNorm statistics untouched


def test_empty_batches_are_refused():
    trainer = _trainer(vr_loss_function=k_weighted_mean)
    with pytest.raises(ValueError, match="at least one batch"):
        gate_sign_agreement(trainer, [])
    with pytest.raises(ValueError, match="reference_batches is empty"):
        gate_sign_agreement(trainer, [_batch(1, 1)], reference_batches=[])
