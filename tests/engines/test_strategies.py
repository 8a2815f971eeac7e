"""What each strategy does to IP's and VR's parameters in one step, checked against hand-computed gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from monai_gradprom.engines import GradPromTrainer
from monai_gradprom.gradients import cosine
from tests.conftest import NoBNClassifier, TinyClassifier, TinyIP, TinySegmenter, make_batches

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


@pytest.mark.parametrize("lam", [LAM, 0.0])
def test_joint_trains_vr_on_its_own_unscaled_loss_and_ip_on_the_joint_objective(lam):
    """GradProm paper Eq. 6: VR gets grad L_VR (not lam x grad L_VR), also when lam = 0."""
    torch.manual_seed(2)
    ip, vr = TinyIP(), NoBNClassifier()
    batch = make_batches(1, seed=4)[0]
    ip_c, vr_c = copy.deepcopy(ip), copy.deepcopy(vr).train()
    enhanced = ip_c(batch["image"])
    loss_ip = torch.nn.functional.mse_loss(enhanced, batch["target"])
    loss_vr = torch.nn.functional.cross_entropy(vr_c(enhanced), batch["label"])
    g_vr_own = torch.autograd.grad(loss_vr, list(vr_c.parameters()), retain_graph=True)
    g_ip = torch.autograd.grad(loss_ip + lam * loss_vr, list(ip_c.parameters()))
    trained_ip, trained_vr, _, _ = _one_step("joint", ip, vr, batch, lam=lam)
    _assert_same(_params(trained_vr), [p - LR * g for p, g in zip(_params(vr), g_vr_own)], atol=1e-6)
    _assert_same(_params(trained_ip), [p - LR * g for p, g in zip(_params(ip), g_ip)], atol=1e-6)
    assert _differs(_params(trained_vr), _params(vr))


# -- smoothed gate (cos_ema) -----------------------------------------------------------------------------------
# b = 0.5 and minibatch cosines 0.8, -0.2, -0.4, 0.1, by hand (ema_0 = 0, corrected = ema_t / (1 - b^t)):
#   t=1: ema = 0.4                      corrected 0.4 / 0.5       =  0.8
#   t=2: ema = 0.2 - 0.1 = 0.1          corrected 0.1 / 0.75      =  0.13333  (raw -0.2 would shut the gate)
#   t=3: ema = 0.05 - 0.2 = -0.15       corrected -0.15 / 0.875   = -0.171429
#   t=4: ema = -0.075 + 0.05 = -0.025   corrected -0.025 / 0.9375 = -0.026667 (raw 0.1 would open it)
EMA_COSINES = [0.8, -0.2, -0.4, 0.1]
EMA_SMOOTHED = [0.8, 0.1 / 0.75, -0.15 / 0.875, -0.025 / 0.9375]


def _unit_terms(cos: float):
    """G_IP = (1, 0), G_VR = 2 (cos, sin): their cosine is ``cos``."""
    from monai_gradprom.strategies import GradientTerms

    sin = (1 - cos * cos) ** 0.5
    return GradientTerms(ip=[torch.tensor([1.0, 0.0])], ip_aux={"label": [2 * torch.tensor([cos, sin])]})


def _apply(strategy, cos: float):
    from monai_gradprom.strategies import StepContext

    param = torch.nn.Parameter(torch.zeros(2))
    ctx = StepContext(ip_params=[param], loss_ip=torch.zeros(()), lam=strategy.lam)
    stats = strategy.apply(_unit_terms(cos), ctx)
    return param.grad, stats


@pytest.mark.parametrize("gate", ["hard", "soft"])
def test_smoothed_gate_follows_the_hand_computed_average(gate):
    from monai_gradprom.strategies import build_strategy

    strategy = build_strategy("gradprom", lam=0.5, gate=gate, options={"cos_ema": 0.5})
    for cos, smoothed in zip(EMA_COSINES, EMA_SMOOTHED):
        weight = float(smoothed >= 0) if gate == "hard" else max(0.0, smoothed)
        grad, stats = _apply(strategy, cos)
        sin = (1 - cos * cos) ** 0.5
        torch.testing.assert_close(grad, torch.tensor([1 + 0.5 * weight * 2 * cos, 0.5 * weight * 2 * sin]))
        assert float(stats["cos"]) == pytest.approx(cos, abs=1e-6)  # the logged cos stays the raw one
        assert float(stats["cos_smoothed"]) == pytest.approx(smoothed, abs=1e-6)
        assert float(stats["gate"]) == pytest.approx(weight, abs=1e-6)


def test_smoothed_gate_resumes_exactly_from_its_state_dict():
    from monai_gradprom.strategies import GradPromStrategy

    whole = GradPromStrategy(lam=0.5, cos_ema=0.5)
    first = GradPromStrategy(lam=0.5, cos_ema=0.5)
    for cos in EMA_COSINES[:2]:
        _apply(whole, cos)
        _apply(first, cos)
    saved = copy.deepcopy(first.state_dict())
    resumed = GradPromStrategy(lam=0.5, cos_ema=0.5)
    resumed.load_state_dict(saved)
    fresh = GradPromStrategy(lam=0.5, cos_ema=0.5)
    for cos in EMA_COSINES[2:]:
        _, expected = _apply(whole, cos)
        _, got = _apply(resumed, cos)
        _, restarted = _apply(fresh, cos)
        assert float(got["cos_smoothed"]) == float(expected["cos_smoothed"])
    assert float(restarted["cos_smoothed"]) != pytest.approx(float(expected["cos_smoothed"]))
    with pytest.raises(ValueError, match="cos_ema"):
        GradPromStrategy(cos_ema=0.9).load_state_dict(saved)


def test_cos_ema_option_reaches_the_trainer_and_its_checkpoint():
    ip, vr = TinyIP(), TinyClassifier()
    trainer = GradPromTrainer("cpu", 1, make_batches(2), ip, torch.optim.SGD(ip.parameters(), LR), vr,
                              torch.optim.SGD(vr.parameters(), LR), strategy="gradprom",
                              strategy_options={"cos_ema": 0.9})
    trainer.run()
    out = trainer.state.output
    assert "cos_smoothed" in out and float(out["gate"]) == float(out["cos_smoothed"] >= 0)
    assert trainer.checkpoint_dict()["strategy"] is trainer.strategy
    assert float(trainer.strategy.state_dict()["ema_norm"]) == pytest.approx(1 - 0.9**2)  # two steps
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="cos_ema"):
            GradPromTrainer("cpu", 1, make_batches(1), ip, torch.optim.SGD(ip.parameters(), LR), vr,
                            torch.optim.SGD(vr.parameters(), LR), strategy="gradprom",
                            strategy_options={"cos_ema": bad})


def test_smoothed_gate_decides_each_task_on_its_own_average():
    from monai_gradprom.strategies import GradientTerms, GradPromStrategy, StepContext

    strategy = GradPromStrategy(lam=1.0, cos_ema=0.5)
    for cos_a, cos_b in ((0.8, -0.8), (-0.2, 0.2)):  # task a's average stays >= 0, task b's stays < 0
        param = torch.nn.Parameter(torch.zeros(2))
        terms = GradientTerms(ip=[torch.tensor([1.0, 0.0])],
                              ip_aux={t: [torch.tensor([c, (1 - c * c) ** 0.5])]
                                      for t, c in (("a", cos_a), ("b", cos_b))})
        stats = strategy.apply(terms, StepContext(ip_params=[param], loss_ip=torch.zeros(()), lam=1.0))
        assert float(stats["gate_a"]) == 1.0 and float(stats["gate_b"]) == 0.0
    assert float(stats["cos_smoothed_a"]) == pytest.approx((0.5 * 0.4 - 0.5 * 0.2) / 0.75)
    assert float(stats["cos_a"]) == pytest.approx(-0.2)


def test_a_non_finite_cosine_leaves_the_average_as_it_was():
    """An AMP overflow step (skipped by the scaler) must not poison the average: the sequence with a NaN
    inserted gives the same smoothed values as the sequence without it."""
    from monai_gradprom.strategies import GradPromStrategy

    clean, with_nan = GradPromStrategy(lam=0.5, cos_ema=0.5), GradPromStrategy(lam=0.5, cos_ema=0.5)
    first = with_nan.smooth(torch.tensor([float("nan")]))
    assert torch.isnan(first).all()  # nothing to average yet: the raw value passes (the hard gate shuts)
    for i, (cos, smoothed) in enumerate(zip(EMA_COSINES, EMA_SMOOTHED)):
        assert float(clean.smooth(torch.tensor([cos]))) == pytest.approx(smoothed, abs=1e-6)
        assert float(with_nan.smooth(torch.tensor([cos]))) == pytest.approx(smoothed, abs=1e-6)
        if i == 1:
            assert float(with_nan.smooth(torch.tensor([float("inf")]))) == pytest.approx(smoothed, abs=1e-6)
