"""GradPromTrainer events: at BACKWARD_COMPLETED ``p.grad`` holds the gradient the optimizers apply, so a
gradient-clipping handler on that event changes the step (with and without an AMP gradient scaler)."""

from __future__ import annotations

import pytest
import torch
from monai.engines.utils import IterationEvents

from monai_gradprom.engines import ClipGradNorm, GradPromTrainer
from monai_gradprom.networks import RATransformer
from tests.conftest import NoBNClassifier, TinyIP, make_batches


def _trainer(strategy: str, data=None, lr: float = 1.0, **kwargs) -> GradPromTrainer:
    torch.manual_seed(0)
    ip, vr = TinyIP(), NoBNClassifier()
    t = RATransformer(spatial_dims=2, in_channels=1, channels=4, num_blocks=1) if strategy == "transformer" else None
    return GradPromTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=data if data is not None else make_batches(1),
        ip_network=ip,
        ip_optimizer=torch.optim.SGD(ip.parameters(), lr=lr),
        vr_network=vr,
        vr_optimizer=torch.optim.SGD(vr.parameters(), lr=lr),
        transformer_network=t,
        transformer_optimizer=torch.optim.SGD(t.parameters(), lr=lr) if t is not None else None,
        strategy=strategy,
        lam=0.5,
        **kwargs,
    )


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _record_grads(trainer: GradPromTrainer, modules: dict[str, torch.nn.Module]) -> dict[int, dict]:
    seen: dict[int, dict] = {}

    def record(engine):
        seen[engine.state.iteration] = {
            name: [None if p.grad is None else p.grad.detach().clone() for p in m.parameters()]
            for name, m in modules.items()
        }

    trainer.add_event_handler(IterationEvents.BACKWARD_COMPLETED, record)
    return seen


@pytest.mark.parametrize("strategy", ["plain", "joint", "frozen", "gradprom", "transformer"])
def test_grad_at_backward_completed_is_the_applied_update(strategy):
    trainer = _trainer(strategy)
    modules = {"ip": trainer.ip_network, "vr": trainer.vr_network}
    if trainer.transformer_network is not None:
        modules["t"] = trainer.transformer_network
    before = {name: _snapshot(m) for name, m in modules.items()}
    seen = _record_grads(trainer, modules)
    trainer.run()
    trained = {"ip"} | ({"vr"} if trainer.strategy.trains_vr else set()) | ({"t"} if "t" in modules else set())
    for name, module in modules.items():
        for old, new, grad in zip(before[name], module.parameters(), seen[1][name]):
            if name in trained:
                assert grad is not None, f"{strategy}: {name} has no .grad at BACKWARD_COMPLETED"
                # SGD, lr 1: the step is exactly -grad, so the gradient seen is the gradient applied
                torch.testing.assert_close(old - new.detach(), grad, rtol=1e-5, atol=1e-7)
            else:
                assert grad is None and torch.equal(old, new.detach()), f"{strategy}: {name} must not change"


def test_clipping_handler_on_backward_completed_limits_the_applied_update():
    unclipped = _trainer("gradprom", lr=0.1)
    before = _snapshot(unclipped.ip_network)
    unclipped.run()
    free_step = torch.cat([(a - b.detach()).flatten() for a, b in zip(before, unclipped.ip_network.parameters())])

    clipped = _trainer("gradprom", lr=0.1, train_handlers=[ClipGradNorm(max_norm=1e-3)])
    before = _snapshot(clipped.ip_network)
    vr_before = _snapshot(clipped.vr_network)
    clipped.run()
    step = torch.cat([(a - b.detach()).flatten() for a, b in zip(before, clipped.ip_network.parameters())])
    vr_step = torch.cat([(a - b.detach()).flatten() for a, b in zip(vr_before, clipped.vr_network.parameters())])
    assert float(free_step.norm()) > 10 * 0.1 * 1e-3  # clipping is active in this case
    assert float(step.norm()) == pytest.approx(0.1 * 1e-3, rel=1e-3)  # lr x max_norm, IP's optimizer
    assert float(vr_step.norm()) == pytest.approx(0.1 * 1e-3, rel=1e-3)  # VR's optimizer clipped on its own
    # same direction as the unclipped step: clipping rescales, it does not rotate
    assert float(torch.nn.functional.cosine_similarity(step, free_step, dim=0)) == pytest.approx(1.0, abs=1e-4)


def test_clipping_with_amp_scaler_unscales_first_and_still_steps():
    reference = _trainer("joint", lr=0.1, train_handlers=[ClipGradNorm(max_norm=1e-3)])
    before = _snapshot(reference.ip_network)
    reference.run()
    expected = [a - b.detach() for a, b in zip(before, reference.ip_network.parameters())]

    scaled = _trainer("joint", lr=0.1, train_handlers=[ClipGradNorm(max_norm=1e-3)])
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)  # what amp=True gives on CUDA, on CPU
    seen = _record_grads(scaled, {"ip": scaled.ip_network})
    before = _snapshot(scaled.ip_network)
    scaled.run()
    got = [a - b.detach() for a, b in zip(before, scaled.ip_network.parameters())]
    for g, e in zip(got, expected):  # unscaled before clipping: the same step as without a scaler
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-9)
    assert scaled.scaler.get_scale() == 2.0**12  # finite gradients: no skipped step, no back-off
    # what the handler saw (recorded after it ran, same event) is the unscaled, clipped gradient
    norm = torch.cat([g.flatten() for g in seen[1]["ip"]]).norm()
    assert float(norm) == pytest.approx(1e-3, rel=1e-3)


def test_accumulation_micro_batch_that_does_not_step_has_no_grad():
    trainer = _trainer("gradprom", data=make_batches(4, batch_size=2), accumulation_steps=2)
    seen = _record_grads(trainer, {"ip": trainer.ip_network})
    trainer.run()
    assert sorted(seen) == [1, 2, 3, 4]  # the event fires on every iteration
    assert all(g is None for g in seen[1]["ip"]) and all(g is None for g in seen[3]["ip"])
    assert all(g is not None for g in seen[2]["ip"]) and all(g is not None for g in seen[4]["ip"])


def test_non_finite_gradient_still_skips_every_optimizer_when_a_handler_unscales():
    """VR's loss is finite, IP's is inf: IP's and VR's gradients differ in finiteness, yet both optimizers skip
    (the poison reaches .grad before the handler's unscale_) and the scale backs off."""

    def inf_mse(pred, target):
        return torch.nn.functional.mse_loss(pred, target) * float("inf")

    trainer = _trainer("joint", lr=0.1, train_handlers=[ClipGradNorm(max_norm=1.0)], ip_loss_function=inf_mse)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    ip_before, vr_before = _snapshot(trainer.ip_network), _snapshot(trainer.vr_network)
    trainer.run()
    for old, new in zip(ip_before + vr_before, [*trainer.ip_network.parameters(), *trainer.vr_network.parameters()]):
        assert torch.equal(old, new.detach())
    assert trainer.scaler.get_scale() == 2.0**11
