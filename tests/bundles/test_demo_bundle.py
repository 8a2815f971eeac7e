"""The demo bundle trains, evaluates and runs inference through python -m monai.bundle (smoke sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.bundles.helpers import run_bundle

TRAIN = "bundles/demo/train.json"
EVALUATE = "bundles/demo/evaluate.json"
SMOKE = "bundles/demo/smoke.json"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_gradprom")
    run_bundle("training", [TRAIN, SMOKE], "--output_dir", str(out), "--strategy", "gradprom")
    return out


def test_training_writes_checkpoint_and_tensorboard_logs(trained):
    checkpoint = torch.load(trained / "model_final.pt", map_location="cpu", weights_only=False)
    for key in ("ip_network", "vr_network", "ip_optimizer", "vr_optimizer", "trainer"):
        assert key in checkpoint, key
    state = checkpoint["trainer"]
    assert state["iteration"] == 2 * state["epoch_length"] == 2 * 32 // 8  # 2 smoke epochs of 32 images
    events = list((trained / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("loss_ip", "loss_vr", "cos", "gate", "gate_rate", "psnr", "ssim", "accuracy"):
        assert tag in tags, f"{tag} not logged to TensorBoard (have {sorted(tags)})"


def test_evaluation_writes_metrics_json_with_baseline(trained):
    run_bundle("evaluating", [TRAIN, EVALUATE, SMOKE], "--output_dir", str(trained), "--strategy", "gradprom")
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("psnr", "ssim", "accuracy", "input_psnr", "input_ssim", "input_accuracy"):
        assert isinstance(metrics[key], float), key
    assert metrics["strategy"] == "gradprom"
    assert 0.0 <= metrics["accuracy"] <= 1.0 and -1.0 <= metrics["ssim"] <= 1.0


def test_inference_enhances_every_png_into_output_dir(trained, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8), mode="L").save(inputs / name)
    out = tmp_path / "out"
    run_bundle(
        "inference",
        ["bundles/demo/inference.json"],
        "--checkpoint", str(trained / "model_final.pt"),
        "--input_dir", str(inputs),
        "--output_dir", str(out),
        "--ip_channels", "8",
        "--ip_blocks", "1",
        "--image_size", "32",
    )
    for name in ("a.png", "sub/b.png"):
        result = Image.open(out / name)
        assert result.size == (48, 40) and result.mode == "L"


def test_bad_strategy_fails_before_training(tmp_path):
    with pytest.raises(AssertionError, match="unknown strategy 'nonsense'"):
        run_bundle("training", [TRAIN, SMOKE], "--output_dir", str(tmp_path), "--strategy", "nonsense")
    assert not (tmp_path / "model_final.pt").exists()


def test_evaluation_without_checkpoint_names_the_missing_file(tmp_path):
    with pytest.raises(AssertionError, match="model_final.pt"):
        run_bundle("evaluating", [TRAIN, EVALUATE, SMOKE], "--output_dir", str(tmp_path))
