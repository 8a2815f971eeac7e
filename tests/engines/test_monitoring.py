"""Monitoring: learning rates on TensorBoard and in checkpoints, the data-set bundles' decaying schedule, VR
pretraining's per-epoch log, and no progress bars in a log that is not a terminal."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.bundle import ConfigParser
from monai.handlers import TensorBoardStatsHandler

from monai_gradprom.engines import GradPromTrainer, TrainingProgressBar, pretrain_recognizer
from tests.bundles.helpers import REPO
from tests.conftest import TinyClassifier, TinyIP, make_batches


def _trainer(handlers=None, max_epochs=3, **kwargs):
    ip, vr = TinyIP(), TinyClassifier()
    ip_opt, vr_opt = torch.optim.Adam(ip.parameters(), lr=1e-3), torch.optim.Adam(vr.parameters(), lr=1e-4)
    return GradPromTrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=make_batches(2), ip_network=ip, ip_optimizer=ip_opt,
        vr_network=vr, vr_optimizer=vr_opt, strategy="joint", train_handlers=handlers, **kwargs,
    ), ip_opt, vr_opt


def test_learning_rates_of_a_multistep_schedule_reach_tensorboard_and_checkpoints(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = TensorBoardStatsHandler(log_dir=str(tmp_path), iteration_log=False,
                                 state_attributes=["learning_rate", "vr_learning_rate"])
    trainer = _trainer_with(tb)
    trainer.run()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [s.value for s in events.Scalars("learning_rate")] == pytest.approx([1e-3, 1e-3, 1e-4])
    assert [s.value for s in events.Scalars("vr_learning_rate")] == pytest.approx([1e-4, 1e-4, 1e-5])
    saved = trainer.checkpoint_dict()
    assert saved["lr_scheduler_ip"] is trainer.lr_schedulers["ip"] and "lr_scheduler_vr" in saved


def _trainer_with(handler):
    ip, vr = TinyIP(), TinyClassifier()
    ip_opt, vr_opt = torch.optim.Adam(ip.parameters(), lr=1e-3), torch.optim.Adam(vr.parameters(), lr=1e-4)
    schedulers = {"ip": torch.optim.lr_scheduler.MultiStepLR(ip_opt, milestones=[2], gamma=0.1),
                  "vr": torch.optim.lr_scheduler.MultiStepLR(vr_opt, milestones=[2], gamma=0.1)}
    trainer = GradPromTrainer(
        device="cpu", max_epochs=3, train_data_loader=make_batches(2), ip_network=ip, ip_optimizer=ip_opt,
        vr_network=vr, vr_optimizer=vr_opt, strategy="joint", train_handlers=[handler], lr_schedulers=schedulers,
    )
    return trainer


@pytest.mark.parametrize("name", ["isic2018", "covid_ct", "lizard", "camus"])
def test_data_set_bundles_decay_adam_1e4_tenfold_near_the_end(name):
    parser = ConfigParser()
    parser.read_config(str(REPO / f"bundles/{name}/train.json"))
    parser["ip_channels"], parser["ip_blocks"], parser["vr_arch"] = 4, 1, "resnet10"  # small to build
    assert parser.get_parsed_content("learning_rate") == parser.get_parsed_content("vr_learning_rate") == 1e-4
    schedulers = parser.get_parsed_content("lr_schedulers")
    max_epochs = parser.get_parsed_content("max_epochs")
    for key, optimizer in (("ip", "ip_optimizer"), ("vr", "vr_optimizer")):
        scheduler = schedulers[key]
        assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR) and scheduler.gamma == 0.1
        assert list(scheduler.milestones) == [round(0.8 * max_epochs)]
        assert scheduler.optimizer is parser.get_parsed_content(optimizer)
    assert parser["train"]["trainer"]["lr_schedulers"] == "@lr_schedulers"
    tb = [h for h in parser["train"]["handlers"] if h.get("_target_") == "TensorBoardStatsHandler"]
    assert tb and "learning_rate" in tb[0]["state_attributes"]


def test_vr_pretraining_logs_loss_and_clean_validation_score_each_epoch(caplog):
    vr = TinyClassifier()
    with caplog.at_level(logging.INFO, logger="monai_gradprom.engines.pretrain"):
        pretrain_recognizer(vr, make_batches(2), torch.optim.Adam(vr.parameters(), 1e-3), epochs=3, device="cpu",
                            val_data_loader=make_batches(1, seed=5))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("VR pretraining epoch")]
    assert [line.split(":")[0] for line in lines] == [f"VR pretraining epoch {e}/3" for e in (1, 2, 3)]
    assert all("loss " in line and "clean validation accuracy " in line for line in lines), lines


def test_validation_score_does_not_change_the_training_random_stream():
    torch.manual_seed(0)
    from monai_gradprom.engines.pretrain import clean_score

    loader = torch.utils.data.DataLoader(make_batches(2), batch_size=None)  # iter() draws a seed from torch
    name, value = clean_score(TinyClassifier(), loader, "cpu")
    after = torch.rand(1)
    torch.manual_seed(0)
    TinyClassifier()
    assert name == "accuracy" and 0 <= value <= 1 and torch.equal(after, torch.rand(1))


def test_progress_bar_stays_out_of_a_log_that_is_not_a_terminal(capsys):
    trainer, _, _ = _trainer([TrainingProgressBar()], max_epochs=1)
    trainer.run()
    assert "\r" not in capsys.readouterr().err  # pytest's captured stderr is no terminal
    trainer, _, _ = _trainer([TrainingProgressBar(enabled=True)], max_epochs=1)
    trainer.run()
    assert "\r" in capsys.readouterr().err
