"""GradPromTrainer behaviour beyond single strategies: contract output, events, warm-up, accumulation, AMP,
unsupervised supervision and argument errors."""

from __future__ import annotations

import copy

import pytest
import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from torch import nn

from monai_gradprom.engines import GradPromTrainer, mark_pretrained, pretrain_recognizer
from tests.conftest import NoBNClassifier, TinyClassifier, TinyIP, make_batches


def _trainer(strategy="gradprom", ip=None, vr=None, data=None, **kwargs):
    ip = ip or TinyIP()
    vr = vr if vr is not None else TinyClassifier()
    return GradPromTrainer(
        device="cpu",
        max_epochs=kwargs.pop("max_epochs", 1),
        train_data_loader=data if data is not None else make_batches(2),
        ip_network=ip,
        ip_optimizer=torch.optim.Adam(ip.parameters(), lr=1e-3),
        vr_network=vr,
        vr_optimizer=torch.optim.Adam(vr.parameters(), lr=1e-3) if vr is not None else None,
        strategy=strategy,
        **kwargs,
    )


def test_output_dict_follows_the_contract_and_events_fire():
    trainer = _trainer("gradprom")
    fired = []
    for event in (IterationEvents.FORWARD_COMPLETED, IterationEvents.LOSS_COMPLETED,
                  IterationEvents.BACKWARD_COMPLETED, IterationEvents.MODEL_COMPLETED):
        trainer.add_event_handler(event, lambda e, ev=event: fired.append(ev))
    trainer.run()
    out = trainer.state.output
    for key in ("loss_ip", "loss_vr", "cos", "gate", "loss", "pred", "image", "target", "label"):
        assert key in out, key
    assert out["cos"].ndim == 0 and float(out["gate"]) in (0.0, 1.0)
    assert fired[:4] == [IterationEvents.FORWARD_COMPLETED, IterationEvents.LOSS_COMPLETED,
                         IterationEvents.BACKWARD_COMPLETED, IterationEvents.MODEL_COMPLETED]
    assert len(fired) == 4 * 2


def test_postprocessing_runs_at_model_completed():
    seen = []

    def post(data):
        seen.append(True)
        return data

    trainer = _trainer("joint", postprocessing=post, decollate=True)
    trainer.run()
    assert len(seen) == 2 * 4  # once per decollated sample per iteration


def test_warmup_trains_ip_alone_then_cascades_vr():
    vr = TinyClassifier()
    before = copy.deepcopy(vr.state_dict())
    gates = []
    trainer = _trainer("gradprom", vr=vr, max_epochs=2, ip_warmup_epochs=1)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: gates.append(float(e.state.output["gate"])))
    epoch_one_vr = {}
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epoch_one_vr.setdefault(e.state.epoch, copy.deepcopy(vr.state_dict())))
    trainer.run()
    # epoch 1: VR untouched and no gate; epoch 2: gate decided and VR trained
    for key, value in before.items():
        assert torch.equal(value, epoch_one_vr[1][key]), key
    assert all(g != g for g in gates[:2])  # NaN while warming up
    assert all(g == g for g in gates[2:])
    assert any(not torch.equal(before[k], v) for k, v in vr.state_dict().items())



def test_accumulation_decides_gate_on_accumulated_gradients():
    torch.manual_seed(0)
    ip, vr = TinyIP(), NoBNClassifier()
    full = make_batches(1, batch_size=4)[0]
    halves = [{k: v[:2] for k, v in full.items()}, {k: v[2:] for k, v in full.items()}]
    ref_ip, ref_vr = copy.deepcopy(ip), copy.deepcopy(vr)
    ref = GradPromTrainer("cpu", 1, [full], ref_ip, torch.optim.SGD(ref_ip.parameters(), lr=0.1), ref_vr,
                          torch.optim.SGD(ref_vr.parameters(), lr=0.1), strategy="gradprom", lam=0.5)
    ref.run()
    acc_ip, acc_vr = copy.deepcopy(ip), copy.deepcopy(vr)
    acc = GradPromTrainer("cpu", 1, halves, acc_ip, torch.optim.SGD(acc_ip.parameters(), lr=0.1), acc_vr,
                          torch.optim.SGD(acc_vr.parameters(), lr=0.1), strategy="gradprom", lam=0.5,
                          accumulation_steps=2)
    outputs = []
    acc.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    acc.run()
    assert torch.isnan(outputs[0]["cos"])  # first micro-batch does not step
    assert float(outputs[1]["cos"]) == pytest.approx(float(ref.state.output["cos"]), abs=1e-5)
    for a, b in zip(acc_ip.parameters(), ref_ip.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_bf16_autocast_on_cpu_trains_and_reports_finite_cosine():
    trainer = _trainer("gradprom", amp=True)
    assert trainer.scaler is None and trainer.amp_kwargs["dtype"] == torch.bfloat16
    ip_before = [p.detach().clone() for p in trainer.ip_network.parameters()]
    trainer.run()
    assert torch.isfinite(trainer.state.output["cos"])
    assert any(not torch.equal(a, b) for a, b in zip(ip_before, trainer.ip_network.parameters()))


def test_unsupervised_needs_a_pretrained_teacher():
    trainer = _trainer("joint", vr_supervision="unsupervised")
    with pytest.raises(ValueError, match="pretrained teacher"):
        trainer.run()


def test_unsupervised_matches_frozen_teacher_on_clean_target():
    vr = mark_pretrained(TinyClassifier())
    trainer = _trainer("gradprom", vr=vr, vr_supervision="unsupervised", lam=10.0)
    trainer.run()
    teacher = trainer.vr_teachers["label"]
    assert not any(p.requires_grad for p in teacher.parameters())
    assert float(trainer.state.output["loss_vr"]) >= 0.0
    # the teacher is a copy: training VR did not move it
    assert any(not torch.equal(a, b) for a, b in zip(teacher.parameters(), vr.parameters()))


def test_pretrain_recognizer_marks_and_saves_then_loads(tmp_path):
    vr = TinyClassifier()
    ckpt = tmp_path / "vr.pt"
    pretrain_recognizer(vr, make_batches(2), torch.optim.Adam(vr.parameters(), 1e-2), epochs=1, device="cpu",
                        checkpoint=ckpt)
    assert ckpt.is_file()
    fresh = TinyClassifier()
    pretrain_recognizer(fresh, make_batches(2), torch.optim.Adam(fresh.parameters(), 1e-2), epochs=1, device="cpu",
                        checkpoint=ckpt)  # the same settings: the cache's record matches (issue 18.3)
    for a, b in zip(vr.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="vr.pt"):
        pretrain_recognizer(nn.Linear(2, 2), [], None, 0, "cpu", checkpoint=ckpt)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "nonsense"}, "unknown strategy 'nonsense'"),
        ({"lam": -1.0}, "lam must be a non-negative"),
        ({"gate": "medium"}, "gate must be one of"),
        ({"strategy": "transformer"}, "transformer"),
        ({"vr_supervision": "weak"}, "vr_supervision"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _trainer(**kwargs)


def test_strategy_needing_vr_without_vr_raises():
    ip = TinyIP()
    with pytest.raises(ValueError, match="needs a recognition network"):
        GradPromTrainer("cpu", 1, make_batches(1), ip, torch.optim.SGD(ip.parameters(), 0.1), strategy="joint")


def test_plain_runs_without_vr():
    ip = TinyIP()
    trainer = GradPromTrainer("cpu", 1, make_batches(1), ip, torch.optim.SGD(ip.parameters(), 0.1), strategy="plain")
    trainer.run()
    assert torch.isnan(trainer.state.output["loss_vr"])
