"""Kill training with SIGKILL in the middle of an epoch, resume, finish: same final weights as a run that was
never interrupted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.bundles.helpers import REPO, run_bundle

TRAIN = "bundles/demo/train.json"
SMOKE = "bundles/demo/smoke.json"
# 3 epochs of 4 iterations, a checkpoint after every iteration
ARGS = ["--max_epochs", "3", "--checkpoint_interval", "1", "--val_interval", "3"]

pytestmark = pytest.mark.slow


def _iterations(folder):
    found = [int(m.group(1)) for p in folder.glob("checkpoint_iteration=*.pt")
             if (m := re.search(r"iteration=(\d+)", p.name))]
    return max(found, default=0)


def _final_weights(folder):
    checkpoint = torch.load(folder / "model_final.pt", map_location="cpu", weights_only=False)
    return {f"{net}.{k}": v for net in ("ip_network", "vr_network") for k, v in checkpoint[net].items()}


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    run_bundle("training", [TRAIN, SMOKE], "--output_dir", str(reference), *ARGS)

    crashed = tmp_path / "crashed"
    files = "['" + TRAIN + "','" + SMOKE + "']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", files,
           "--output_dir", str(crashed), *ARGS]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _iterations(crashed) < 6:  # iteration 6 = the middle of epoch 2
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (crashed / "model_final.pt").exists()
    killed_at = _iterations(crashed)
    assert 6 <= killed_at < 12 and killed_at % 4 != 0 or killed_at == 8, killed_at

    run_bundle("training", [TRAIN, SMOKE], "--output_dir", str(crashed), *ARGS, "--resume", "true")
    expected, resumed = _final_weights(reference), _final_weights(crashed)
    assert expected.keys() == resumed.keys()
    worst = max(float((expected[k].float() - resumed[k].float()).abs().max()) for k in expected)
    # CPU kernels are deterministic for a fixed thread count, so the resumed run is bit-identical
    assert worst == 0.0, f"largest parameter difference after resume: {worst}"


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    run_bundle("training", [TRAIN, SMOKE], "--output_dir", str(tmp_path), "--max_epochs", "1", "--resume", "true")
    assert (tmp_path / "model_final.pt").exists()
