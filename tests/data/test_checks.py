"""A corrupt or missing file fails before training with its path named, or is skipped and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from monai_gradprom.data.checks import DataCheckError, verify_datalist


def _datalist(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    return [
        {"image": str(good), "label": 0},
        {"image": str(truncated), "label": 1},
        {"image": str(good), "seg": str(tmp_path / "missing_mask.png"), "label": 0},
    ]


def test_corrupt_file_raises_naming_it(tmp_path):
    with pytest.raises(DataCheckError, match="truncated.png"):
        verify_datalist(_datalist(tmp_path), progress=False)


def test_missing_mask_is_named(tmp_path):
    items = _datalist(tmp_path)
    with pytest.raises(DataCheckError, match="missing_mask.png: file not found"):
        verify_datalist([items[2]], progress=False)


def test_skip_mode_drops_and_reports(tmp_path):
    report = tmp_path / "out" / "skipped_files.json"
    kept = verify_datalist(_datalist(tmp_path), on_error="skip", report_path=report, progress=False)
    assert len(kept) == 1 and kept[0]["label"] == 0
    skipped = json.loads(report.read_text())
    assert [s["item"]["image"].endswith("truncated.png") for s in skipped] == [True, False]
    assert "seg" in skipped[1]["problems"]


def test_in_memory_items_pass_and_bad_mode_is_refused(tmp_path):
    assert len(verify_datalist([{"image": np.zeros((1, 4, 4))}], progress=False)) == 1
    with pytest.raises(ValueError, match="on_error"):
        verify_datalist([], on_error="ignore")
