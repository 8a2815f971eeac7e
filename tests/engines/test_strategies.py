"""What each strategy does to IP's and VR's parameters in one step, checked against hand-computed gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from monai_gradprom.engines import GradPromTrainer
from monai_gradprom.gradients import cosine
from tests.conftest import TinyClassifier, TinyIP, TinySegmenter, make_batches

LR = 0.1
LAM = 0.5


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _one_step(strategy, ip, vr, batch, gate="hard", lam=LAM, transformer=None, **kwargs):
    """Run one trainer iteration on copies of ip / vr with SGD; return the trained copies and the output."""
    ip, vr = copy.deepcopy(ip), copy.deepcopy(vr)
    t = copy.deepcopy(transformer) if transformer is not None else None
    trainer = GradPromTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=[batch],
        ip_network=ip,
        ip_optimizer=torch.optim.SGD(ip.parameters(), lr=LR),
        vr_network=vr,
        vr_optimizer=torch.optim.SGD(vr.parameters(), lr=LR),
        strategy=strategy,
        lam=lam,
        gate=gate,
        transformer_network=t,
        transformer_optimizer=torch.optim.SGD(t.parameters(), lr=LR) if t is not None else None,
        **kwargs,
    )
    trainer.run()
    return ip, vr, t, trainer.state.output


def _hand_gradients(ip, vr, batch):
    """G_IP and G_VR w.r.t. IP's parameters by two plain autograd.grad calls (VR in train mode)."""
    ip, vr = copy.deepcopy(ip), copy.deepcopy(vr)
    vr.train()
    enhanced = ip(batch["image"])
    loss_ip = torch.nn.functional.mse_loss(enhanced, batch["target"])
    loss_vr = torch.nn.functional.cross_entropy(vr(enhanced), batch["label"])
    params = list(ip.parameters())
    g_ip = torch.autograd.grad(loss_ip, params, retain_graph=True)
    g_vr = torch.autograd.grad(loss_vr, params)
    return list(g_ip), list(g_vr)


def _find_batches_with_both_signs():
    """Deterministic search for one batch with cos < 0 and one with cos >= 0 for the same networks."""
    torch.manual_seed(0)
    ip, vr = TinyIP(), TinyClassifier()
    negative = positive = None
    for seed in range(200):
        batch = make_batches(1, seed=seed)[0]
        g_ip, g_vr = _hand_gradients(ip, vr, batch)
        cos = float(cosine(g_ip, g_vr))
        if cos < -0.05 and negative is None:
            negative = batch
        if cos > 0.05 and positive is None:
            positive = batch
        if negative is not None and positive is not None:
            return ip, vr, negative, positive
    pytest.fail("no batch with both cosine signs found")


def _assert_same(a, b, atol=1e-6):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


def _differs(a, b):
    return any(not torch.allclose(x, y) for x, y in zip(a, b))


def test_gradprom_equals_plain_when_cosine_negative_and_joint_otherwise():
    ip, vr, negative, positive = _find_batches_with_both_signs()
    for batch, expected in ((negative, "plain"), (positive, "joint")):
        gp_ip, _, _, out = _one_step("gradprom", ip, vr, batch)
        ref_ip, _, _, _ = _one_step(expected, ip, vr, batch)
        other_ip, _, _, _ = _one_step("joint" if expected == "plain" else "plain", ip, vr, batch)
        _assert_same(_params(gp_ip), _params(ref_ip))
        assert _differs(_params(gp_ip), _params(other_ip)), "the two references must differ for the test to mean anything"
        assert float(out["gate"]) == (0.0 if expected == "plain" else 1.0)


def test_soft_gate_scales_recognition_gradient_by_positive_cosine():
    ip, vr, negative, positive = _find_batches_with_both_signs()
    for batch in (negative, positive):
        g_ip, g_vr = _hand_gradients(ip, vr, batch)
        cos = float(cosine(g_ip, g_vr))
        weight = max(0.0, cos)
        expected = [p - LR * (a + LAM * weight * b) for p, a, b in zip(_params(ip), g_ip, g_vr)]
        trained, _, _, out = _one_step("gradprom", ip, vr, batch, gate="soft")
        _assert_same(_params(trained), expected, atol=1e-6)
        assert float(out["gate"]) == pytest.approx(weight, abs=1e-6)


def test_logged_cosine_equals_hand_computed_cosine():
    ip, vr, negative, positive = _find_batches_with_both_signs()
    for batch in (negative, positive):
        g_ip, g_vr = _hand_gradients(ip, vr, batch)
        flat_ip = torch.cat([g.reshape(-1) for g in g_ip])
        flat_vr = torch.cat([g.reshape(-1) for g in g_vr])
        by_hand = float(flat_ip @ flat_vr / (flat_ip.norm() * flat_vr.norm()))
        _, _, _, out = _one_step("gradprom", ip, vr, batch)
        assert float(out["cos"]) == pytest.approx(by_hand, abs=1e-5)


def test_gradprom_trains_vr_on_its_own_unscaled_loss():
    ip, vr, _, positive = _find_batches_with_both_signs()
    vr_copy = copy.deepcopy(vr).train()
    enhanced = ip(positive["image"]).detach()
    loss = torch.nn.functional.cross_entropy(vr_copy(enhanced), positive["label"])
    grads = torch.autograd.grad(loss, list(vr_copy.parameters()))
    expected = [p - LR * g for p, g in zip(_params(vr), grads)]
    _, trained_vr, _, _ = _one_step("gradprom", ip, vr, positive)
    _assert_same(_params(trained_vr), expected, atol=1e-6)


@pytest.mark.parametrize("strategy", ["joint", "gradprom"])
def test_joint_and_gradprom_change_vr(strategy):
    ip, vr = TinyIP(), TinyClassifier()
    batch = make_batches(1)[0]
    _, trained_vr, _, _ = _one_step(strategy, ip, vr, batch)
    assert _differs(_params(trained_vr), _params(vr))


def test_frozen_never_changes_vr_parameters_or_buffers():
    ip, vr = TinyIP(), TinyClassifier()
    before = _state(vr)
    trainer_ip, trainer_vr = copy.deepcopy(ip), copy.deepcopy(vr)
    trainer = GradPromTrainer(
        device="cpu",
        max_epochs=2,
        train_data_loader=make_batches(3),
        ip_network=trainer_ip,
        ip_optimizer=torch.optim.SGD(trainer_ip.parameters(), lr=LR),
        vr_network=trainer_vr,
        vr_optimizer=torch.optim.SGD(trainer_vr.parameters(), lr=LR),
        strategy="frozen",
        lam=LAM,
    )
    trainer.run()
    after = _state(trainer_vr)
    for key in before:
        assert torch.equal(before[key], after[key]), f"frozen strategy changed VR's {key}"
    assert _differs(_params(trainer_ip), _params(ip))


def test_frozen_ip_update_includes_recognition_gradient():
    ip, vr = TinyIP(), TinyClassifier()
    batch = make_batches(1)[0]
    vr_eval = copy.deepcopy(vr).eval()
    enhanced = ip(batch["image"])
    objective = torch.nn.functional.mse_loss(enhanced, batch["target"]) + LAM * torch.nn.functional.cross_entropy(
        vr_eval(enhanced), batch["label"]
    )
    grads = torch.autograd.grad(objective, list(ip.parameters()))
    expected = [p - LR * g for p, g in zip(_params(ip), grads)]
    trained, _, _, _ = _one_step("frozen", ip, vr, batch)
    _assert_same(_params(trained), expected)


def test_transformer_leaves_ip_update_equal_to_plain_and_trains_t_only():
    ip, vr = TinyIP(), TinyClassifier()
    transformer = TinyIP()
    batch = make_batches(1)[0]
    t_ip, t_vr, t_t, _ = _one_step("transformer", ip, vr, batch, transformer=transformer)
    plain_ip, _, _, _ = _one_step("plain", ip, vr, batch)
    _assert_same(_params(t_ip), _params(plain_ip))
    assert _differs(_params(t_t), _params(transformer))
    for key, value in _state(vr).items():
        assert torch.equal(value, _state(t_vr)[key])


def test_plain_ignores_vr_and_reports_nan_recognition_loss():
    ip, vr = TinyIP(), TinyClassifier()
    batch = make_batches(1)[0]
    trained_ip, trained_vr, _, out = _one_step("plain", ip, vr, batch)
    assert torch.isnan(out["loss_vr"])
    assert not _differs(_params(trained_vr), _params(vr))
    grads = torch.autograd.grad(torch.nn.functional.mse_loss(ip(batch["image"]), batch["target"]), list(ip.parameters()))
    _assert_same(_params(trained_ip), [p - LR * g for p, g in zip(_params(ip), grads)])


def test_pcgrad_removes_only_the_conflicting_component():
    ip, vr, negative, _ = _find_batches_with_both_signs()
    g_ip, g_vr = _hand_gradients(ip, vr, negative)
    flat_ip = torch.cat([g.reshape(-1) for g in g_ip])
    flat_vr = torch.cat([g.reshape(-1) for g in g_vr])
    coefficient = float(flat_ip @ flat_vr / (flat_ip @ flat_ip))
    expected = [p - LR * (a + LAM * (b - coefficient * a)) for p, a, b in zip(_params(ip), g_ip, g_vr)]
    trained, _, _, out = _one_step("pcgrad", ip, vr, negative)
    _assert_same(_params(trained), expected)
    assert float(out["gate"]) == 0.0


def test_multitask_gates_each_recognition_gradient_separately():
    torch.manual_seed(1)
    ip, clf, seg = TinyIP(), TinyClassifier(), TinySegmenter()
    batch = make_batches(1, seed=3)[0]
    vr = {"label": clf, "seg": seg}
    # hand computation
    ip_c, clf_c, seg_c = copy.deepcopy(ip), copy.deepcopy(clf).train(), copy.deepcopy(seg).train()
    from monai_gradprom.losses import SegmentationDiceCELoss

    enhanced = ip_c(batch["image"])
    params = list(ip_c.parameters())
    g_ip = torch.autograd.grad(torch.nn.functional.mse_loss(enhanced, batch["target"]), params, retain_graph=True)
    g_cls = torch.autograd.grad(torch.nn.functional.cross_entropy(clf_c(enhanced), batch["label"]), params, retain_graph=True)
    g_seg = torch.autograd.grad(SegmentationDiceCELoss()(seg_c(enhanced), batch["seg"]), params)
    w_cls = float(cosine(g_ip, g_cls) >= 0)
    w_seg = float(cosine(g_ip, g_seg) >= 0)
    expected = [p - LR * (a + LAM * (w_cls * b + w_seg * c)) for p, a, b, c in zip(_params(ip), g_ip, g_cls, g_seg)]

    ip_t = copy.deepcopy(ip)
    vr_t = {k: copy.deepcopy(v) for k, v in vr.items()}
    params_vr = [p for v in vr_t.values() for p in v.parameters()]
    trainer = GradPromTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=[batch],
        ip_network=ip_t,
        ip_optimizer=torch.optim.SGD(ip_t.parameters(), lr=LR),
        vr_network=vr_t,
        vr_optimizer=torch.optim.SGD(params_vr, lr=LR),
        strategy="gradprom",
        lam=LAM,
    )
    trainer.run()
    _assert_same(_params(ip_t), expected, atol=1e-6)
    out = trainer.state.output
    assert float(out["gate_label"]) == w_cls and float(out["gate_seg"]) == w_seg
