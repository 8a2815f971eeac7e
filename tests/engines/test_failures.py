"""Failures leave a usable state: NaN losses stop training without a broken final checkpoint, a full disk
keeps the previous checkpoint, a checkpoint of another architecture is refused with its path named."""

from __future__ import annotations

import errno

import pytest
import torch
from ignite.engine import Events

from monai_gradprom.engines import (
    AtomicCheckpointSaver,
    GradPromTrainer,
    NonFiniteLossError,
    StopOnNonFiniteLoss,
    attach_checkpointing,
    resume_from_checkpoint,
)
from tests.conftest import TinyClassifier, TinyIP, make_batches


def _trainer(data, max_epochs=1, ip=None, handlers=None):
    ip = ip or TinyIP()
    vr = TinyClassifier()
    return GradPromTrainer("cpu", max_epochs, data, ip, torch.optim.SGD(ip.parameters(), 0.1), vr,
                           torch.optim.SGD(vr.parameters(), 0.1), strategy="gradprom", train_handlers=handlers)


def _saver(trainer, folder):
    saver = AtomicCheckpointSaver(save_dir=str(folder), save_dict=trainer.checkpoint_dict(), save_interval=1,
                                  epoch_level=False, n_saved=1, save_final=True, final_filename="model_final.pt")
    attach_checkpointing(saver, trainer)
    return saver


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(tmp_path):
    data = make_batches(4)
    data[2]["target"] = torch.full_like(data[2]["target"], float("nan"))  # the third iteration goes bad
    trainer = _trainer(data, handlers=[StopOnNonFiniteLoss()])
    _saver(trainer, tmp_path)
    with pytest.raises(NonFiniteLossError, match="iteration 3"):
        trainer.run()
    assert not (tmp_path / "model_final.pt").exists()
    saved = sorted(p.name for p in tmp_path.glob("checkpoint_*.pt"))
    assert saved == ["checkpoint_iteration=2.pt"]
    state = torch.load(tmp_path / saved[0], weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["ip_network"].values())


def test_full_disk_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    trainer = _trainer(make_batches(3))
    _saver(trainer, tmp_path)
    real_save = torch.save

    def save_or_fail(obj, path, *args, **kwargs):
        if trainer.state.iteration >= 2:
            with open(path, "wb") as f:
                f.write(b"partial")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_or_fail)
    with pytest.raises(OSError, match="No space left"):
        trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_iteration=1.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "checkpoint_iteration=1.pt", weights_only=False)["trainer"]["iteration"] == 1


def test_resume_refuses_checkpoint_of_another_architecture(tmp_path):
    trainer = _trainer(make_batches(1))
    _saver(trainer, tmp_path)
    trainer.run()

    class WiderIP(TinyIP):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(8, 1, 3, padding=1)

    other = _trainer(make_batches(1), ip=WiderIP())
    with pytest.raises(ValueError, match="checkpoint_iteration=1.pt"):
        resume_from_checkpoint(other, tmp_path / "checkpoint_iteration=1.pt")


def test_resume_continues_from_saved_iteration(tmp_path):
    trainer = _trainer(make_batches(4), max_epochs=1)
    _saver(trainer, tmp_path)
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.terminate())
    trainer.run()
    fresh = _trainer(make_batches(4), max_epochs=1)
    resume_from_checkpoint(fresh, tmp_path / "checkpoint_iteration=2.pt")
    seen = []
    fresh.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.iteration))
    fresh.run()
    assert seen == [3, 4]
