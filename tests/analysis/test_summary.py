"""The demo's comparison table: rows from metrics.json files, in the order input, outputs, clean."""

from __future__ import annotations

import json

import pytest

from monai_gradprom.analysis.summary import format_summary, main, summary_rows


def _metrics(strategy, psnr, accuracy, target=None):
    out = {"strategy": strategy, "psnr": psnr, "ssim": 0.5, "accuracy": accuracy,
           "input_psnr": 20.0, "input_ssim": 0.2, "input_accuracy": 0.5}
    if target is not None:
        out["target_accuracy"] = target
    return out


def test_rows_read_input_outputs_and_clean():
    rows = summary_rows([_metrics("plain", 30.0, 0.7, 0.99), _metrics("gradprom", 29.5, 0.9, 1.0)])
    assert [r["image"] for r in rows] == ["degraded input", "plain output", "gradprom output", "clean image"]
    assert [r["accuracy"] for r in rows] == [0.5, 0.7, 0.9, 0.99]  # clean: from the first file with target_*
    assert rows[0]["psnr"] == 20.0 and rows[-1]["psnr"] is None
    table = format_summary(rows).splitlines()
    assert table[0] == "| image | psnr | ssim | accuracy |"
    assert table[2] == "| degraded input | 20.00 | 0.200 | 0.500 |" and table[-1] == "| clean image | - | - | 0.990 |"


def test_without_target_metrics_there_is_no_clean_row():
    assert [r["image"] for r in summary_rows([_metrics("plain", 30.0, 0.7)])] == ["degraded input", "plain output"]


def test_missing_file_is_named(tmp_path, capsys):
    good = tmp_path / "m.json"
    good.write_text(json.dumps(_metrics("plain", 30.0, 0.7, 1.0)))
    assert main([str(good)]) == 0 and "plain output" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="nope.json"):
        main([str(tmp_path / "nope.json")])
