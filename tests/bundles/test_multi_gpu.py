"""The demo's multi_gpu_train.json runs under torchrun with 2 gloo processes on CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.bundles.helpers import REPO

pytestmark = pytest.mark.slow


def test_multi_gpu_config_trains_under_torchrun_with_gloo(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    files = "['bundles/demo/train.json','bundles/demo/multi_gpu_train.json','bundles/demo/smoke.json']"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "monai.bundle", "run", "training", "--config_file", files,
           "--output_dir", str(tmp_path)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = torch.load(tmp_path / "model_final.pt", map_location="cpu", weights_only=False)
    # 32 smoke images over 2 ranks at batch 8: 2 iterations per epoch, 2 epochs
    assert checkpoint["trainer"]["iteration"] == 4 and checkpoint["trainer"]["epoch_length"] == 2
    # every rank constructs the TensorBoard handlers (as in MONAI's model-zoo multi-GPU configs), but only
    # rank 0 attaches them: exactly its two writers (train, validation) hold scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    written = []
    for path in (tmp_path / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        if accumulator.Tags()["scalars"]:
            written.append(path)
    assert len(written) == 2
