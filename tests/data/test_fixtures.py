"""The fixture writers reproduce each data set's exact layout, formats and quirks, deterministically."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy.io import whosmat

from monai_gradprom.data.fixtures import main, write_fixture

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_cli_writes_the_camus_nifti_layout(tmp_path):
    root = main(["camus", "--out", str(tmp_path / "c"), "--release", "nifti", "--num", "3", "--nested"])
    base = root / "CAMUS_public" / "CAMUS_public"
    assert (base / "database_split" / "subgroup_testing.txt").read_text() == "patient0003\n"
    patient = base / "database_nifti" / "patient0001"
    expected = {f"patient0001_{v}_{p}{gt}.nii.gz" for v in ("2CH", "4CH") for p in ("ED", "ES") for gt in ("", "_gt")}
    assert expected <= {p.name for p in patient.iterdir()}
    assert {"Info_2CH.cfg", "Info_4CH.cfg", "patient0001_2CH_half_sequence.nii.gz"} <= {p.name for p in patient.iterdir()}
    frame = nib.load(patient / "patient0001_2CH_ED.nii.gz")
    assert frame.ndim == 2 and frame.get_data_dtype() == np.uint8
    width, height = frame.shape  # stored (W, H): transposed relative to the picture, as the release stores it
    assert height > width
    with pytest.raises(SystemExit):
        main(["lizard", "--out", str(tmp_path / "l"), "--release", "nifti"])


def test_cli_runs_as_a_module(tmp_path):
    done = subprocess.run([sys.executable, "-m", "monai_gradprom.data.fixtures", "lizard", "--out", str(tmp_path),
                           "--num", "5"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "Lizard_Labels" / "info.csv").read_text().splitlines()[0] == "Filename,Source,Split"
    assert len(list((tmp_path / "Lizard_Labels" / "Labels").glob("*.mat"))) == 5


def test_camus_original_files_are_shipped_as_camus_does(tmp_path):
    root = write_fixture("camus", tmp_path, num=3, release="original")
    header = (root / "training" / "patient0002" / "patient0002_4CH_ES_gt.mhd").read_text().splitlines()
    fields = dict(line.split(" = ") for line in header)
    assert header[0] == "ObjectType = Image" and fields["NDims"] == "3" and fields["ElementType"] == "MET_UCHAR"
    assert fields["ElementDataFile"] == "patient0002_4CH_ES_gt.raw" and fields["ElementSpacing"] == "0.154 0.308 1"
    width, height, depth = (int(v) for v in fields["DimSize"].split())
    assert depth == 1 and (root / "training" / "patient0002" / fields["ElementDataFile"]).stat().st_size == width * height
    sequence = (root / "training" / "patient0002" / "patient0002_2CH_sequence.mhd").read_text()
    assert f"DimSize = {width} {height} 3" in sequence
    info = (root / "training" / "patient0002" / "Info_2CH.cfg").read_text()
    assert {"ED", "ES", "NbFrame", "Sex", "Age", "ImageQuality", "LVedv", "LVesv", "LVef"} == {
        line.split(":")[0] for line in info.splitlines()}
    qualities = {(root / "training" / f"patient{p:04d}" / f"Info_{v}.cfg").read_text().split("ImageQuality: ")[1]
                 .split()[0] for p in (1, 2, 3) for v in ("2CH", "4CH")}
    assert qualities == {"Good", "Medium", "Poor"}
    testing = root / "testing" / "patient0001"
    assert testing.is_dir() and not list(testing.glob("*_gt.mhd"))


def test_covid_ct_quirks_are_on_disk(tmp_path):
    root = write_fixture("covid_ct", tmp_path, num=6)
    covid = root / "Images-processed" / "CT_COVID"
    formats = {p.name: (Image.open(p).format, Image.open(p).mode) for p in covid.iterdir()}
    assert any(name.endswith(".png") and fmt == "JPEG" for name, (fmt, _) in formats.items())
    assert {"RGBA", "L", "P", "I;16"} <= {mode for _, mode in formats.values()}
    assert any("%" in name and " " in name for name in formats)
    raw = (root / "Data-split" / "COVID" / "trainCT_COVID.txt").read_bytes()
    assert b"\r\n" in raw and raw.endswith(b"\r\n\r\n") and b" \r\n" in raw
    noncovid = {p.suffix for p in (root / "Images-processed" / "CT_NonCOVID").iterdir()}
    assert {".jpg", ".png"} <= noncovid


def test_isic_and_lizard_layouts(tmp_path):
    isic = write_fixture("isic2018", tmp_path / "isic", num=4, num_val=2, num_test=1)
    for folder in ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth",
                   "ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth",
                   "ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth",
                   "ISIC2018_Task3_Training_Input", "ISIC2018_Task3_Validation_GroundTruth"):
        assert (isic / folder / "LICENSE.txt").is_file(), folder
    mask = Image.open(isic / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000001_segmentation.png")
    assert mask.mode == "L" and set(np.unique(np.asarray(mask)).tolist()) == {0, 255}
    csv = (isic / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv").read_text()
    assert csv.splitlines()[0] == "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
    assert all(row.split(",")[1:].count("1.0") == 1 and row.split(",")[1:].count("0.0") == 6
               for row in csv.splitlines()[1:])
    liz = write_fixture("lizard", tmp_path / "liz", num=6)
    variables = {name: cls for name, _, cls in whosmat(str(liz / "Lizard_Labels" / "Labels" / "crag_1.mat"))}
    assert {"inst_map", "id", "class", "bbox", "centroid"} <= variables.keys()


def test_content_is_a_function_of_the_seed(tmp_path):
    a = write_fixture("camus", tmp_path / "a", num=3, release="nifti", seed=5)
    b = write_fixture("camus", tmp_path / "b", num=3, release="nifti", seed=5)
    c = write_fixture("camus", tmp_path / "c", num=3, release="nifti", seed=6)
    name = "CAMUS_public/database_nifti/patient0001/patient0001_2CH_ED.nii.gz"
    data = [np.asarray(nib.load(root / name).dataobj) for root in (a, b, c)]
    assert np.array_equal(data[0], data[1]) and not np.array_equal(data[0], data[2])
    with pytest.raises(ValueError, match="dataset must be one of"):
        write_fixture("mnist", tmp_path / "m")
