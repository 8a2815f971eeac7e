"""Reading and writing each format: exact round trips, metadata kept, geometry adjusted when upscaled, atomic
writes, and errors that name the file."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from monai_gradprom import io


def up2(array: np.ndarray, axes=(1, 2)) -> np.ndarray:
    """Nearest x2 in-plane: what a toy super-resolver returns."""
    for axis in axes:
        array = array.repeat(2, axis=axis)
    return array


def dicom(tmp_path, name: str, as_name: str | None = None):
    """A copy of one of pydicom's bundled (offline) test files."""
    path = tmp_path / (as_name or name)
    shutil.copy(get_testdata_file(name), path)
    return path


# -- PNG / JPEG ---------------------------------------------------------------------------------------------------
def test_png_round_trip_is_exact_and_mode_kept(tmp_path):
    data = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    Image.fromarray(data).save(tmp_path / "a.png", dpi=(72, 72))
    source = io.read_image(tmp_path / "a.png")
    assert source.array.shape == (1, 20, 30) and source.array.dtype == np.float32
    np.testing.assert_allclose(source.array[0], data / 255.0, atol=1e-7)  # uint8: / 255, not min-max
    io.write_like(source.array, source, tmp_path / "out" / "a.png")
    again = Image.open(tmp_path / "out" / "a.png")
    assert again.mode == "L" and np.array_equal(np.asarray(again), data)
    io.write_like(up2(source.array), source, tmp_path / "out" / "a2.png")
    again = Image.open(tmp_path / "out" / "a2.png")
    assert again.size == (60, 40)
    assert again.info["dpi"] == pytest.approx((144, 144), abs=0.1)  # PNG stores dots per metre


def test_16_bit_png_keeps_its_depth(tmp_path):
    data = (np.random.default_rng(1).random((9, 7)) * 65535).astype(np.uint16)
    Image.fromarray(data).save(tmp_path / "d.png")
    source = io.read_image(tmp_path / "d.png")
    io.write_like(source.array, source, tmp_path / "o.png")
    again = Image.open(tmp_path / "o.png")
    assert again.mode == "I;16" and np.array_equal(np.asarray(again), data)


def test_rgba_png_keeps_alpha_and_palette_becomes_rgb(tmp_path):
    rgba = (np.random.default_rng(1).random((8, 9, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    source = io.read_image(tmp_path / "c.png")
    assert source.array.shape == (3, 8, 9)
    io.write_like(source.array, source, tmp_path / "o.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), rgba)

    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    palette = io.read_image(tmp_path / "p.png")
    io.write_like(palette.array, palette, tmp_path / "po.png")
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "po.png")), expected)


def test_jpeg_round_trip_keeps_mode_quality_and_exif(tmp_path):
    yy, xx = np.mgrid[0:32, 0:40]
    rgb = np.stack([yy * 8, xx * 6, (yy + xx) * 3], axis=-1).astype(np.uint8)  # smooth: JPEG-friendly
    exif = Image.Exif()
    exif[0x010F] = "ScannerCo"  # Make
    Image.fromarray(rgb).save(tmp_path / "s.jpg", quality=95, exif=exif.tobytes())
    source = io.read_image(tmp_path / "s.jpg")
    io.write_like(source.array, source, tmp_path / "o.jpg")
    again = Image.open(tmp_path / "o.jpg")
    assert again.format == "JPEG" and again.mode == "RGB"
    assert again.getexif()[0x010F] == "ScannerCo"
    assert np.abs(np.asarray(again).astype(int) - np.asarray(Image.open(tmp_path / "s.jpg"))).mean() < 2


# -- DICOM --------------------------------------------------------------------------------------------------------
def test_dicom_round_trip_is_exact_keeps_tags_and_derives_a_new_instance(tmp_path):
    src = dicom(tmp_path, "CT_small.dcm")
    source = io.read_image(src)
    assert source.array.shape == (1, 128, 128) and source.array.min() == 0 and source.array.max() == 1
    io.write_like(source.array, source, tmp_path / "out.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "out.dcm")
    assert np.array_equal(a.pixel_array, b.pixel_array)  # stored values exact
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID", "RescaleSlope",
                    "RescaleIntercept", "BitsStored", "PixelRepresentation", "ImagePositionPatient"):
        assert b.get(keyword) == a.get(keyword), keyword
    assert b.SOPInstanceUID != a.SOPInstanceUID and b.file_meta.MediaStorageSOPInstanceUID == b.SOPInstanceUID
    assert b.SeriesInstanceUID != a.SeriesInstanceUID
    assert list(b.ImageType[:2]) == ["DERIVED", "SECONDARY"] and "monai_gradprom" in b.DerivationDescription
    io.write_like(source.array, source, tmp_path / "again.dcm")  # a series stays one series
    assert pydicom.dcmread(tmp_path / "again.dcm").SeriesInstanceUID == b.SeriesInstanceUID


def test_dicom_upscaled_halves_pixel_spacing_and_keeps_the_extent(tmp_path):
    src = dicom(tmp_path, "MR_small.dcm")
    source = io.read_image(src)
    io.write_like(up2(source.array), source, tmp_path / "up.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "up.dcm")
    assert (b.Rows, b.Columns) == (2 * a.Rows, 2 * a.Columns)
    assert np.array_equal(b.pixel_array[::2, ::2], a.pixel_array)
    assert [float(v) for v in b.PixelSpacing] == pytest.approx([float(v) / 2 for v in a.PixelSpacing])
    # the first pixel's centre moves back a quarter of an old pixel along the row and column directions
    cosines = np.array(a.ImageOrientationPatient, dtype=float).reshape(2, 3)
    shift = -0.25 * (cosines[0] * float(a.PixelSpacing[1]) + cosines[1] * float(a.PixelSpacing[0]))
    np.testing.assert_allclose(np.array(b.ImagePositionPatient, float), np.array(a.ImagePositionPatient, float)
                               + shift, atol=1e-4)


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm"])
def test_big_endian_compressed_and_multiframe_dicom_are_written_plain(tmp_path, name):
    src = dicom(tmp_path, name)
    source = io.read_image(src)
    io.write_like(source.array, source, tmp_path / "o.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "o.dcm")
    assert b.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(a.pixel_array, b.pixel_array)
    assert b.get("NumberOfFrames") == a.get("NumberOfFrames")
    if name.startswith("SC_rgb"):  # (3, rows, cols, frames): channels first, frames last
        assert source.array.shape == (3, 100, 100, 2)


def test_monochrome1_is_inverted_for_the_network_and_back(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    source, plain = io.read_image(tmp_path / "m1.dcm"), io.read_image(get_testdata_file("MR_small.dcm"))
    np.testing.assert_allclose(source.array, 1 - plain.array, atol=1e-6)
    io.write_like(source.array, source, tmp_path / "o.dcm")
    out = pydicom.dcmread(tmp_path / "o.dcm")
    assert out.PhotometricInterpretation == "MONOCHROME1" and np.array_equal(out.pixel_array, ds.pixel_array)


def test_palette_ultrasound_becomes_rgb_and_its_regions_follow_the_upscale(tmp_path):
    src = dicom(tmp_path, "examples_palette.dcm")
    source = io.read_image(src)
    assert source.array.shape == (3, 350, 800)
    small = source.array[:, :50, :60]  # keep the test light: write a crop, as a x2 result of a 50 x 60 source
    source.array = source.array[:, :25, :30]
    io.write_like(small, source, tmp_path / "o.dcm")
    a, b = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "o.dcm")
    assert b.PhotometricInterpretation == "RGB" and b.SamplesPerPixel == 3 and b.pixel_array.shape == (50, 60, 3)
    assert "RedPaletteColorLookupTableData" not in b
    ra, rb = a.SequenceOfUltrasoundRegions[0], b.SequenceOfUltrasoundRegions[0]
    assert rb.PhysicalDeltaX == pytest.approx(ra.PhysicalDeltaX / 2)
    bounds = (rb.RegionLocationMinX0, rb.RegionLocationMaxX1)
    assert bounds == (2 * ra.RegionLocationMinX0, 2 * ra.RegionLocationMaxX1 + 1)


def test_extensionless_dicom_is_detected_and_other_dicom_objects_are_not_images(tmp_path):
    dicom(tmp_path, "CT_small.dcm", "IM0001")
    (tmp_path / "NOTES").write_bytes(b"x" * 200)
    assert io.image_format(tmp_path / "IM0001") == "dicom" and io.image_format(tmp_path / "NOTES") is None
    assert io.read_image(tmp_path / "IM0001").array.shape == (1, 128, 128)
    with pytest.raises(io.NotAnImageError, match="rtplan.dcm"):
        io.read_image(dicom(tmp_path, "rtplan.dcm"))


# -- NIfTI --------------------------------------------------------------------------------------------------------
def _affine():
    affine = np.array([[0.0, -0.7, 0.0, 10.0], [0.5, 0.0, 0.0, -4.0], [0.0, 0.0, 2.0, 3.0], [0, 0, 0, 1]])
    return affine


def test_nifti_float_round_trip_keeps_header_and_affine(tmp_path):
    data = np.random.default_rng(2).random((10, 12, 3)).astype(np.float32) * 100 - 20
    image = nib.Nifti1Image(data, _affine())
    image.header["descrip"] = b"study 42"
    nib.save(image, tmp_path / "v.nii.gz")
    source = io.read_image(tmp_path / "v.nii.gz")
    assert source.array.shape == (1, 10, 12, 3) and source.array.min() == 0 and source.array.max() == 1
    io.write_like(source.array, source, tmp_path / "o.nii.gz")
    out = nib.load(tmp_path / "o.nii.gz")
    np.testing.assert_allclose(out.get_fdata(), data, atol=1e-4)
    np.testing.assert_allclose(out.affine, _affine())
    assert out.get_data_dtype() == np.float32 and out.header["descrip"] == b"study 42"
    assert out.header["sform_code"] == image.header["sform_code"]


def test_nifti_upscaled_halves_the_in_plane_voxel_size(tmp_path):
    data = np.arange(4 * 6 * 2, dtype=np.int16).reshape(4, 6, 2)
    nib.save(nib.Nifti1Image(data, _affine()), tmp_path / "v.nii")
    source = io.read_image(tmp_path / "v.nii")
    io.write_like(up2(source.array), source, tmp_path / "o.nii")
    out = nib.load(tmp_path / "o.nii")
    assert out.shape == (8, 12, 2) and out.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asanyarray(out.dataobj)[::2, ::2], data)
    assert out.header.get_zooms() == pytest.approx((0.25, 0.35, 2.0))
    expected = _affine()
    expected[:3, :2] /= 2
    expected[:3, 3] += _affine()[:3, :2] @ [-0.25, -0.25]  # same extent: first centre a quarter voxel back
    np.testing.assert_allclose(out.affine, expected, atol=1e-6)


def test_nifti_with_slope_keeps_its_stored_type_and_uint8_uses_the_type_range(tmp_path):
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    image.header.set_slope_inter(0.5, -10)
    nib.save(image, tmp_path / "s.nii")
    source = io.read_image(tmp_path / "s.nii")
    io.write_like(source.array, source, tmp_path / "o.nii")
    out = nib.load(tmp_path / "o.nii")
    assert out.get_data_dtype() == np.int16
    np.testing.assert_allclose(out.get_fdata(), nib.load(tmp_path / "s.nii").get_fdata(), atol=1e-3)

    nib.save(nib.Nifti1Image(np.full((3, 3), 51, np.uint8), np.eye(4)), tmp_path / "u.nii")
    assert io.read_image(tmp_path / "u.nii").array.max() == pytest.approx(0.2)  # 51 / 255
    assert io.read_image(tmp_path / "u.nii", intensity="minmax").array.max() == 0.0  # constant image


# -- ITK: MHD, MHA, NRRD ------------------------------------------------------------------------------------------
def _itk_volume(tmp_path, name, shape=(3, 16, 12)):
    import itk

    data = (np.random.default_rng(3).random(shape) * 1000).astype(np.int16)  # numpy (z, y, x)
    image = itk.image_from_array(data)
    image.SetSpacing([0.154, 0.308, 2.5])
    image.SetOrigin([1.0, 2.0, 3.0])
    image.SetDirection(itk.matrix_from_array(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])))
    itk.imwrite(image, str(tmp_path / name))
    return data


@pytest.mark.parametrize("name", ["p_2CH_ED.mhd", "v.mha", "v.nrrd"])
def test_itk_round_trip_keeps_geometry_and_companion(tmp_path, name):
    import itk

    data = _itk_volume(tmp_path, name)
    source = io.read_image(tmp_path / name)
    assert source.array.shape == (1, 16, 12, 3)  # (C, y, x, z): slices last
    np.testing.assert_allclose(source.array[0, :, :, 1] * (source.high - source.low) + source.low, data[1], atol=1e-3)
    io.write_like(source.array, source, tmp_path / "out" / name)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == (["p_2CH_ED.mhd", "p_2CH_ED.raw"] if name.endswith(".mhd") else [name])
    again = itk.imread(str(tmp_path / "out" / name))
    original = itk.imread(str(tmp_path / name))
    assert np.array_equal(itk.array_from_image(again), data)
    np.testing.assert_allclose(tuple(again.GetSpacing()), tuple(original.GetSpacing()), rtol=1e-6)
    np.testing.assert_allclose(tuple(again.GetOrigin()), tuple(original.GetOrigin()), atol=1e-6)
    np.testing.assert_allclose(itk.array_from_matrix(again.GetDirection()),
                               itk.array_from_matrix(original.GetDirection()))


def test_itk_upscaled_halves_in_plane_spacing_only(tmp_path):
    import itk

    data = _itk_volume(tmp_path, "v.mhd", shape=(2, 6, 4))
    source = io.read_image(tmp_path / "v.mhd")
    io.write_like(up2(source.array), source, tmp_path / "o.mhd")
    again = itk.imread(str(tmp_path / "o.mhd"))
    assert np.array_equal(itk.array_from_image(again)[:, ::2, ::2], data)
    np.testing.assert_allclose(tuple(again.GetSpacing()), (0.077, 0.154, 2.5), rtol=1e-6)
    # origin moves a quarter voxel back along the (permuted) x and y directions, not along z
    np.testing.assert_allclose(tuple(again.GetOrigin()), (1.0 - 0.25 * 0.308, 2.0 - 0.25 * 0.154, 3.0), atol=1e-6)


# -- atomic writes and errors -------------------------------------------------------------------------------------
def test_failed_write_leaves_nothing_behind_and_keeps_the_previous_output(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    source = io.read_image(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"previous result")

    def half_written(array, source, path):
        path.with_suffix(".raw").write_bytes(b"partial companion")
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setitem(io._WRITERS, "png", half_written)
    with pytest.raises(OSError, match="disk full"):
        io.write_like(source.array, source, out / "a.png")
    assert [p.name for p in out.iterdir()] == ["a.png"] and (out / "a.png").read_bytes() == b"previous result"


def test_unsupported_and_corrupt_files_name_the_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        io.read_image(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        io.read_image(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="MR_truncated.dcm"):
        io.read_image(dicom(tmp_path, "MR_truncated.dcm"))
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 300)
    with pytest.raises(ValueError, match="junk.dcm") as info:
        io.read_image(tmp_path / "junk.dcm")
    assert not isinstance(info.value, io.NotAnImageError)  # corrupt, not merely "no pixels"
    with pytest.raises(ValueError, match="intensity"):
        io.read_image(tmp_path / "broken.png", intensity="window")


def test_result_of_the_wrong_shape_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    source = io.read_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="o.png"):
        io.write_like(np.zeros((3, 4, 4)), source, tmp_path / "o.png")


def test_read_values_are_the_stored_values_read_image_maps(tmp_path):
    """The data checks look at the very values inference enhances: read_values gives them unmapped."""
    import itk

    volume = np.arange(-60, 60, dtype=np.int16).reshape(4, 5, 6)  # numpy (z, y, x)
    itk.imwrite(itk.image_from_array(volume), str(tmp_path / "v.mhd"))
    nifti = nib.Nifti1Image(volume.T.astype(np.int16), np.eye(4))
    nifti.header.set_slope_inter(0.5, 10.0)
    nib.save(nifti, str(tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(io.read_values(tmp_path / "v.mhd"), volume)
    np.testing.assert_allclose(io.read_values(tmp_path / "v.nii.gz"), volume.T * 0.5 + 10.0)
    for name, low, high in (("v.mhd", -60, 59), ("v.nii.gz", -20.0, 39.5)):
        source = io.read_image(tmp_path / name, intensity="minmax")
        assert (source.low, source.high) == (low, high)
    nib.save(nib.Nifti1Image(volume.T.copy(), np.eye(4)), str(tmp_path / "full.nii"))
    (tmp_path / "cut.nii").write_bytes((tmp_path / "full.nii").read_bytes()[:-40])
    with pytest.raises(ValueError, match="200 bytes of voxel data, the header expects 240"):
        io.read_values(tmp_path / "cut.nii")
