"""EnhancementEvaluator metrics against values computed by hand."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from monai_gradprom.engines import EnhancementEvaluator, MetricsJSONWriter
from tests.conftest import TinySegmenter, make_batches


class Identity(nn.Module):
    def forward(self, x):
        return x


class Constant(nn.Module):
    """Classifier that always predicts class 1."""

    def forward(self, x):
        return torch.tensor([[0.0, 1.0]]).repeat(x.shape[0], 1)


def test_psnr_of_identity_ip_equals_hand_computed_mean_psnr_and_input_baseline(tmp_path):
    data = make_batches(2, batch_size=3)
    evaluator = EnhancementEvaluator(
        "cpu", data, Identity(), vr_network=Constant(), val_handlers=[MetricsJSONWriter(tmp_path)]
    )
    evaluator.run()
    metrics = evaluator.state.metrics
    images = torch.cat([b["image"] for b in data])
    targets = torch.cat([b["target"] for b in data])
    mse = ((images - targets) ** 2).flatten(1).mean(1)
    expected_psnr = float((10 * torch.log10(1.0 / mse)).mean())
    assert metrics["psnr"] == pytest.approx(expected_psnr, rel=1e-5)
    assert metrics["input_psnr"] == pytest.approx(expected_psnr, rel=1e-5)
    labels = torch.cat([b["label"] for b in data])
    assert metrics["accuracy"] == pytest.approx(float((labels == 1).float().mean()))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("psnr", "ssim", "accuracy", "input_psnr", "input_ssim", "input_accuracy"):
        assert key in saved
    assert saved["psnr"] == pytest.approx(metrics["psnr"])


def test_ssim_is_one_for_perfect_output_and_dice_for_perfect_segmenter():
    data = make_batches(1, batch_size=2)

    class Oracle(nn.Module):
        def forward(self, x):  # the clean target, recovered from the batch via a closure
            return data[0]["target"]

    class PerfectSeg(nn.Module):
        def forward(self, x):
            mask = data[0]["seg"][:, 0]
            return torch.stack([(mask == 0).float(), (mask == 1).float()], 1) * 10

    evaluator = EnhancementEvaluator("cpu", data, Oracle(), vr_network=PerfectSeg(), vr_target_key="seg", num_classes=2)
    evaluator.run()
    m = evaluator.state.metrics
    assert m["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert m["dice"] == pytest.approx(1.0) and m["miou"] == pytest.approx(1.0)
    assert m["input_ssim"] < 0.99


def test_super_resolution_baseline_is_upsampled_to_target_size():
    data = make_batches(1, batch_size=2, size=16)
    data[0]["image"] = torch.nn.functional.avg_pool2d(data[0]["target"], 2)

    class Upsample(nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    evaluator = EnhancementEvaluator("cpu", data, Upsample(), vr_network=TinySegmenter(), vr_target_key="seg")
    evaluator.run()
    assert evaluator.state.output["input"].shape == data[0]["target"].shape
    assert "input_psnr" in evaluator.state.metrics
