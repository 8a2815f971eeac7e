"""The public contract gradprom_combine and the gradient helpers, on hand-computed vectors."""

from __future__ import annotations

import math

import pytest
import torch

from monai_gradprom.gradients import (
    all_finite,
    cosine,
    gate_weight,
    gradprom_combine,
    gradprom_combine_,
    pcgrad_combine_,
)


def _lists():
    g_ip = [torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 0.0]])]
    g_vr_neg = [torch.tensor([-1.0, 1.0]), torch.tensor([[0.0, 1.0]])]  # dot = -1, |a| = 1, |b| = sqrt(3)
    g_vr_pos = [torch.tensor([1.0, 1.0]), torch.tensor([[0.0, 1.0]])]  # dot = +1
    return g_ip, g_vr_neg, g_vr_pos


def test_hard_gate_drops_conflicting_gradient():
    g_ip, g_vr, _ = _lists()
    combined, cos, weight = gradprom_combine(g_ip, g_vr, lam=0.5, gate="hard")
    assert float(cos) == pytest.approx(-1 / math.sqrt(3))
    assert float(weight) == 0.0
    for c, a in zip(combined, g_ip):
        torch.testing.assert_close(c, a)


def test_hard_gate_adds_aligned_gradient_times_lambda():
    g_ip, _, g_vr = _lists()
    combined, cos, weight = gradprom_combine(g_ip, g_vr, lam=0.5, gate="hard")
    assert float(cos) == pytest.approx(1 / math.sqrt(3))
    assert float(weight) == 1.0
    torch.testing.assert_close(combined[0], torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(combined[1], torch.tensor([[0.0, 0.5]]))


def test_soft_gate_weight_is_positive_part_of_cosine():
    g_ip, g_neg, g_pos = _lists()
    _, _, w_neg = gradprom_combine(g_ip, g_neg, lam=2.0, gate="soft")
    combined, cos, w_pos = gradprom_combine(g_ip, g_pos, lam=2.0, gate="soft")
    assert float(w_neg) == 0.0
    assert float(w_pos) == pytest.approx(1 / math.sqrt(3))
    torch.testing.assert_close(combined[0], torch.tensor([1.0, 0.0]) + 2.0 * float(cos) * torch.tensor([1.0, 1.0]))


def test_outputs_are_zero_dim_tensors_on_the_gradients_device_and_inputs_untouched():
    g_ip, g_vr, _ = _lists()
    before = [g.clone() for g in g_ip + g_vr]
    _, cos, weight = gradprom_combine(g_ip, g_vr, lam=1.0)
    assert cos.ndim == 0 and weight.ndim == 0
    assert cos.device == g_ip[0].device and weight.device == g_ip[0].device
    for b, g in zip(before, g_ip + g_vr):
        assert torch.equal(b, g)


def test_zero_norm_gives_zero_cosine_and_open_hard_gate():
    zeros = [torch.zeros(3)]
    other = [torch.tensor([1.0, 2.0, 3.0])]
    assert float(cosine(zeros, other)) == 0.0
    _, cos, weight = gradprom_combine(zeros, other, lam=1.0, gate="hard")
    assert float(cos) == 0.0 and float(weight) == 1.0
    _, _, soft = gradprom_combine(zeros, other, lam=1.0, gate="soft")
    assert float(soft) == 0.0


def test_bad_arguments_raise():
    g_ip, g_vr, _ = _lists()
    with pytest.raises(ValueError, match="gate"):
        gradprom_combine(g_ip, g_vr, lam=1.0, gate="medium")
    with pytest.raises(ValueError, match="shape"):
        gradprom_combine(g_ip, [torch.zeros(3), torch.zeros(1, 2)], lam=1.0)
    with pytest.raises(ValueError, match="length"):
        gradprom_combine(g_ip, g_vr[:1], lam=1.0)
    with pytest.raises(ValueError):
        gate_weight(torch.tensor(0.1), "nope")


def test_multitask_inplace_gates_each_against_original_ip_gradient():
    g_ip, g_neg, g_pos = _lists()
    target = [g.clone() for g in g_ip]
    cosines, weights = gradprom_combine_(target, [[g.clone() for g in g_neg], [g.clone() for g in g_pos]], lam=1.0)
    assert weights.tolist() == [0.0, 1.0]
    torch.testing.assert_close(target[0], torch.tensor([2.0, 1.0]))


def test_pcgrad_projection_is_orthogonal_to_ip_gradient():
    g_ip = [torch.tensor([1.0, 0.0])]
    g_vr = [torch.tensor([-1.0, 1.0])]
    target = [g_ip[0].clone()]
    _, conflicts = pcgrad_combine_(target, [[g_vr[0].clone()]], lam=1.0)
    # projection of (-1, 1) removing its component along (1, 0) is (0, 1)
    torch.testing.assert_close(target[0], torch.tensor([1.0, 1.0]))
    assert conflicts.tolist() == [1.0]


def test_all_finite_detects_nan_and_inf():
    assert bool(all_finite([torch.ones(3)], [torch.zeros(2)]))
    assert not bool(all_finite([torch.ones(3)], [torch.tensor([0.0, float("inf")])]))
    assert not bool(all_finite([torch.tensor([float("nan")])]))
