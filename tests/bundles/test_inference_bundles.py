"""``inference.json`` has the model zoo's shape (``preprocessing``, ``dataset``, ``inferer``, ``postprocessing``
with ``SaveImaged``, ``evaluator``) and can be checked before its input folder exists; a MONAI-style caller that
drives those ids itself gets the enhanced image saved with the input's geometry."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.transforms import SaveImaged

from monai_gradprom.inference_pipeline import zoomed_affine
from tests.bundles.helpers import REPO

BUNDLES = ("demo", "isic2018", "covid_ct", "lizard", "camus")


def _workflow(name, **override):
    workflow = ConfigWorkflow(
        config_file=str(REPO / f"bundles/{name}/inference.json"), meta_file=str(REPO / f"bundles/{name}/metadata.json"),
        logging_file=False, workflow_type="infer", ip_channels=4, ip_blocks=1, **override,
    )
    workflow.initialize()
    return workflow


@pytest.mark.parametrize("name", BUNDLES)
def test_model_zoo_ids_exist_and_check_properties_passes_without_the_input_folder(name, tmp_path):
    workflow = _workflow(name, dataset_dir=str(tmp_path / "not_yet"), output_dir=str(tmp_path / "out"),
                         checkpoint=str(tmp_path / "none.pt"))
    assert workflow.check_properties() == []  # before: FileNotFoundError from the folder walk
    for key in ("preprocessing", "dataset", "inferer", "postprocessing", "evaluator", "network_def"):
        assert key in workflow.parser, key
    assert workflow.dataset.transform is workflow.preprocessing
    savers = [t for t in workflow.postprocessing.transforms if isinstance(t, SaveImaged)]
    assert len(savers) == 1 and savers[0].saver.folder_layout.output_dir == str(tmp_path / "out")
    assert not (tmp_path / "not_yet").exists() and not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="not_yet"):
        len(workflow.dataset)  # the folder is read when the data set is used


@pytest.mark.parametrize("name", ["camus", "lizard"])
def test_driving_the_ids_saves_the_enhanced_image_with_the_input_geometry(name, tmp_path):
    """As MONAI Label / Deploy-style callers do: dataset item -> inferer(network) -> postprocessing."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    if name == "lizard":  # RGB histology tiles: PNG, whose geometry MONAI reads as unit spacing
        from PIL import Image

        rgb = (np.random.default_rng(0).random((36, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(inputs / "frame.png")
        affine = np.eye(4)
    else:
        volume = (np.random.default_rng(0).random((40, 36)) * 255).astype(np.uint8)
        affine = np.array([[0.3, 0, 0, 5.0], [0, 0.4, 0, -2.0], [0, 0, 1, 0], [0, 0, 0, 1]])
        nib.save(nib.Nifti1Image(volume, affine), inputs / "frame.nii.gz")
    workflow = _workflow(name, dataset_dir=str(inputs), output_dir=str(tmp_path / "out"),
                         checkpoint=str(tmp_path / "none.pt"), image_size=32)
    upscale = workflow.parser.get_parsed_content("upscale")
    item = workflow.dataset[0]
    assert item["image"].shape[0] == workflow.parser.get_parsed_content("in_channels")
    network = workflow.parser.get_parsed_content("network").eval()
    with torch.no_grad():
        pred = workflow.inferer(item["image"][None].float(), network)[0]
    workflow.postprocessing({"image": item["image"], "pred": pred})
    written = list((tmp_path / "out").glob("*.nii.gz"))
    assert [p.name for p in written] == ["frame_enhanced.nii.gz"]
    saved = nib.load(written[0])
    assert saved.shape[:2] == (40 * upscale, 36 * upscale)
    expected = zoomed_affine(torch.as_tensor(affine)[[0, 1, 3]][:, [0, 1, 3]], [upscale, upscale]).numpy()
    np.testing.assert_allclose(saved.affine[[0, 1, 3]][:, [0, 1, 3]], expected, atol=1e-5)
    data = saved.get_fdata()
    assert np.isfinite(data).all() and 0 <= data.min() and data.max() <= 1


def test_zoomed_affine_keeps_the_field_of_view():
    affine = torch.tensor([[2.0, 0, 10], [0, 3, 20], [0, 0, 1]])
    zoomed = zoomed_affine(affine, [2, 4])
    # first output voxel centre: half an input voxel back, half an output voxel forward
    assert zoomed.tolist() == [[1.0, 0, 9.5], [0, 0.75, 20 - 1.5 + 0.375], [0, 0, 1]]


@pytest.mark.slow
def test_readme_inference_command_works_after_the_readme_training_command(tmp_path):
    """The README's commands, run as written from a checkout's root (here a folder holding ``bundles/``), training
    shrunk by smoke.json: inference finds the model training wrote (before: ``checkpoint not found:
    outputs/demo/gradprom/model_final.pt`` after a ``--strategy frozen`` training)."""
    import os
    import shlex
    import subprocess
    import sys

    from PIL import Image

    lines = (REPO / "README.md").read_text().splitlines()
    train = next(line for line in lines if line.startswith("python -m monai.bundle run --config_file bundles/demo/train.json"))
    infer = next(line for line in lines if line.startswith("python -m monai.bundle run --config_file bundles/demo/inference.json"))
    (tmp_path / "bundles").symlink_to(REPO / "bundles")
    (tmp_path / "my_pngs").mkdir()
    Image.fromarray(np.full((40, 40), 100, np.uint8)).save(tmp_path / "my_pngs" / "a.png")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    train_args = [a if a != "bundles/demo/train.json" else "['bundles/demo/train.json','bundles/demo/smoke.json']"
                  for a in shlex.split(train)[1:]]
    for args in (train_args, shlex.split(infer)[1:]):
        result = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "enhanced" / "a.png").is_file()
