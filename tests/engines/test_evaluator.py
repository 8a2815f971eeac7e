"""EnhancementEvaluator metrics against values computed by hand."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.handlers import MetricsSaver
from monai.transforms import Compose, Lambdad, SaveImaged
from torch import nn

from monai_gradprom.engines import (
    AtomicCheckpointSaver,
    EnhancementEvaluator,
    EnhancementImageHandler,
    MetricsJSONWriter,
)
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


# -- target_* metrics, per-image CSV, postprocessing / decollate, best model, TensorBoard images ----------------
class Scale(nn.Module):
    """IP multiplying the image by a learnable-looking scalar (set by the test)."""

    def __init__(self, factor: float = 1.0):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x):
        return x * self.factor


class MeanThreshold(nn.Module):
    """Class 1 iff the image's mean exceeds 0.5 (logits ``[0, mean - 0.5]``)."""

    def forward(self, x):
        score = x.float().mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([torch.zeros_like(score), score], 1)


def _constant(values, targets, labels, size=16, per_batch=2, meta=False):
    image = torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    target = torch.tensor(targets, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    label = torch.tensor(labels)
    samples = []
    for i in range(len(values)):
        sample = {"image": image[i], "target": target[i], "label": label[i]}
        if meta:  # what LoadImaged gives: MetaTensors that know their file
            sample = {**sample, **{k: MetaTensor(sample[k], meta={"filename_or_obj": f"img{i}.png"})
                                   for k in ("image", "target")}}
        samples.append(sample)
    return [list_data_collate(samples[i : i + per_batch]) for i in range(0, len(samples), per_batch)]


def test_target_metrics_are_vr_on_the_clean_target():
    """Inputs 0.2/0.4/0.6/0.8 -> VR says 0,0,1,1; targets 0.7/0.3/0.9/0.8 -> 1,0,1,1; outputs (x 0.5) all 0.
    Labels 1,0,1,1: output 1/4 right, input 3/4, target 4/4."""
    data = _constant([0.2, 0.4, 0.6, 0.8], [0.7, 0.3, 0.9, 0.8], [1, 0, 1, 1])
    evaluator = EnhancementEvaluator("cpu", data, Scale(0.5), vr_network=MeanThreshold())
    evaluator.run()
    m = evaluator.state.metrics
    assert (m["accuracy"], m["input_accuracy"], m["target_accuracy"]) == pytest.approx((0.25, 0.75, 1.0))
    assert "target_psnr" not in m  # the target against itself says nothing


def test_target_dice_and_miou_with_a_segmenter():
    data = make_batches(1, batch_size=2)

    class ThresholdSeg(nn.Module):  # perfect on the clean target (seg = target > 0.5), imperfect on noisy input
        def forward(self, x):
            fg = (x > 0.5).float()
            return torch.cat([1 - fg, fg], 1) * 10

    evaluator = EnhancementEvaluator("cpu", data, Identity(), vr_network=ThresholdSeg(), vr_target_key="seg")
    evaluator.run()
    m = evaluator.state.metrics
    assert m["target_dice"] == pytest.approx(1.0) and m["target_miou"] == pytest.approx(1.0)
    assert m["dice"] < 0.99 and m["input_dice"] == pytest.approx(m["dice"])


def test_per_image_csv_next_to_metrics_json_matches_the_means(tmp_path):
    data = _constant([0.2, 0.4, 0.6, 0.8, 0.3], [0.7, 0.3, 0.9, 0.1, 0.2], [1, 0, 1, 1, 0], meta=True)
    evaluator = EnhancementEvaluator(
        "cpu", data, Scale(0.5), vr_network=MeanThreshold(), val_handlers=[MetricsJSONWriter(tmp_path)]
    )
    evaluator.run()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    with open(tmp_path / "metrics_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["filename"] for r in rows] == [f"img{i}.png" for i in range(5)]
    assert [float(r["accuracy"]) for r in rows] == [0.0, 1.0, 0.0, 0.0, 1.0]  # output 0.1..0.4 -> class 0
    assert [float(r["target_accuracy"]) for r in rows] == [1.0, 1.0, 1.0, 0.0, 1.0]
    # PSNR of a constant error e is -20 log10(e): per image, by hand
    errors = [abs(0.5 * v - t) for v, t in zip([0.2, 0.4, 0.6, 0.8, 0.3], [0.7, 0.3, 0.9, 0.1, 0.2])]
    for row, e in zip(rows, errors):
        assert float(row["psnr"]) == pytest.approx(-20 * math.log10(e), rel=1e-4)
    for key in ("psnr", "ssim", "accuracy", "input_psnr", "input_accuracy", "target_accuracy"):
        assert sum(float(r[key]) for r in rows) / len(rows) == pytest.approx(saved[key], rel=1e-5), key


@pytest.mark.parametrize("decollate", [False, True])
def test_per_image_csv_names_each_image_by_its_data_list_id_without_metadata(tmp_path, decollate):
    """The bundles load with track_meta=False: no file name survives, but every data list item has an ``id``."""
    data = _constant([0.2, 0.4, 0.6], [0.7, 0.3, 0.9], [1, 0, 1])
    ids = iter(["patient7_4CH_ED", "patient7_4CH_ES", "COVID/a.png"])
    for batch in data:
        batch["id"] = [next(ids) for _ in range(len(batch["label"]))]  # strings collate into a list
    evaluator = EnhancementEvaluator("cpu", data, Scale(0.5), vr_network=MeanThreshold(), decollate=decollate,
                                     val_handlers=[MetricsJSONWriter(tmp_path)])
    evaluator.run()
    with open(tmp_path / "metrics_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["patient7_4CH_ED", "patient7_4CH_ES", "COVID/a.png"]


def test_postprocessing_and_decollate_as_in_monai_supervised_evaluator(tmp_path):
    data = _constant([0.2, 0.4, 0.6, 0.8], [0.7, 0.3, 0.9, 0.1], [1, 0, 1, 1], meta=True)
    reference = EnhancementEvaluator("cpu", data, Scale(0.5), vr_network=MeanThreshold())
    reference.run()
    post = Compose([
        Lambdad(keys="pred", func=lambda x: x * 1.0),
        SaveImaged(keys="pred", output_dir=tmp_path, output_postfix="enhanced", output_ext=".png",
                   separate_folder=False, resample=False, scale=255, print_log=False),
    ])
    handlers = [MetricsJSONWriter(tmp_path / "metrics"), EnhancementImageHandler(log_dir=str(tmp_path / "tb"))]
    evaluator = EnhancementEvaluator("cpu", data, Scale(0.5), vr_network=MeanThreshold(), postprocessing=post,
                                     val_handlers=handlers)
    evaluator.run()
    assert isinstance(evaluator.state.output, list) and len(evaluator.state.output) == 2  # decollated
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"img{i}_enhanced.png" for i in range(4)]
    for key, value in reference.state.metrics.items():
        assert evaluator.state.metrics[key] == pytest.approx(value), key
    with open(tmp_path / "metrics" / "metrics_per_image.csv") as f:  # the handlers read decollated outputs too
        assert [r["filename"] for r in csv.DictReader(f)] == [f"img{i}.png" for i in range(4)]
    assert set(_image_tags(tmp_path / "tb")) == {"val_input_HW_0", "val_output_HW_0", "val_target_HW_0"}


def test_unknown_key_metric_names_the_config_key():
    with pytest.raises(ValueError, match="'dice'.*config key 'key_metric'"):
        EnhancementEvaluator("cpu", make_batches(1), Identity(), vr_network=Constant(), key_metric_name="dice")


@pytest.mark.parametrize("key_metric", ["psnr", "accuracy"])
def test_best_model_checkpoint_keeps_the_best_key_metric(tmp_path, key_metric):
    """Three validations with IP factors 0.5, 1.0, 0.8: PSNR is best for 1.0 (the identity: targets = inputs);
    accuracy (inputs 0.6..0.9, labels 1) is 1 for factors 1.0 and 0.8 and 0 for 0.5: the first best (1.0) stays,
    as MONAI's CheckpointSaver keeps a strictly better score only."""
    data = _constant([0.6, 0.7, 0.8, 0.9], [0.6, 0.7, 0.8, 0.9], [1, 1, 1, 1])
    ip = Scale(0.5)
    vr = MeanThreshold()
    saver = AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict={"ip_network": ip, "vr_network": vr},
                                  save_key_metric=True,
                                  key_metric_filename="model.pt", key_metric_n_saved=1)
    evaluator = EnhancementEvaluator("cpu", data, ip, vr_network=vr, key_metric_name=key_metric,
                                     val_handlers=[saver])
    for epoch, factor in enumerate([0.5, 1.0, 0.8], start=1):
        with torch.no_grad():
            ip.factor.fill_(factor)
        evaluator.run(global_epoch=epoch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert float(saved["ip_network"]["factor"]) == pytest.approx(1.0)


def _image_tags(log_dir) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, list[int]] = {}
    for path in log_dir.iterdir():
        acc = EventAccumulator(str(path), size_guidance={"images": 0})
        acc.Reload()
        for tag in acc.Tags()["images"]:
            tags.setdefault(tag, []).extend(e.step for e in acc.Images(tag))
    return tags


def test_tensorboard_images_every_validation_for_a_classifier(tmp_path):
    data = make_batches(2, batch_size=2)  # batches carry a seg mask the classifier never sees
    handler = EnhancementImageHandler(log_dir=str(tmp_path))
    evaluator = EnhancementEvaluator("cpu", data, Identity(), vr_network=Constant(), val_handlers=[handler])
    evaluator.run(global_epoch=1)
    evaluator.run(global_epoch=3)
    tags = _image_tags(tmp_path)
    assert tags == {"val_input_HW_0": [1, 3], "val_output_HW_0": [1, 3], "val_target_HW_0": [1, 3]}


def test_tensorboard_images_show_vr_prediction_for_segmentation_and_rgb_as_colour(tmp_path):
    data = make_batches(1, batch_size=2)
    for batch in data:
        for key in ("image", "target"):
            batch[key] = batch[key].repeat(1, 3, 1, 1)
    handler = EnhancementImageHandler(log_dir=str(tmp_path))
    evaluator = EnhancementEvaluator("cpu", data, Identity(), vr_network=TinySegmenter(channels=3),
                                     vr_target_key="seg", val_handlers=[handler])
    evaluator.run()
    assert set(_image_tags(tmp_path)) == {"val_input_CHW", "val_output_CHW", "val_target_CHW", "val_vr_pred_HW_0",
                                          "val_vr_target_HW_0"}


def test_monai_metrics_saver_reads_per_image_details_and_filenames(tmp_path):
    data = _constant([0.2, 0.4, 0.6, 0.8], [0.7, 0.3, 0.9, 0.1], [1, 0, 1, 1], meta=True)
    saver = MetricsSaver(save_dir=str(tmp_path), metrics=["psnr"], metric_details=["accuracy"],
                         batch_transform=lambda batch: [sample["image"].meta for sample in batch])
    evaluator = EnhancementEvaluator("cpu", data, Scale(0.5), vr_network=MeanThreshold(), decollate=True,
                                     val_handlers=[saver])
    evaluator.run()
    rows = (tmp_path / "accuracy_raw.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [f"img{i}.png" for i in range(4)]
    assert [float(r.split(",")[1]) for r in rows[1:]] == [0.0, 1.0, 0.0, 0.0]  # outputs 0.1..0.4: class 0
    assert (tmp_path / "metrics.csv").read_text().startswith("psnr")
