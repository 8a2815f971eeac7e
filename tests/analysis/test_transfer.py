"""Transferability table: known answers on identical and hand-built recognizers; recognizer training."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from monai_gradprom.analysis.transfer import recognition_scores, train_recognizers, transfer_table
from tests.conftest import NoBNClassifier, TinyIP, make_batches


def _data(n_batches: int = 2) -> dict[str, torch.Tensor]:
    batches = make_batches(n_batches=n_batches, batch_size=4, size=8)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


class ThresholdSegmenter(nn.Module):
    """Foreground exactly where the image is above 0.5: a perfect segmenter of ``seg = target > 0.5``."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(100.0))

    def forward(self, x):
        return torch.cat([self.scale * (0.5 - x), self.scale * (x - 0.5)], 1)


def test_identical_recognizers_give_equal_entries_in_every_row():
    torch.manual_seed(0)
    vr = NoBNClassifier()
    recognizers = {"a": vr, "b": copy.deepcopy(vr), "c": copy.deepcopy(vr)}
    ip = TinyIP()
    enhancers = {"no processing": None, "ip": ip, "ip2": copy.deepcopy(ip)}
    data = _data()
    table = transfer_table(enhancers, recognizers, data, batch_size=3, show_progress=False, clean_row="clean")
    assert table.rows == ["no processing", "ip", "ip2", "clean"] and table.columns == ["a", "b", "c"]
    for row in table.values:
        assert row[0] == row[1] == row[2]
    assert table.values[1] == table.values[2]  # identical enhancers: identical rows
    # one cell by hand: accuracy of VR on the unprocessed input, and on the clean targets
    with torch.no_grad():
        assert table.values[0][0] == pytest.approx(float((vr(data["image"]).argmax(1) == data["label"]).float().mean()))
        assert table.values[3][0] == pytest.approx(float((vr(data["target"]).argmax(1) == data["label"]).float().mean()))
    assert table.metric == "accuracy" and table.n_images == 8


def test_segmentation_dice_of_a_perfect_segmenter():
    data = _data()
    table = transfer_table({"none": None}, {"thr": ThresholdSegmenter()}, data, task_key="seg", num_classes=2,
                           show_progress=False, clean_row="clean")
    assert table.metric == "dice"
    assert table.values[1][0] == pytest.approx(1.0)  # clean targets: exact masks
    assert 0.0 < table.values[0][0] < 1.0  # noisy input: some pixels flip


def test_recognition_scores_errors_and_values():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert recognition_scores(logits, torch.tensor([0, 1, 1])).tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="task key 'box'"):
        recognition_scores(logits, torch.tensor([0, 1, 1]), task_key="box")
    with pytest.raises(KeyError, match="'seg'"):
        transfer_table({"none": None}, {"thr": ThresholdSegmenter()}, {"image": logits, "target": logits}, task_key="seg")


def test_table_written_atomically_as_json_csv_png(tmp_path):
    torch.manual_seed(0)
    table = transfer_table({"none": None, "ip": TinyIP()}, {"a": NoBNClassifier(), "b": NoBNClassifier()}, _data(1),
                           show_progress=False)
    paths = table.write(tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["values"] == table.values and saved["rows"] == ["none", "ip"]
    assert paths["csv"].read_text().splitlines()[0] == "processing,a,b"
    assert paths["png"].stat().st_size > 1000
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_train_recognizers_saves_then_reuses_checkpoints(tmp_path):
    batches = make_batches(n_batches=2, batch_size=4, size=8)
    built = []

    def build(arch: str) -> nn.Module:
        built.append(arch)
        return NoBNClassifier()

    first = train_recognizers(build, ["small", "large"], batches, epochs=1, output_dir=tmp_path, show_progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["large.pt", "small.pt"]
    again = train_recognizers(build, ["small"], [], epochs=1, output_dir=tmp_path, show_progress=False)  # no data: loaded
    for p, q in zip(first["small"].parameters(), again["small"].parameters()):
        assert torch.equal(p, q)
    assert built == ["small", "large", "small"]
