"""Settings-keyed pieces: a piece is served only under the settings that made it, and a folder of another
source (or of the old, unrecorded layout) is refused naming the file."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from monai_gradprom.experiments.store import (
    ForeignFolderError,
    PieceStore,
    StalePieceError,
    claim_folder,
    describe_differences,
    settings_digest,
    tensor_digest,
)


def test_digest_depends_on_content_not_key_order():
    assert settings_digest({"a": 1, "b": {"c": 2}}) == settings_digest({"b": {"c": 2}, "a": 1})
    assert settings_digest({"a": 1}) != settings_digest({"a": 2})
    assert tensor_digest({"x": torch.zeros(3)}) != tensor_digest({"x": torch.zeros(4)})
    assert tensor_digest({"x": torch.zeros(3)}) != tensor_digest({"x": torch.tensor([0.0, 0.0, 1e-6])})


def test_differences_are_named_by_path():
    old = {"data": {"degradation": "gaussian:0.1", "digest": "a"}, "steps": 200}
    new = {"data": {"degradation": "gaussian:0.3", "digest": "a"}, "steps": 200, "regime": "cascade"}
    assert describe_differences(old, new) == ["data.degradation: 'gaussian:0.1' -> 'gaussian:0.3'",
                                              "regime: (absent) -> 'cascade'"]


def test_a_piece_is_computed_once_per_settings_and_old_pieces_stay(tmp_path, caplog):
    store, calls = PieceStore(tmp_path), []

    def make(value):
        def inner():
            calls.append(value)
            return {"value": value}
        return inner

    first = {"degradation": "gaussian:0.1", "steps": 200}
    assert store.json_piece("seed0", "run_plain", first, make(1)) == {"value": 1}
    assert store.json_piece("seed0", "run_plain", dict(first), make(2)) == {"value": 1}  # reused: not recomputed
    assert calls == [1]
    changed = {"degradation": "gaussian:0.3", "steps": 200}
    with caplog.at_level("INFO", logger="monai_gradprom.experiments"):
        assert store.json_piece("seed0", "run_plain", changed, make(3)) == {"value": 3}
    assert calls == [1, 3]
    assert "degradation: 'gaussian:0.1' -> 'gaussian:0.3'" in caplog.text
    assert len(list((tmp_path / "seed0").glob("run_plain-*.json"))) == 2  # the first settings' piece is kept
    assert store.json_piece("seed0", "run_plain", first, make(4)) == {"value": 1}


def test_an_edited_piece_is_refused_naming_the_difference(tmp_path):
    store = PieceStore(tmp_path)
    settings = {"steps": 200, "lr": 1e-4}
    store.json_piece("seed0", "calibration", settings, lambda: {"ratio": 3.0})
    path = next((tmp_path / "seed0").glob("calibration-*.json"))
    record = json.loads(path.read_text())
    record["depends_on"]["steps"] = 100  # someone edited the record
    path.write_text(json.dumps(record))
    with pytest.raises(StalePieceError, match=r"calibration-.*steps: 100 -> 200"):
        store.json_piece("seed0", "calibration", settings, lambda: {"ratio": 0.0})


def test_network_pieces_round_trip(tmp_path):
    store = PieceStore(tmp_path)
    torch.manual_seed(0)
    trained = nn.Linear(3, 2)
    meta = store.network_piece("seed1", "judge", {"arch": "linear"}, trained, lambda: {"clean_score": 0.9})
    fresh = nn.Linear(3, 2)
    assert not torch.equal(fresh.weight, trained.weight)
    again = store.network_piece("seed1", "judge", {"arch": "linear"}, fresh, lambda: pytest.fail("retrained"))
    assert again == meta == {"clean_score": 0.9} and torch.equal(fresh.weight, trained.weight)


def test_a_folder_of_another_source_is_refused(tmp_path):
    claim_folder(tmp_path / "o", {"bundle": "demo", "dataset_dir": None})
    claim_folder(tmp_path / "o", {"bundle": "demo", "dataset_dir": None})  # the same source: fine
    with pytest.raises(ForeignFolderError, match=r"comparison\.json.*bundle: 'demo' -> 'camus'"):
        claim_folder(tmp_path / "o", {"bundle": "camus", "dataset_dir": "/data/camus"})


def test_a_folder_of_the_old_unrecorded_layout_is_refused(tmp_path):
    (tmp_path / "old" / "seed0").mkdir(parents=True)
    (tmp_path / "old" / "seed0" / "plain_ip.pt").write_bytes(b"")
    with pytest.raises(ForeignFolderError, match=r"seed0/plain_ip\.pt.*recorded no settings"):
        claim_folder(tmp_path / "old", {"bundle": "demo", "dataset_dir": None})
