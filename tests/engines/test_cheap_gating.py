"""The cheaper GradProm modes: their IP gradient is exactly G_IP + lam w G_VR for the weight they decide on."""

from __future__ import annotations

import copy

import pytest
import torch

from monai_gradprom.engines import GradPromTrainer
from monai_gradprom.gradients import cosine
from monai_gradprom.strategies import PeriodicGradPromStrategy, build_strategy
from tests.conftest import TinyClassifier, TinyIP, make_batches

LR = 0.1
LAM = 0.5


def _trainer(strategy, ip, vr, batches, **kwargs):
    return GradPromTrainer(
        device="cpu", max_epochs=1, train_data_loader=batches,
        ip_network=ip, ip_optimizer=torch.optim.SGD(ip.parameters(), lr=LR),
        vr_network=vr, vr_optimizer=torch.optim.SGD(vr.parameters(), lr=LR),
        strategy=strategy, lam=LAM, **kwargs,
    )


def _hand(ip, vr, batch):
    """dL/dy for both losses and G_IP, G_VR w.r.t. IP's parameters (VR in train mode), on copies."""
    ip, vr = copy.deepcopy(ip), copy.deepcopy(vr).train()
    y = ip(batch["image"])
    loss_ip = torch.nn.functional.mse_loss(y, batch["target"])
    loss_vr = torch.nn.functional.cross_entropy(vr(y), batch["label"])
    params = list(ip.parameters())
    dy_ip, dy_vr = torch.autograd.grad(loss_ip, y, retain_graph=True)[0], torch.autograd.grad(loss_vr, y, retain_graph=True)[0]
    g_ip = list(torch.autograd.grad(loss_ip, params, retain_graph=True))
    g_vr = list(torch.autograd.grad(loss_vr, params))
    return dy_ip, dy_vr, g_ip, g_vr


def _expected_ip(ip, g_ip, g_vr, weight):
    return [p.detach() - LR * (a + LAM * weight * b) for p, a, b in zip(ip.parameters(), g_ip, g_vr)]


def _assert_params(module, expected, atol=1e-6):
    for p, e in zip(module.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_image_space_gate_uses_the_output_cosine_and_gives_the_exact_combination(seed):
    torch.manual_seed(seed)
    ip, vr = TinyIP(), TinyClassifier()
    batch = make_batches(1, seed=seed)[0]
    dy_ip, dy_vr, g_ip, g_vr = _hand(ip, vr, batch)
    cos_image = torch.nn.functional.cosine_similarity(dy_ip.flatten(), dy_vr.flatten(), dim=0)
    weight = float(cos_image >= 0)
    expected = _expected_ip(ip, g_ip, g_vr, weight)

    trained_ip, trained_vr = copy.deepcopy(ip), copy.deepcopy(vr)
    trainer = _trainer("gradprom_image", trained_ip, trained_vr, [batch], strategy_options={"audit": True})
    trainer.run()
    out = trainer.state.output
    assert float(out["cos"]) == pytest.approx(float(cos_image), abs=1e-5)
    assert float(out["gate"]) == weight
    assert float(out["cos_exact"]) == pytest.approx(float(cosine(g_ip, g_vr)), abs=1e-5)
    assert float(out["gate_exact"]) == float(cosine(g_ip, g_vr) >= 0)
    _assert_params(trained_ip, expected)


def test_image_space_soft_gate_weights_by_the_output_cosine():
    torch.manual_seed(1)
    ip, vr = TinyIP(), TinyClassifier()
    batch = make_batches(1, seed=3)[0]
    dy_ip, dy_vr, g_ip, g_vr = _hand(ip, vr, batch)
    cos_image = float(torch.nn.functional.cosine_similarity(dy_ip.flatten(), dy_vr.flatten(), dim=0))
    trainer = _trainer("gradprom_image", ip, vr, [batch], gate="soft")
    expected = _expected_ip(ip, g_ip, g_vr, max(0.0, cos_image))
    trainer.run()
    assert float(trainer.state.output["gate"]) == pytest.approx(max(0.0, cos_image), abs=1e-6)
    _assert_params(ip, expected)


def test_every_k_decides_exactly_on_every_kth_step_and_reuses_the_decision_between():
    torch.manual_seed(0)
    ip, vr = TinyIP(), TinyClassifier()
    batches = make_batches(5, seed=11)
    trainer = _trainer("gradprom_every", ip, vr, batches, strategy_options={"every": 3, "audit": True})
    records = []

    @trainer.on(__import__("ignite").engine.Events.ITERATION_COMPLETED)
    def record(engine):
        out = engine.state.output
        records.append({k: float(out[k]) for k in ("cos", "gate", "gate_exact")})

    reference_ip, reference_vr = copy.deepcopy(ip), copy.deepcopy(vr)
    trainer.run()
    deciding = [r["cos"] == r["cos"] for r in records]  # cos is NaN on reused steps
    assert deciding == [True, False, False, True, False]
    for r in records:
        if r["cos"] == r["cos"]:
            assert r["gate"] == r["gate_exact"] == float(r["cos"] >= 0)
    assert records[1]["gate"] == records[2]["gate"] == records[0]["gate"]
    assert records[4]["gate"] == records[3]["gate"]

    # replay by hand: step i uses the weight decided at the last deciding step
    weight = None
    for i, batch in enumerate(batches):
        _, _, g_ip, g_vr = _hand(reference_ip, reference_vr, batch)
        if i % 3 == 0:
            weight = float(cosine(g_ip, g_vr) >= 0)
        new_ip = _expected_ip(reference_ip, g_ip, g_vr, weight)
        # VR is trained on its own loss: one SGD step of L_VR
        vr_copy = copy.deepcopy(reference_vr).train()
        loss_vr = torch.nn.functional.cross_entropy(vr_copy(reference_ip(batch["image"])), batch["label"])
        g_own = torch.autograd.grad(loss_vr, list(vr_copy.parameters()))
        with torch.no_grad():
            for p, q, g in zip(reference_vr.parameters(), vr_copy.parameters(), g_own):
                p.copy_(q - LR * g)
            for b, c in zip(reference_vr.buffers(), vr_copy.buffers()):
                b.copy_(c)
            for p, e in zip(reference_ip.parameters(), new_ip):
                p.copy_(e)
    _assert_params(ip, list(reference_ip.parameters()), atol=1e-5)


def test_every_k_state_round_trips_and_goes_into_checkpoints():
    strategy = build_strategy("gradprom_every", lam=0.1, options={"every": 4})
    assert isinstance(strategy, PeriodicGradPromStrategy)
    strategy.load_state_dict({"steps": 6, "weights": torch.tensor([0.0])})
    state = strategy.state_dict()
    assert state["steps"] == 6 and state["weights"].tolist() == [0.0]
    assert not strategy._deciding()  # step 6 of every 4 reuses; step 8 decides
    strategy._steps = 8
    assert strategy._deciding()
    ip, vr = TinyIP(), TinyClassifier()
    trainer = _trainer(strategy, ip, vr, make_batches(1))
    assert trainer.checkpoint_dict()["strategy"] is strategy
    assert "strategy" not in _trainer("gradprom", ip, vr, make_batches(1)).checkpoint_dict()


@pytest.mark.parametrize(
    "name, options, fragment",
    [
        ("gradprom_every", {"every": 0}, "every must be a positive integer"),
        ("gradprom_every", {"evry": 2}, "invalid strategy_options {'evry': 2} for strategy 'gradprom_every'"),
        ("gradprom_image", {"every": 2}, "invalid strategy_options"),
        ("gradprom_every", {"gate": "half"}, "invalid strategy_options"),
    ],
)
def test_bad_strategy_options_are_named(name, options, fragment):
    with pytest.raises(ValueError, match=fragment.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        build_strategy(name, lam=0.1, options=options)


def test_unknown_gate_is_rejected_by_the_cheap_modes():
    for name in ("gradprom_image", "gradprom_every"):
        with pytest.raises(ValueError, match="gate must be one of"):
            build_strategy(name, gate="half")
