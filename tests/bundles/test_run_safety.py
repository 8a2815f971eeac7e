"""Issue 18: a run never silently replaces a finished one, reuses a VR cache made for other data, or finds a typo'd
key metric only after VR pretraining. Fast tests run the bundles' configs in-process at smoke sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_gradprom.config import ConfigError, key_metric_names, prepare_fresh_run, validate_config
from tests.bundles.helpers import REPO

TRAIN, SMOKE = (str(REPO / "bundles" / "demo" / f"{n}.json") for n in ("train", "smoke"))


def _workflow(out: Path, **overrides) -> ConfigWorkflow:
    return ConfigWorkflow(config_file=[TRAIN, SMOKE], logging_file=False, workflow_type=None,
                          output_dir=str(out), device="$torch.device('cpu')", **overrides)


# -- 5. key_metric checked with the rest of the configuration --------------------------------------------------------


def test_key_metric_names_follow_the_task():
    assert "accuracy" in key_metric_names("label") and "dice" not in key_metric_names("label")
    assert {"psnr", "ssim", "dice", "miou", "input_dice"} <= set(key_metric_names("seg"))


def test_unknown_key_metric_is_reported_with_the_valid_names(tmp_path):
    with pytest.raises(ConfigError) as error:
        validate_config(output_dir=tmp_path, key_metric="psnrr", vr_target_key="label")
    text = str(error.value)
    assert "key_metric 'psnrr'" in text and "did you mean 'psnr'" in text and "'accuracy'" in text
    validate_config(output_dir=tmp_path, key_metric="dice", vr_target_key="seg")


@pytest.mark.parametrize("bundle", ["demo", "camus"])
def test_bundle_refuses_a_typod_key_metric_before_vr_pretraining(bundle, tmp_path):
    out = tmp_path / "out"
    files = [str(REPO / "bundles" / bundle / f) for f in ("train.json", "smoke.json")]
    workflow = ConfigWorkflow(config_file=files, logging_file=False, workflow_type=None, output_dir=str(out),
                              key_metric="psnrr")
    with pytest.raises(Exception) as error:
        workflow.initialize()
    assert "key_metric 'psnrr' is not a metric of the evaluator" in str(error.value.__cause__)
    assert not (out / "vr_pretrained.pt").exists()


# -- 2. a finished run is not silently replaced ----------------------------------------------------------------------


def _finished_run(out: Path) -> dict[str, bytes]:
    """A folder as a finished, evaluated run leaves it, plus the user's own files."""
    out.mkdir(parents=True)
    files = {"model_final.pt": b"final", "model.pt": b"best", "checkpoint_iteration=8.pt": b"interval",
             "checkpoint_mine.pt": b"mine as well",
             "metrics.json": b"{}", "metrics_per_image.csv": b"index\n", "vr_pretrained.pt": b"cache",
             "notes.txt": b"mine", "model_final.pt.bak": b"mine too", "tensorboard/events": b"tb"}
    for name, content in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    return files


def test_new_run_into_a_finished_run_is_refused_naming_the_file(tmp_path):
    files = _finished_run(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"model_final.pt exists.*--overwrite true"):
        prepare_fresh_run(tmp_path / "out", resume="false", overwrite=False)
    assert {n: (tmp_path / "out" / n).read_bytes() for n in files} == files  # nothing touched
    assert prepare_fresh_run(tmp_path / "out", resume=True) == []  # resuming is the resume step's business
    with pytest.raises(ConfigError, match="both true"):
        prepare_fresh_run(tmp_path / "out", resume=True, overwrite="true")
    assert prepare_fresh_run(tmp_path / "empty") == []  # no finished run: nothing to refuse


def test_overwrite_removes_the_old_model_and_its_metrics_only(tmp_path):
    out = tmp_path / "out"
    files = _finished_run(out)
    removed = prepare_fresh_run(out, resume=False, overwrite="true")
    assert sorted(p.name for p in removed) == ["checkpoint_iteration=8.pt", "metrics.json",
                                               "metrics_per_image.csv", "model.pt", "model_final.pt"]
    kept = {n: c for n, c in files.items() if n not in {p.name for p in removed}}
    assert {n: (out / n).read_bytes() for n in kept} == kept
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(kept)


def test_train_bundle_refuses_before_pretraining_and_overwrite_is_a_bundle_key(tmp_path):
    out = tmp_path / "out"
    _finished_run(out)
    (out / "vr_pretrained.pt").unlink()
    workflow = _workflow(out)
    workflow.initialize()
    with pytest.raises(Exception) as error:
        workflow.run()
    assert "model_final.pt exists" in str(error.value.__cause__ or error.value)
    assert not (out / "vr_pretrained.pt").exists() and (out / "model_final.pt").read_bytes() == b"final"

    parser = ConfigParser()
    parser.read_config([TRAIN, SMOKE])
    assert parser["overwrite"] is False
    parser.update({"output_dir": str(out), "overwrite": "true"})  # as fire passes --overwrite true
    parser.get_parsed_content("check_config")
    parser.get_parsed_content("run#0")  # the first step of the run, before VR pretraining
    assert not (out / "model_final.pt").exists() and not (out / "metrics.json").exists()
    assert (out / "notes.txt").read_bytes() == b"mine"
    parser["overwrite"] = "yes"
    with pytest.raises(Exception) as error:
        ConfigParser(parser.config).get_parsed_content("check_config")
    assert "'overwrite' must be a boolean" in str(error.value.__cause__ or error.value)


def test_every_train_config_checks_the_run_folder_first():
    for train in sorted((REPO / "bundles").glob("*/train.json")):
        for name in ("train.json", "multi_gpu_train.json"):
            config = json.loads((train.parent / name).read_text())
            run = config["run"]
            steps = [s for s in run if "pretrain_vr" in s or "prepare_fresh_run" in s]
            assert "prepare_fresh_run" in steps[0], (train.parent.name, name)
        assert json.loads(train.read_text())["overwrite"] is False


# -- 3. the VR pretraining cache records what it depends on ----------------------------------------------------------


def _demo(out: Path, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([TRAIN, SMOKE])
    parser.update({"output_dir": str(out), "device": "$torch.device('cpu')", **overrides})
    return parser


def test_bundle_cache_of_another_seed_and_data_is_pretrained_again(tmp_path, caplog):
    out = tmp_path / "out"
    _demo(out).get_parsed_content("pretrain_vr")
    cache = out / "vr_pretrained.pt"
    first = torch.load(cache, weights_only=True)["pretraining"]
    assert first["seed"] == 0 and len(first["datalist"]) == 64 and first["epochs"] == 1
    caplog.set_level("WARNING")
    _demo(out, seed=3, num_train=48).get_parsed_content("pretrain_vr")  # the issue's --seed 3 --num_train 48
    assert "seed: 0 (cache) vs 3 (this run)" in caplog.text and "datalist:" in caplog.text
    second = torch.load(cache, weights_only=True)["pretraining"]
    assert second["seed"] == 3 and second["datalist"] != first["datalist"]
    caplog.clear()
    _demo(out, seed=3, num_train=48, strategy="plain").get_parsed_content("pretrain_vr")  # same data: reused
    assert "pretraining VR again" not in caplog.text


def test_bundle_never_overwrites_a_given_vr_checkpoint_it_did_not_write(tmp_path):
    parser = _demo(tmp_path / "out")
    mine = tmp_path / "my_vr.pt"
    torch.save(parser.get_parsed_content("vr_network_def").state_dict(), mine)
    original = mine.read_bytes()
    parser["vr_checkpoint"] = str(mine)
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("pretrain_vr")
    assert "my_vr.pt records no pretraining settings" in str(error.value.__cause__ or error.value)
    assert mine.read_bytes() == original
    parser = _demo(tmp_path / "out", vr_checkpoint=str(mine), pretrain_epochs=0)
    parser.get_parsed_content("pretrain_vr")  # used as it is, on request
    assert mine.read_bytes() == original
