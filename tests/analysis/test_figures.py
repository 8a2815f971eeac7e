"""Qualitative grids, TensorBoard curves and metric bars: numbers checked by hand, errors named."""

from __future__ import annotations

import json
import math

import pytest
import torch

from monai_gradprom.analysis.bars import group_by_field, plot_metric_bars, summarize_metrics
from monai_gradprom.analysis.curves import plot_training_curves, read_scalars, smooth
from monai_gradprom.analysis.qualitative import image_quality, plot_qualitative_grid


def test_image_quality_psnr_by_hand():
    target = torch.full((2, 1, 16, 16), 0.5)
    images = target.clone()
    images[0] += 0.1  # MSE 0.01 -> PSNR 20 dB
    images[1] -= 0.01  # MSE 1e-4 -> PSNR 40 dB
    psnr, ssim = image_quality(images, target)
    assert psnr.tolist() == pytest.approx([20.0, 40.0], abs=1e-4)
    assert ssim.shape == (2,) and float(image_quality(target, target)[1][0]) == pytest.approx(1.0, abs=1e-5)


def test_qualitative_grid_numbers_and_predictions(tmp_path):
    target = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    noisy = (target + 0.1).clamp(0, 1)
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    payload = plot_qualitative_grid({"input": noisy, "ip": target.clone()}, target, tmp_path / "grid.png",
                                    predictions={"input": logits}, labels=labels, json_path=tmp_path / "grid.json")
    assert payload["columns"] == ["input", "ip", "target"]
    assert payload["per_image"]["input"]["prediction"] == [0, 1, 0]
    assert payload["per_image"]["input"]["psnr"] == pytest.approx(image_quality(noisy, target)[0].tolist())
    # a perfect output has infinite PSNR: written as null in strict JSON, never NaN / Infinity
    saved = json.loads((tmp_path / "grid.json").read_text())
    assert saved["per_image"]["ip"]["psnr"] == [None, None, None]
    assert (tmp_path / "grid.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="column 'bad'"):
        plot_qualitative_grid({"bad": target[:, :, :8]}, target, tmp_path / "x.png")


def _write_events(logdir, tag_values: dict[str, list[float]], second: dict[str, list[float]] | None = None):
    """Two writers into one folder, as the bundles' training and validation TensorBoard handlers do."""
    from torch.utils.tensorboard import SummaryWriter

    for values in (tag_values, second or {}):
        if not values:
            continue
        writer = SummaryWriter(log_dir=str(logdir))
        for tag, series in values.items():
            for step, v in enumerate(series, start=1):
                writer.add_scalar(tag, v, step)
        writer.close()


def test_read_scalars_keeps_every_point_of_both_writers(tmp_path):
    _write_events(tmp_path / "run", {"loss_ip": [0.5, 0.4, 0.3, 0.2], "cos": [0.1, -0.2, 0.3, 0.0]},
                  {"val_psnr": [20.0, 21.5]})
    scalars = read_scalars(tmp_path / "run")
    assert scalars["loss_ip"] == [(1, 0.5), (2, pytest.approx(0.4)), (3, pytest.approx(0.3)), (4, pytest.approx(0.2))]
    assert [v for _, v in scalars["cos"]] == pytest.approx([0.1, -0.2, 0.3, 0.0])
    assert scalars["val_psnr"] == [(1, 20.0), (2, 21.5)]  # the second writer's file is not purged
    assert set(read_scalars(tmp_path / "run", tags=["cos"])) == {"cos"}


def test_smooth_is_tensorboards_debiased_ema():
    assert smooth([1.0, 0.0], 0.5) == pytest.approx([1.0, 1.0 / 3.0])
    assert smooth([3.0, 1.0, 2.0], 0.0) == [3.0, 1.0, 2.0]


def test_training_curves_figure_and_errors(tmp_path):
    _write_events(tmp_path / "a", {"loss_ip": [0.5, 0.4, 0.3], "gate": [1.0, 0.0, 1.0]})
    _write_events(tmp_path / "b", {"loss_ip": [0.6, 0.5, 0.45], "gate": [float("nan")] * 3})  # plain: NaN gate
    scalars = plot_training_curves({"gradprom": tmp_path / "a", "plain": tmp_path / "b"}, tmp_path / "c.png",
                                   tags=("loss_ip", "gate", "cos"), csv_path=tmp_path / "c.csv")
    assert "gate" not in scalars["plain"] and len(scalars["gradprom"]["gate"]) == 3
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[0] == "run,tag,step,value" and len(rows) == 1 + 3 + 3 + 3
    with pytest.raises(KeyError, match="none of the tags"):
        plot_training_curves({"a": tmp_path / "a"}, tmp_path / "d.png", tags=("loss_vr",))
    with pytest.raises(FileNotFoundError, match="missing"):
        read_scalars(tmp_path / "missing")


def _metrics(path, **values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return path


def test_metric_bars_mean_and_sample_std_by_hand(tmp_path):
    a = [_metrics(tmp_path / f"a{i}" / "metrics.json", strategy="plain", psnr=p, input_psnr=10.0)
         for i, p in enumerate((20.0, 22.0, 24.0))]
    b = [_metrics(tmp_path / "b0" / "metrics.json", strategy="gradprom", psnr=25.0, input_psnr=10.0)]
    summary = summarize_metrics({"plain": a, "gradprom": b}, ["psnr"])
    assert summary["plain"]["psnr"]["mean"] == pytest.approx(22.0)
    assert summary["plain"]["psnr"]["std"] == pytest.approx(2.0)  # sample std of 20, 22, 24
    assert summary["gradprom"]["psnr"] == {"mean": 25.0, "std": 0.0, "n": 1, "values": [25.0]}
    assert group_by_field(a + b) == {"plain": a, "gradprom": b}
    payload = plot_metric_bars({"plain": a, "gradprom": b}, tmp_path / "bars.png", metrics=["psnr"],
                               csv_path=tmp_path / "bars.csv")
    assert payload["baselines"] == {"psnr": 10.0}
    assert (tmp_path / "bars.csv").read_text().splitlines()[1].startswith("plain,psnr,22.0,2.0,3")
    with pytest.raises(KeyError, match="'ssim' not found in .*a0"):
        summarize_metrics({"plain": a}, ["ssim"])
    with pytest.raises(KeyError, match="no field 'seed'"):
        group_by_field(a, "seed")


def test_metric_bars_nan_values_stay_nan(tmp_path):
    a = [_metrics(tmp_path / "x" / "metrics.json", psnr=None)]
    assert math.isnan(summarize_metrics({"g": a}, ["psnr"])["g"]["psnr"]["mean"])
