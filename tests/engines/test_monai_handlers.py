"""MONAI's standard handlers, written exactly as a user writes them for SupervisedTrainer, work on the
GradPromTrainer and log its ``loss``; code reading the output by key keeps working."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Events
from monai.handlers import StatsHandler, TensorBoardStatsHandler, from_engine

from monai_gradprom.engines import GradPromTrainer
from tests.conftest import TinyClassifier, TinyIP, make_batches


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _trainer(handlers, strategy="gradprom", **kwargs):
    ip, vr = TinyIP(), TinyClassifier()
    return GradPromTrainer(
        device="cpu", max_epochs=1, train_data_loader=make_batches(2), ip_network=ip,
        ip_optimizer=torch.optim.Adam(ip.parameters(), lr=1e-3), vr_network=vr,
        vr_optimizer=torch.optim.Adam(vr.parameters(), lr=1e-3), strategy=strategy, train_handlers=handlers,
        **kwargs,
    )


@pytest.mark.parametrize("make_handler", [
    lambda: StatsHandler(),
    lambda: StatsHandler(output_transform=from_engine(["loss"], first=True)),
], ids=["defaults", "model_zoo_from_engine"])
def test_stats_handler_logs_the_loss_as_on_supervised_trainer(make_handler, caplog):
    caplog.set_level(logging.INFO)  # StatsHandler logs at INFO
    losses = []
    handler = make_handler()
    trainer = _trainer([handler])
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    seen = _Collect()
    handler.logger.addHandler(seen)  # MONAI's logger does not propagate to caplog
    try:
        trainer.run()  # before: KeyError: 0 (defaults), nothing logged (from_engine on a dict gives a 1-tuple)
    finally:
        handler.logger.removeHandler(seen)
    lines = [m for m in seen.messages if "Iter:" in m]
    assert len(lines) == 2, lines
    assert f"{losses[-1]:.4f}" in lines[-1] and "oss" in lines[-1]


def test_tensorboard_stats_handler_defaults_write_the_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = _trainer([TensorBoardStatsHandler(log_dir=str(tmp_path)),
                        TensorBoardStatsHandler(log_dir=str(tmp_path / "zoo"),
                                                output_transform=from_engine(["loss"], first=True))])
    last = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: last.append(float(e.state.output["loss"])))
    trainer.run()
    for folder, tag in ((tmp_path, "loss"), (tmp_path / "zoo", "Loss")):  # a dict's keys; a scalar's tag_name
        events = EventAccumulator(str(folder))
        events.Reload()
        assert tag in events.Tags()["scalars"]
        values = [s.value for s in events.Scalars(tag)]
        assert values == pytest.approx(last, rel=1e-6)


def test_decollated_output_keeps_the_contract_keys():
    trainer = _trainer(None)
    trainer.run()
    out = trainer.state.output
    assert isinstance(out, list) and len(out) == 4  # one dict per sample, as SupervisedTrainer's
    assert torch.equal(out[0]["loss"], out["loss"]) and out["cos"].ndim == 0 and "gate" in out
    assert out[1]["pred"].shape == out["pred"].shape[1:]
    assert torch.equal(out[2]["image"], out["image"][2])
    assert set(dict(out)) >= {"loss", "loss_ip", "loss_vr", "cos", "gate", "pred"}
    assert out.get("missing", -1) == -1


def test_decollate_false_keeps_the_plain_dict():
    trainer = _trainer(None, decollate=False)
    trainer.run()
    assert isinstance(trainer.state.output, dict) and "loss" in trainer.state.output
