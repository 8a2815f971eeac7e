"""Reading and writing each format: round trips, metadata kept, spacing adjusted, nothing half-written."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from monai_gradprom import io


def test_png_round_trip_is_exact_and_mode_kept(tmp_path):
    data = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    Image.fromarray(data).save(tmp_path / "a.png")
    source = io.read_image(tmp_path / "a.png")
    assert source.array.shape == (1, 20, 30) and source.array.max() <= 1.0
    io.write_like(source.array, source, tmp_path / "out" / "a.png")
    again = Image.open(tmp_path / "out" / "a.png")
    assert again.mode == "L" and np.array_equal(np.asarray(again), data)


def test_rgba_png_keeps_alpha(tmp_path):
    rgba = (np.random.default_rng(1).random((8, 9, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    source = io.read_image(tmp_path / "c.png")
    assert source.array.shape == (3, 8, 9)
    io.write_like(source.array, source, tmp_path / "o.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), rgba)


def test_dicom_round_trip_keeps_tags_and_new_uid(tmp_path):
    src = tmp_path / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), src)
    source = io.read_image(src)
    io.write_like(source.array, source, tmp_path / "out.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "out.dcm")
    assert np.abs(a.pixel_array.astype(int) - b.pixel_array.astype(int)).max() <= 1
    assert a.PatientID == b.PatientID and a.StudyInstanceUID == b.StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID and b.ImageType[0] == "DERIVED"


def test_dicom_upscaled_halves_pixel_spacing(tmp_path):
    src = tmp_path / "mr.dcm"
    shutil.copy(get_testdata_file("MR_small.dcm"), src)
    source = io.read_image(src)
    up = source.array.repeat(2, axis=1).repeat(2, axis=2)
    io.write_like(up, source, tmp_path / "up.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "up.dcm")
    assert (b.Rows, b.Columns) == (2 * a.Rows, 2 * a.Columns)
    assert float(b.PixelSpacing[0]) == pytest.approx(float(a.PixelSpacing[0]) / 2)


def test_extensionless_dicom_is_detected(tmp_path):
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "IM0001")
    assert io.image_format(tmp_path / "IM0001") == "dicom"


def test_nifti_round_trip_keeps_affine(tmp_path):
    data = np.random.default_rng(2).random((10, 12, 3)).astype(np.float32) * 100 - 20
    affine = np.diag([0.5, 0.7, 2.0, 1.0])
    affine[:3, 3] = [1, 2, 3]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii.gz")
    source = io.read_image(tmp_path / "v.nii.gz")
    io.write_like(source.array, source, tmp_path / "o.nii.gz")
    out = nib.load(tmp_path / "o.nii.gz")
    np.testing.assert_allclose(out.get_fdata(), data, atol=1e-4)
    np.testing.assert_allclose(out.affine, affine)


def test_mhd_writes_header_and_raw_with_spacing(tmp_path):
    import itk

    image = itk.image_from_array((np.random.default_rng(3).random((1, 16, 12)) * 1000).astype(np.int16))
    image.SetSpacing([0.154, 0.308, 1.0])
    image.SetOrigin([1.0, 2.0, 3.0])
    itk.imwrite(image, str(tmp_path / "p_2CH_ED.mhd"))
    source = io.read_image(tmp_path / "p_2CH_ED.mhd")
    io.write_like(source.array, source, tmp_path / "out" / "p_2CH_ED.mhd")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p_2CH_ED.mhd", "p_2CH_ED.raw"]
    again = itk.imread(str(tmp_path / "out" / "p_2CH_ED.mhd"))
    np.testing.assert_allclose(tuple(again.GetSpacing()), (0.154, 0.308, 1.0), rtol=1e-6)
    np.testing.assert_allclose(tuple(again.GetOrigin()), (1.0, 2.0, 3.0))
    assert np.abs(itk.array_from_image(again).astype(int) - itk.array_from_image(image)).max() <= 1


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    source = io.read_image(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setitem(io._WRITERS, "png", broken)
    with pytest.raises(OSError, match="disk full"):
        io.write_like(source.array, source, out / "a.png")
    assert list(out.iterdir()) == []


def test_unsupported_and_corrupt_files_name_the_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        io.read_image(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        io.read_image(tmp_path / "broken.png")
