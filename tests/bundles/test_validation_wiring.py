"""Every bundle's validation: the best model (``model.pt``) on a selectable key metric, fixed degradations,
TensorBoard images; the trainer's key metric is training PSNR, not the gate rate."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundles.helpers import REPO

BUNDLES = ["demo", "isic2018", "covid_ct", "lizard", "camus"]


def _parser(*files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO / f) for f in files])
    return parser


def _targets(handlers: list) -> dict[str, dict]:
    return {h["_target_"].rsplit(".", 1)[-1]: h for h in handlers if isinstance(h, dict)}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_validation_saves_best_model_on_the_key_metric(bundle):
    parser = _parser(f"bundles/{bundle}/train.json")
    assert parser["key_metric"] == "psnr"
    assert parser["validate"]["evaluator"]["key_metric_name"] == "@key_metric"
    assert parser["validate"]["evaluator"]["val_handlers"] == "@validate#handlers"
    handlers = _targets(parser["validate"]["all_handlers"])
    saver = handlers["AtomicCheckpointSaver"]
    assert saver["save_key_metric"] is True and saver["key_metric_filename"] == "model.pt"
    for key in ("ip_network", "vr_network", "transformer_network", "config"):
        assert key in saver["save_dict"], key
    assert "EnhancementImageHandler" in handlers
    # the trainer's key metric is training PSNR; the gate rate is an additional metric
    assert list(parser["train"]["key_metric"]) == ["train_psnr"]
    assert parser["train"]["trainer"]["key_train_metric"] == "@train#key_metric"
    assert parser["train"]["trainer"]["additional_metrics"] == "@train#metrics"
    assert "gate_rate" in parser["train"]["metrics"]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_validation_and_test_degradations_are_seeded_per_sample(bundle):
    for files, dataset in (([f"bundles/{bundle}/train.json"], "validate#dataset"),
                           ([f"bundles/{bundle}/train.json", f"bundles/{bundle}/evaluate.json"], "dataset")):
        config = _parser(*files).get(dataset)
        assert config["_target_"].endswith("SeededCacheDataset") and config["seed"] == "@seed", (files, dataset)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_multi_gpu_keeps_the_validation_handlers_on_rank_zero(bundle):
    parser = _parser(f"bundles/{bundle}/train.json", f"bundles/{bundle}/multi_gpu_train.json")
    assert parser["validate"]["handlers"] == "$@validate#all_handlers if @rank == 0 else []"
    assert "AtomicCheckpointSaver" in _targets(parser["validate"]["all_handlers"])


def test_demo_validator_selects_key_metric_and_sees_the_same_images_every_pass(tmp_path):
    parser = _parser("bundles/demo/train.json", "bundles/demo/smoke.json")
    parser["output_dir"] = str(tmp_path)
    parser["key_metric"] = "accuracy"
    parser["num_val"] = 8
    evaluator = parser.get_parsed_content("validate#evaluator")
    assert evaluator.state.key_metric_name == "accuracy"
    evaluator.run(global_epoch=1)
    first = dict(evaluator.state.metrics)
    evaluator.run(global_epoch=2)
    assert evaluator.state.metrics == first  # same degraded inputs, same networks: same numbers
    saved = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)
    assert {"ip_network", "vr_network", "config"} <= set(saved)
