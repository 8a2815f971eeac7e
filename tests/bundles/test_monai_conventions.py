"""The bundles follow MONAI's own conventions, checked with MONAI's own tools where it has them.

- ``ConfigWorkflow(..., workflow_type="train" | "infer").check_properties()`` finds every property it requires
  (train: ``train.json``; infer: ``train.json`` + ``evaluate.json`` and ``inference.json``), and the properties
  are the objects the workflow really uses (a MONAI app that sets ``inferer`` changes what runs);
- ``verify_net_in_out`` on ``network_def`` against the metadata's ``network_data_format``;
- ``metadata.json`` validates against the schema it names (vendored in ``monai_gradprom/bundle/schemas``) and
  describes the networks the configs build;
- ``logging.conf`` is applied without MONAI's "does not exist" warning and shows the package's INFO lines;
- the model-zoo command ``python -m monai.bundle run --config_file "['train.json','evaluate.json']"`` (default run
  id ``run``) evaluates, and never pretrains, trains or writes a training checkpoint;
- an empty evaluation split is an error, never a silent exit 0 without ``metrics.json``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, verify_net_in_out
from monai.inferers import SimpleInferer, SlidingWindowInferer
from PIL import Image

from monai_gradprom.data.fixtures import write_fixture
from monai_gradprom.networks import SRResNet
from tests.bundles.helpers import REPO

BUNDLES = ("demo", "isic2018", "covid_ct", "lizard", "camus")
SCHEMAS = REPO / "monai_gradprom" / "bundle" / "schemas"  # shipped with the package (issue 18.9)


def _files(name: str, *parts: str) -> list[str]:
    return [str(REPO / f"bundles/{name}/{part}.json") for part in parts]


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    """One miniature data set per data-set bundle (written once), ``None`` for the self-contained demo."""
    cache: dict[str, Path | None] = {"demo": None}

    def get(name: str) -> Path | None:
        if name not in cache:
            cache[name] = write_fixture(name, tmp_path_factory.mktemp(name) / "data")
        return cache[name]

    return get


def _workflow(name: str, workflow_type: str, parts: tuple[str, ...], **override) -> ConfigWorkflow:
    workflow = ConfigWorkflow(
        config_file=_files(name, *parts), meta_file=str(REPO / f"bundles/{name}/metadata.json"),
        logging_file=False,  # the test process keeps its own logging; logging.conf is checked in a subprocess
        workflow_type=workflow_type, **override,
    )
    workflow.initialize()
    return workflow


# ---------------------------------------------------------------------------------------------------------------
# bundle properties
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLES)
def test_train_workflow_has_every_property(name, data_dirs, tmp_path):
    no_caching = {"train#dataset#cache_rate": 0.0, "validate#dataset#cache_rate": 0.0}  # nothing is loaded here
    workflow = _workflow(name, "train", ("train", "smoke"), dataset_dir=data_dirs(name), output_dir=str(tmp_path),
                         **no_caching)
    try:
        assert workflow.check_properties() == []
        trainer = workflow.trainer
        assert workflow.max_epochs == trainer.state.max_epochs == 2  # smoke.json's, read through the property
        assert isinstance(workflow.network_def, SRResNet) and workflow.network_def is trainer.ip_network
        assert isinstance(workflow.train_inferer, SimpleInferer)
        assert workflow.train_dataset is trainer.data_loader.dataset.dataset  # EpochSeededDataset around it
        assert isinstance(workflow.val_inferer, SimpleInferer) and workflow.evaluator.inferer is workflow.val_inferer
        assert list(workflow.train_key_metric) == [trainer.state.key_metric_name]  # the trainer's key metric
        assert Path(workflow.bundle_root) == REPO / "bundles" / name
    finally:
        workflow.finalize()


@pytest.mark.parametrize("name", BUNDLES)
def test_evaluate_workflow_has_every_property(name, data_dirs, tmp_path):
    workflow = _workflow(name, "infer", ("train", "evaluate", "smoke"), dataset_dir=data_dirs(name),
                         output_dir=str(tmp_path), **{"dataset#cache_rate": 0.0, "validate#dataset#cache_rate": 0.0})
    try:
        assert workflow.check_properties() == []
        evaluator = workflow.evaluator
        assert evaluator.inferer is workflow.inferer and isinstance(workflow.inferer, SimpleInferer)
        assert evaluator.data_loader.dataset is workflow.dataset
        assert len(workflow.dataset) == len(workflow.parser.get_parsed_content("datalists")["test"]) > 0
        assert isinstance(workflow.network_def, SRResNet) and workflow.network_def is evaluator.ip_network
        assert workflow.parser["evaluating"] == "@run"  # the old run id is an alias
    finally:
        workflow.finalize()


@pytest.mark.parametrize("name", BUNDLES)
def test_inference_workflow_has_every_property(name, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8), mode="L").save(inputs / "a.png")
    # dataset_dir (MONAI's property) is the folder the enhancer reads
    # a checkpoint path that does not exist: the config's own sizes apply (not those of a model_final.pt that a
    # demo run may have left in outputs/)
    workflow = _workflow(name, "infer", ("inference",), dataset_dir=str(inputs), output_dir=str(tmp_path / "out"),
                         ip_channels=4, ip_blocks=1, checkpoint=str(tmp_path / "none.pt"))
    assert workflow.check_properties() == []
    assert [item["image"] for item in workflow.dataset.data] == [str(inputs / "a.png")]
    assert isinstance(workflow.inferer, SlidingWindowInferer)
    assert workflow.evaluator.kwargs["inferer"] is workflow.inferer  # the enhancer runs the property's inferer
    assert workflow.evaluator.network is workflow.parser.get_parsed_content("network")
    assert workflow.evaluator.input_dir == str(inputs)


@pytest.mark.parametrize("name", BUNDLES)
def test_verify_net_in_out_on_network_def(name):
    for parts, override in ((("train", "smoke"), {}),
                            (("inference",), {"ip_channels": 4, "ip_blocks": 1, "checkpoint": "/nonexistent/model.pt"})):
        verify_net_in_out(net_id="network_def", meta_file=str(REPO / f"bundles/{name}/metadata.json"),
                          config_file=_files(name, *parts), device="cpu", **override)


# ---------------------------------------------------------------------------------------------------------------
# metadata.json
# ---------------------------------------------------------------------------------------------------------------

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _validate(value, schema: dict, root: dict, path: str = "$") -> list[str]:
    """The subset of JSON Schema draft 4 the vendored schema uses. An unknown keyword is an error, so this can
    never pass a file by ignoring a rule (used only where the ``jsonschema`` package is not installed)."""
    known = {"$schema", "type", "properties", "required", "items", "additionalProperties", "$ref", "definitions",
             "enum", "description"}
    unknown = set(schema) - known
    if unknown:
        raise NotImplementedError(f"schema keywords {sorted(unknown)} at {path}")
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _validate(value, target, root, path)
    errors = []
    types = schema.get("type")
    if types is not None and not any(_is_type(value, t) for t in ([types] if isinstance(types, str) else types)):
        return [f"{path}: {value!r} is not of type {types}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        errors += [f"{path}: '{key}' is a required property" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += _validate(item, properties[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: additional property '{key}'")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _validate(item, schema["additionalProperties"], root, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += _validate(item, schema["items"], root, f"{path}[{index}]")
    return errors


def _schema_errors(document: dict, schema: dict) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        return _validate(document, schema, schema)
    validator = jsonschema.Draft4Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_schema_validator_rejects_what_the_schema_forbids():
    schema = json.loads((SCHEMAS / "meta_schema_20240725.json").read_text())
    good = json.loads((REPO / "bundles/demo/metadata.json").read_text())
    assert _schema_errors(good, schema) == []
    bad = json.loads(json.dumps(good))
    del bad["name"]
    bad["network_data_format"]["inputs"]["image"]["num_channels"] = "1"
    bad["network_data_format"]["outputs"]["pred"]["value_range"] = ["0", 1]
    errors = " | ".join(_schema_errors(bad, schema))
    assert "'name' is a required property" in errors and "'1' is not of type" in errors, errors
    assert "'0' is not of type" in errors, errors


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_validates_against_its_schema_and_matches_the_config(name):
    meta = json.loads((REPO / f"bundles/{name}/metadata.json").read_text())
    schema_file = SCHEMAS / meta["schema"].rsplit("/", 1)[-1]
    assert schema_file.is_file(), f"{name}: metadata names {meta['schema']}, not vendored in {SCHEMAS}"
    schema = json.loads(schema_file.read_text())
    assert _schema_errors(meta, schema) == [], name
    # the keys of the other schema generation would be ignored by MONAI's tools: none of them
    assert "optional_packages_version" not in meta and meta["name"]
    # VR's description has IP's structure and rules
    vr = meta["vr_network_data_format"]
    vr_schema = dict(schema["properties"]["network_data_format"], definitions=schema["definitions"])
    assert _schema_errors(vr, vr_schema) == [], name
    # the formats are those of the networks the configs build
    parser = ConfigParser()
    parser.read_config(_files(name, "train"))
    size, upscale = parser.get_parsed_content("image_size"), parser.get_parsed_content("upscale")
    channels = parser.get_parsed_content("ip_network_def#in_channels")
    image, pred = meta["network_data_format"]["inputs"]["image"], meta["network_data_format"]["outputs"]["pred"]
    assert image["spatial_shape"] == [size // upscale] * 2 and pred["spatial_shape"] == [size] * 2
    assert image["num_channels"] == pred["num_channels"] == vr["inputs"]["image"]["num_channels"] == channels
    assert vr["outputs"]["pred"]["num_channels"] == parser.get_parsed_content("num_classes")


# ---------------------------------------------------------------------------------------------------------------
# logging.conf
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLES)
def test_logging_conf_shows_the_package_info_lines(name):
    from monai.bundle.workflows import _reject_executable_logging_config

    path = REPO / f"bundles/{name}/logging.conf"
    _reject_executable_logging_config(str(path))  # MONAI applies only files that pass its safety check
    config = configparser.ConfigParser()
    config.read(path)
    loggers = {config[f"logger_{key.strip()}"].get("qualname", key.strip()): config[f"logger_{key.strip()}"]
               for key in config["loggers"]["keys"].split(",")}
    assert loggers["monai_gradprom"]["level"] == "INFO" and loggers["root"]["level"] == "INFO"


# ---------------------------------------------------------------------------------------------------------------
# evaluation: the model-zoo run form, and no silent empty evaluation
# ---------------------------------------------------------------------------------------------------------------


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def test_empty_evaluation_split_is_an_error_and_isic_falls_back_to_the_held_out_part(data_dirs, tmp_path, caplog):
    data = shutil.copytree(data_dirs("isic2018"), tmp_path / "ISIC2018")
    for folder in ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth",
                   "ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth"):
        shutil.rmtree(data / folder)
    parser = ConfigParser()
    parser.read_config(_files("isic2018", "train", "evaluate", "smoke"))
    parser.update({"dataset_dir": str(data), "output_dir": str(tmp_path / "out")})
    with caplog.at_level("WARNING", logger="monai_gradprom.data.isic2018"):
        dataset = parser.get_parsed_content("dataset")
    validation = parser.get_parsed_content("datalists")["validation"]
    assert [item["image"] for item in dataset.data] == [item["image"] for item in validation] != []
    assert "held-out part of the training set" in caplog.text
    parser = ConfigParser()
    parser.read_config(_files("isic2018", "train", "evaluate", "smoke"))
    parser.update({"dataset_dir": str(data), "output_dir": str(tmp_path / "out"), "dataset_options": {"test_sets": []}})
    with pytest.raises(RuntimeError) as caught:
        parser.get_parsed_content("evaluator")
    cause = _root_cause(caught.value)
    assert isinstance(cause, ValueError) and "the 'test' split" in str(cause) and "is empty" in str(cause)


def _monai_bundle(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _untrained_checkpoint(name: str, out: Path) -> Path:
    """``out/model_final.pt`` with the smoke networks' initial weights: evaluation needs a checkpoint, not a
    trained one, and writing it here costs no training run."""
    parser = ConfigParser()
    parser.read_config(_files(name, "train", "smoke"))
    out.mkdir(parents=True, exist_ok=True)
    torch.save({key: parser.get_parsed_content(f"{key}_def").state_dict() for key in ("ip_network", "vr_network")},
               out / "model_final.pt")
    return out / "model_final.pt"


@pytest.mark.slow
def test_model_zoo_run_form_evaluates_and_leaves_the_training_files_alone(tmp_path):
    """``run`` (no run id) with evaluate.json last evaluates. The checkpoint has no ``vr_pretrained.pt`` next to
    it: had the evaluation referenced ``pretrain_vr`` it would pretrain and write that file, and a training run
    would rewrite ``model_final.pt``."""
    out = tmp_path / "gradprom"
    _untrained_checkpoint("demo", out)
    before = _snapshot(out)
    configs = "['bundles/demo/train.json','bundles/demo/evaluate.json','bundles/demo/smoke.json']"
    result = _monai_bundle("--config_file", configs, "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    after = _snapshot(out)
    written = set(after) - set(before)  # evaluation outputs only: no vr_pretrained.pt, tensorboard/ or checkpoint
    assert "metrics.json" in written and all(name.startswith("metrics") for name in written), sorted(written)
    assert all(after[name] == data for name, data in before.items())  # byte-identical training checkpoint
    metrics = json.loads(after["metrics.json"])
    assert {"psnr", "ssim", "accuracy", "input_psnr"} <= set(metrics)
    log = result.stdout + result.stderr
    assert "logging.conf does not exist" not in log and "Setting logging properties based on config" in log

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.full((20, 24), 128, np.uint8), mode="L").save(inputs / "a.png")
    result = _monai_bundle("--config_file", "bundles/demo/inference.json", "--checkpoint", str(out / "model_final.pt"),
                           "--input_dir", str(inputs), "--output_dir", str(tmp_path / "enhanced"),
                           "--ip_channels", "8", "--ip_blocks", "1", "--image_size", "32")
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert "logging.conf does not exist" not in log
    assert re.search(r"monai_gradprom\.inference - INFO - enhanced 1 image\(s\) from", log), log[-2000:]
    assert (tmp_path / "enhanced" / "a.png").is_file()


@pytest.mark.slow
def test_isic_without_official_sets_evaluates_the_held_out_part_or_fails(data_dirs, tmp_path):
    data = shutil.copytree(data_dirs("isic2018"), tmp_path / "ISIC2018")
    for folder in ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth",
                   "ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth"):
        shutil.rmtree(data / folder)
    out = tmp_path / "gradprom"
    _untrained_checkpoint("isic2018", out)
    configs = "['bundles/isic2018/train.json','bundles/isic2018/evaluate.json','bundles/isic2018/smoke.json']"
    result = _monai_bundle("--config_file", configs, "--dataset_dir", str(data), "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "'test' is the seeded 20% held-out part of the training set" in result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert isinstance(metrics["dice"], float) and isinstance(metrics["input_psnr"], float)
    (out / "metrics.json").unlink()
    result = _monai_bundle("--config_file", configs, "--dataset_dir", str(data), "--output_dir", str(out),
                           "--dataset_options", "{'test_sets': []}")  # no test data asked for
    assert result.returncode != 0 and not (out / "metrics.json").exists()
    assert "the 'test' split (the evaluation data)" in result.stderr and "is empty" in result.stderr
