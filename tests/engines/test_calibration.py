"""lam_ratio: lam = rho / mean ||G_VR|| / ||G_IP||, checked on networks whose gradients are computed by hand.

IP is ``a * x`` (one parameter a = 1), L_IP = mean((a x - 0)^2), VR is ``w * y`` (w = 1, fixed) with
L_VR = 3 mean(VR(IP(x))). On a batch of constant images x = v: dL_IP/da = 2 a v^2, dL_VR/da = 3 w v, so the
ratio is 3 / (2 a v): 1.5 for v = 1 and 0.75 for v = 2 (a = 1), mean 1.125.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from ignite.engine import Events
from torch import nn

from monai_gradprom.engines import GradPromTrainer, resume_from_checkpoint
from tests.conftest import TinyClassifier, TinyIP, make_batches

LR = 0.1


class Scale(nn.Module):
    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return self.a * x


def three_times_mean(prediction, label):
    return 3.0 * prediction.mean()


def _batch(v: float) -> dict:
    return {"image": torch.full((2, 1, 2, 2), v), "target": torch.zeros(2, 1, 2, 2), "label": torch.zeros(2)}


B1, B2 = _batch(1.0), _batch(2.0)


def _trainer(strategy="frozen", data=None, transformer=None, **kwargs) -> GradPromTrainer:
    ip, vr = Scale(1.0), Scale(1.0)
    return GradPromTrainer(
        device="cpu",
        max_epochs=kwargs.pop("max_epochs", 1),
        train_data_loader=data if data is not None else [B1, B2],
        ip_network=ip,
        ip_optimizer=torch.optim.SGD(ip.parameters(), lr=LR),
        vr_network=vr,
        vr_optimizer=torch.optim.SGD(vr.parameters(), lr=LR),
        strategy=strategy,
        vr_loss_function=three_times_mean,
        transformer_network=transformer,
        transformer_optimizer=torch.optim.SGD(transformer.parameters(), lr=LR) if transformer is not None else None,
        **kwargs,
    )


def test_measured_ratio_is_the_hand_computed_mean():
    trainer = _trainer()
    assert trainer.measure_gradient_ratio([B1, B2], num_batches=2) == 1.125
    assert trainer.measure_gradient_ratio([B1, B2], num_batches=1) == 1.5
    assert trainer.measure_gradient_ratio(iter([B2, B1, B1]), num_batches=2) == pytest.approx(1.125)


def test_lam_ratio_sets_lam_before_the_first_step_and_wins_over_lam(caplog):
    trainer = _trainer(lam=5.0, lam_ratio=0.9, calibration_batches=2, epoch_length=1)
    with caplog.at_level(logging.INFO, logger="monai_gradprom.engines.calibration"):
        trainer.run()
    assert trainer.calibration == {"ratio": 1.125, "lam": pytest.approx(0.8), "lam_ratio": 0.9}
    assert trainer.strategy.lam == pytest.approx(0.8)
    # the one step (on B1, a = 1) used lam = 0.8, not 5: a = 1 - lr (2 + 0.8 * 3)
    assert float(trainer.ip_network.a.detach()) == pytest.approx(1 - LR * (2 + 0.8 * 3), abs=1e-6)
    assert any("lam calibrated" in r.getMessage() and "1.125" in r.getMessage() for r in caplog.records)


def test_calibration_waits_for_the_end_of_warm_up_and_uses_its_batches():
    seen = []
    trainer = _trainer(data=[B1], lam_ratio=0.9, ip_warmup_epochs=1, max_epochs=2)

    @trainer.on(Events.EPOCH_COMPLETED)
    def record(engine):
        seen.append((float(engine.ip_network.a.detach()), engine.calibration))

    trainer.run()
    a_after_warmup, calibration_during_warmup = seen[0]
    assert calibration_during_warmup is None
    assert a_after_warmup == pytest.approx(0.8)  # 1 - lr * 2a
    # measured on IP after warm-up: 3 / (2 * 0.8), not 1.5 as at STARTED
    assert trainer.calibration["ratio"] == pytest.approx(3 / (2 * a_after_warmup), rel=1e-6)
    assert trainer.strategy.lam == pytest.approx(0.9 / trainer.calibration["ratio"], rel=1e-6)


def test_transformer_ratio_goes_through_t_without_the_detach():
    # VR(T(IP(x))) = w * t * a * x with t = 2: dL_VR/da = 3 * 2 = 6 on B1, ratio 6 / 2 = 3
    trainer = _trainer("transformer", transformer=Scale(2.0))
    assert trainer.measure_gradient_ratio([B1], num_batches=1) == 3.0


def test_measurement_changes_no_parameter_buffer_optimizer_rng_or_strategy_state():
    ip, vr = TinyIP(), TinyClassifier()
    ip_opt, vr_opt = torch.optim.Adam(ip.parameters(), 1e-3), torch.optim.Adam(vr.parameters(), 1e-3)
    trainer = GradPromTrainer("cpu", 1, make_batches(2), ip, ip_opt, vr, vr_opt, strategy="gradprom",
                              strategy_options={"cos_ema": 0.9})
    trainer.run()  # optimizer moments, BN statistics, cosine average all non-trivial
    vr.eval()  # a mode the measurement must give back (it trains VR in train mode, as gradprom does)
    before = {
        "state": copy.deepcopy({**{f"ip.{k}": v for k, v in ip.state_dict().items()},
                                **{f"vr.{k}": v for k, v in vr.state_dict().items()}}),
        "grads": [None if p.grad is None else p.grad.clone() for p in [*ip.parameters(), *vr.parameters()]],
        "opt": copy.deepcopy([ip_opt.state_dict(), vr_opt.state_dict()]),
        "strategy": copy.deepcopy(trainer.strategy.state_dict()),
        "rng": torch.get_rng_state(),
        "lam": trainer.strategy.lam,
        "modes": (ip.training, vr.training, vr.bn.training),
    }
    ratio = trainer.measure_gradient_ratio(make_batches(3, seed=5), num_batches=3)
    assert 0 < ratio < float("inf")
    after_state = {**{f"ip.{k}": v for k, v in ip.state_dict().items()},
                   **{f"vr.{k}": v for k, v in vr.state_dict().items()}}
    for key, value in before["state"].items():
        assert torch.equal(value, after_state[key]), key
    for old, p in zip(before["grads"], [*ip.parameters(), *vr.parameters()]):
        assert (old is None and p.grad is None) or torch.equal(old, p.grad)
    for old, opt in zip(before["opt"], [ip_opt, vr_opt]):
        new = opt.state_dict()
        for index, state in old["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(new["state"][index][name]))
    strategy_state = trainer.strategy.state_dict()
    assert torch.equal(strategy_state["ema_norm"], before["strategy"]["ema_norm"])
    assert torch.equal(strategy_state["ema"], before["strategy"]["ema"])
    assert torch.equal(torch.get_rng_state(), before["rng"])
    assert trainer.strategy.lam == before["lam"] and trainer.calibration is None
    assert (ip.training, vr.training, vr.bn.training) == before["modes"] == (True, False, False)


def test_calibration_is_saved_and_restored_on_resume_without_measuring_again(tmp_path, monkeypatch):
    trainer = _trainer(lam_ratio=0.9, calibration_batches=2, max_epochs=1)
    trainer.run()
    objects = trainer.checkpoint_dict()
    assert objects["calibration"].state_dict() == trainer.calibration
    path = tmp_path / "checkpoint_1.pt"
    torch.save({k: v.state_dict() for k, v in objects.items()}, path)
    assert torch.load(path, weights_only=True)["calibration"]["lam"] == pytest.approx(0.8)

    resumed = _trainer(lam_ratio=0.9, calibration_batches=2, max_epochs=2)

    def must_not_measure(*args, **kwargs):
        raise AssertionError("a resumed run measured the ratio again")

    monkeypatch.setattr(resumed, "measure_gradient_ratio", must_not_measure)
    resume_from_checkpoint(resumed, path)
    assert resumed.calibration == trainer.calibration and resumed.strategy.lam == pytest.approx(0.8)
    resumed.run()
    assert resumed.state.epoch == 2 and resumed.strategy.lam == pytest.approx(0.8)


def test_plain_ignores_lam_ratio_and_runs_without_calibration_are_unchanged():
    ip = Scale()
    plain = GradPromTrainer("cpu", 1, [B1], ip, torch.optim.SGD(ip.parameters(), LR), strategy="plain", lam_ratio=1.0)
    plain.run()
    assert plain.calibration is None and "calibration" not in plain.checkpoint_dict()
    assert "calibration" not in _trainer().checkpoint_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"lam_ratio": -1.0}, "lam_ratio"), ({"lam_ratio": float("nan")}, "lam_ratio"),
     ({"lam_ratio": 1.0, "calibration_batches": 0}, "calibration_batches")],
)
def test_bad_calibration_arguments_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _trainer(**kwargs)


def test_zero_recognition_gradient_cannot_calibrate():
    trainer = _trainer(lam_ratio=1.0)
    trainer.vr_loss_functions["label"] = lambda prediction, label: 0.0 * prediction.mean()
    with pytest.raises(ValueError, match="G_VR.*zero"):
        trainer.run()
    with pytest.raises(ValueError, match="no batch"):
        trainer.measure_gradient_ratio([], num_batches=2)


def test_unsupervised_ratio_uses_the_teacher_and_vr_input_transform_as_training_does():
    from monai_gradprom.engines import mark_pretrained
    from monai_gradprom.losses import SoftmaxL2Loss
    from tests.conftest import NoBNClassifier

    torch.manual_seed(3)
    ip, vr = TinyIP(), mark_pretrained(NoBNClassifier())
    batches = make_batches(2, seed=9)

    def shift(x):
        return 2 * x - 1

    expected = []
    for batch in batches:
        ip_c, vr_c, teacher = copy.deepcopy(ip), copy.deepcopy(vr).eval(), copy.deepcopy(vr).eval()
        enhanced = ip_c(batch["image"])
        params = list(ip_c.parameters())
        g_ip = torch.autograd.grad(nn.functional.mse_loss(enhanced, batch["target"]), params, retain_graph=True)
        with torch.no_grad():
            reference = teacher(shift(batch["target"]))
        g_vr = torch.autograd.grad(SoftmaxL2Loss()(vr_c(shift(enhanced)), reference), params)
        flat = [torch.cat([g.reshape(-1) for g in grads]) for grads in (g_ip, g_vr)]
        expected.append(float(flat[1].norm() / flat[0].norm()))
    trainer = GradPromTrainer("cpu", 1, batches, ip, torch.optim.SGD(ip.parameters(), LR), vr, None,
                              strategy="frozen", vr_supervision="unsupervised", vr_input_transform=shift)
    assert trainer.measure_gradient_ratio(batches, num_batches=2) == pytest.approx(sum(expected) / 2, rel=1e-5)
