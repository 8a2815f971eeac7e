"""The four data-set bundles run on their fixtures exactly as a user runs them on the real downloads.

For each bundle: ``python -m monai.bundle run training`` with ``smoke.json`` on the fixture written in the data
set's layout, ``evaluating`` (``metrics.json``) and ``inference`` (every image of a folder, same format, size times
the upscale factor); MONAI's ``verify_net_in_out`` for IP and VR; and the unset ``dataset_dir`` error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, verify_net_in_out

from monai_gradprom.data.fixtures import write_fixture
from monai_gradprom.io import read_image
from tests.bundles.helpers import REPO, run_bundle

pytestmark = pytest.mark.slow

# bundle -> (recognition metrics written by the evaluator, folder of the fixture to enhance, upscale)
BUNDLES = {
    "isic2018": (("dice", "miou"), "ISIC2018_Task1-2_Validation_Input", 1),
    "covid_ct": (("accuracy",), "Images-processed/CT_COVID", 1),
    "lizard": (("dice", "miou"), "Lizard_Images2", 4),
    "camus": (("dice", "miou"), "training/patient0001", 1),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".mhd", ".nii.gz")


def _files(name: str, *parts: str) -> list[str]:
    return [f"bundles/{name}/{part}.json" for part in parts]


@pytest.fixture(scope="module", params=sorted(BUNDLES))
def trained(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    data = write_fixture(name, root / "data")
    out = root / "gradprom"
    run_bundle("training", _files(name, "train", "smoke"), "--dataset_dir", str(data), "--output_dir", str(out))
    return name, data, out


def test_training_checkpoints_and_logs_recognition(trained):
    name, _, out = trained
    checkpoint = torch.load(out / "model_final.pt", map_location="cpu", weights_only=False)
    assert {"ip_network", "vr_network", "ip_optimizer", "vr_optimizer", "trainer"} <= set(checkpoint)
    state = checkpoint["trainer"]
    assert state["iteration"] == 2 * state["epoch_length"] > 0  # the smoke config's 2 epochs
    assert (out / "vr_pretrained.pt").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = EventAccumulator(str(out / "tensorboard"))
    logs.Reload()
    tags = set(logs.Tags()["scalars"])
    wanted = {"loss_ip", "loss_vr", "cos", "gate", "gate_rate", "psnr", "ssim", *BUNDLES[name][0]}
    assert wanted <= tags, f"{name}: not logged: {sorted(wanted - tags)}"


def test_evaluation_writes_metrics_with_the_unprocessed_baseline(trained):
    name, data, out = trained
    run_bundle("evaluating", _files(name, "train", "evaluate", "smoke"), "--dataset_dir", str(data),
               "--output_dir", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "ssim", *BUNDLES[name][0]):
        assert isinstance(metrics[key], float) and isinstance(metrics[f"input_{key}"], float), key
    assert metrics["strategy"] == "gradprom" and metrics["lam"] == 1e-4
    assert metrics["psnr"] > 10.0  # a working network on [0, 1] images, not a blank or inverted output


def test_inference_writes_every_image_in_its_format(trained, tmp_path):
    name, data, out = trained
    _, folder, upscale = BUNDLES[name]
    inputs = data / folder
    enhanced = tmp_path / "enhanced"
    run_bundle("inference", _files(name, "inference", "smoke"), "--model_dir", str(out), "--input_dir", str(inputs),
               "--output_dir", str(enhanced))
    images = [p for p in sorted(inputs.iterdir()) if p.name.lower().endswith(IMAGE_SUFFIXES)]
    assert images, f"fixture folder without images: {inputs}"
    for source in images:
        result = enhanced / source.name
        assert result.is_file(), f"{source.name} was not enhanced"
        before, after = read_image(source).array, read_image(result).array
        assert after.shape[-2:] == tuple(upscale * s for s in before.shape[-2:]), source.name
    assert not (enhanced / "LICENSE.txt").exists()  # non-image files of the download are left alone


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_verify_net_in_out_for_ip_and_vr(name):
    files = [str(REPO / f) for f in _files(name, "train", "smoke")]
    meta = str(REPO / f"bundles/{name}/metadata.json")
    verify_net_in_out(net_id="ip_network_def", meta_file=meta, config_file=files, device="cpu")
    parser = ConfigParser()
    parser.read_config(files)
    classes = parser.get_parsed_content("num_classes")
    override = {"_meta_#network_data_format#outputs#pred#num_channels": classes,
                "_meta_#network_data_format#inputs#image#spatial_shape": [64, 64]}
    verify_net_in_out(net_id="vr_network_def", meta_file=meta, config_file=files, device="cpu", **override)


def _root_cause(error: BaseException) -> BaseException:
    """MONAI's config parser wraps an expression's exception in RuntimeErrors: the user sees the chain."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_unset_dataset_dir_is_named_before_anything_runs(name):
    parser = ConfigParser()
    parser.read_config(str(REPO / f"bundles/{name}/train.json"))
    with pytest.raises(RuntimeError) as caught:
        parser.get_parsed_content("datalists")
    cause = _root_cause(caught.value)
    assert isinstance(cause, ValueError) and "set dataset_dir" in str(cause)


def test_missing_dataset_dir_names_the_path(tmp_path):
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles/camus/train.json"))
    parser["dataset_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(RuntimeError) as caught:
        parser.get_parsed_content("datalists")
    cause = _root_cause(caught.value)
    assert isinstance(cause, FileNotFoundError) and str(tmp_path / "nowhere") in str(cause)


def test_every_bundle_has_the_contract_files():
    for name in ("demo", *BUNDLES):
        folder = REPO / "bundles" / name
        for part in ("train", "evaluate", "inference", "multi_gpu_train", "metadata", "smoke"):
            json.loads((folder / f"{part}.json").read_text())
        assert (folder / "README.md").is_file(), f"{folder / 'README.md'} missing"
        assert Path(folder / "README.md").read_text().count("python -m monai.bundle run") >= 2
