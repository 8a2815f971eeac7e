"""A failed bundle run ends with the cause, not MONAI's ``RuntimeError: Failed to evaluate ConfigExpression``;
``MONAI_GRADPROM_TRACEBACK=1`` keeps the whole traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from monai_gradprom.networks import SRResNet
from tests.bundles.helpers import REPO

pytestmark = pytest.mark.slow


def _fail(config_files, *args, traceback=False, cwd=REPO):
    files = "[" + ",".join(f"'{REPO / f}'" for f in config_files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, *args]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("MONAI_GRADPROM_TRACEBACK", None)
    if traceback:
        env["MONAI_GRADPROM_TRACEBACK"] = "1"
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stderr[-3000:]
    return result.stderr.strip().splitlines()


def _image_folder(root):
    from PIL import Image
    import numpy as np

    root.mkdir()
    Image.fromarray(np.full((16, 16), 9, np.uint8)).save(root / "a.png")
    return root


def test_missing_dataset_dir_ends_with_the_cause(tmp_path):
    lines = _fail(["bundles/camus/train.json"], "--output_dir", str(tmp_path / "out"))
    assert lines[-1].startswith("ValueError: no data set root given: set dataset_dir"), lines[-3:]
    assert not any("Failed to evaluate" in line for line in lines)


def test_typo_key_ends_with_the_closest_key(tmp_path):
    lines = _fail(["bundles/demo/train.json"], "--strategyy", "joint", "--output_dir", str(tmp_path / "out"))
    assert lines[-1].startswith("ConfigError: unknown command-line key") and "'--strategy'" in lines[-1], lines[-3:]


def test_missing_checkpoint_ends_with_its_path(tmp_path):
    images = _image_folder(tmp_path / "in")
    lines = _fail(["bundles/demo/inference.json"], "--input_dir", str(images), "--output_dir", str(tmp_path / "o"),
                  "--checkpoint", str(tmp_path / "nowhere" / "model_final.pt"))
    assert lines[-1].startswith(f"FileNotFoundError: checkpoint not found: {tmp_path / 'nowhere' / 'model_final.pt'}"), lines[-3:]
    assert "--model_dir" in lines[-1]


def test_size_mismatch_ends_with_the_file_and_keys_and_the_traceback_is_kept_on_request(tmp_path):
    images = _image_folder(tmp_path / "in")
    checkpoint = tmp_path / "other.pt"
    torch.save(SRResNet(spatial_dims=2, in_channels=1, channels=4, num_blocks=1).state_dict(), checkpoint)
    args = ("--input_dir", str(images), "--output_dir", str(tmp_path / "o"), "--checkpoint", str(checkpoint))
    lines = _fail(["bundles/demo/inference.json"], *args)
    assert lines[-1].startswith(f"ValueError: checkpoint {checkpoint} does not fit the network SRResNet"), lines[-3:]
    assert "shape mismatches" in lines[-1]
    assert not any(line.startswith("Traceback") for line in lines)
    full = _fail(["bundles/demo/inference.json"], *args, traceback=True)
    assert any(line.startswith("Traceback") for line in full) and "Failed to evaluate" in full[-2] + full[-1]
