"""Shared loader pieces: header sizes in display order, data-list checks, seeded splits, folder search, converters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_gradprom.data.common import (
    IGNORE_INDEX,
    DataCheckError,
    FillMissingSegd,
    ProblemLog,
    UprightFramed,
    allocate,
    check_datalist,
    check_same_size,
    finalize_datalists,
    find_dir,
    random_split,
    read_lines,
    read_size,
    to_grayscale,
    to_rgb,
)
from monai_gradprom.data.fixtures import _write_mhd, _write_nifti


def _png(path, shape=(5, 7), value=0):
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return str(path)


def test_read_size_is_rows_columns_in_every_format(tmp_path):
    frame = np.zeros((5, 7), np.uint8)  # 5 rows, 7 columns
    _png(tmp_path / "a.png")
    Image.fromarray(frame).convert("RGB").save(tmp_path / "a.jpg")
    _write_mhd(tmp_path / "a.mhd", frame)
    _write_nifti(tmp_path / "a.nii.gz", frame)
    from scipy.io import savemat

    savemat(tmp_path / "a.mat", {"inst_map": frame.astype(np.int32), "id": np.zeros((0, 1))})
    for name in ("a.png", "a.jpg", "a.mhd", "a.nii.gz", "a.mat"):
        assert read_size(tmp_path / name) == (5, 7), name
        assert read_size(tmp_path / name, deep=True) == (5, 7), name


def test_read_size_names_missing_corrupt_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_size(tmp_path / "nothere.png")
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    with pytest.raises(DataCheckError, match="garbage.png"):
        read_size(tmp_path / "garbage.png")
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)).save(full)
    (tmp_path / "cut.png").write_bytes(full.read_bytes()[:200])
    assert read_size(tmp_path / "cut.png") == (40, 40)  # the header is intact...
    with pytest.raises(DataCheckError, match="cut.png"):
        read_size(tmp_path / "cut.png", deep=True)  # ...the pixels are not
    _write_mhd(tmp_path / "f.mhd", np.zeros((4, 6), np.uint8))
    (tmp_path / "f.raw").write_bytes(b"\0" * 10)
    with pytest.raises(DataCheckError, match="f.raw"):
        read_size(tmp_path / "f.mhd")
    (tmp_path / "f.raw").unlink()
    with pytest.raises(FileNotFoundError, match="f.raw"):
        read_size(tmp_path / "f.mhd")


def test_check_same_size_names_both_files(tmp_path):
    image, mask = _png(tmp_path / "i.png", (5, 7)), _png(tmp_path / "m.png", (7, 5))
    with pytest.raises(DataCheckError, match="m.png.*i.png"):
        check_same_size(image, mask)
    check_same_size(image, _png(tmp_path / "ok.png", (5, 7)))


def test_check_datalist_raises_or_skips_and_reports(tmp_path):
    good = {"image": _png(tmp_path / "i.png"), "seg": _png(tmp_path / "m.png"), "label": 0}
    no_mask = {"image": good["image"], "seg": str(tmp_path / "gone.png"), "label": 0}
    wrong = {"image": good["image"], "seg": _png(tmp_path / "big.png", (9, 9)), "label": 1}
    no_label = {"image": good["image"], "seg": good["seg"], "label": None}
    with pytest.raises(FileNotFoundError, match="gone.png"):
        check_datalist([good, no_mask], ("image", "seg"))
    with pytest.raises(DataCheckError, match="big.png"):
        check_datalist([wrong], ("image", "seg"))
    with pytest.raises(DataCheckError, match="'label'.*i.png"):
        check_datalist([no_label], ("image", "label"))
    problems = ProblemLog("skip")
    kept = check_datalist([good, no_mask, wrong, no_label], ("image", "seg", "label"), problems=problems)
    assert kept == [good]
    assert [s["path"] for s in problems.skipped] == [no_mask["seg"], wrong["seg"], good["image"]]
    with pytest.raises(ValueError, match="on_error"):
        ProblemLog("ignore")


def test_finalize_refuses_an_empty_split_naming_the_source(tmp_path):
    item = {"image": _png(tmp_path / "i.png"), "label": 0}
    with pytest.raises(DataCheckError, match="'validation' split is empty.*my_source"):
        finalize_datalists({"training": [item], "test": [item]}, source="my_source", keys=("image", "label"))
    result = finalize_datalists({"training": [item], "validation": [item]}, source="s", keys=("image", "label"),
                                allow_empty=("test",))
    assert list(result) == ["training", "validation", "test"] and result["test"] == [] and result.skipped == []
    bad = {"image": str(tmp_path / "gone.png"), "label": 0}
    with pytest.raises(DataCheckError, match="after skipping 1"):
        finalize_datalists({"training": [item], "validation": [bad], "test": [item]}, source="s",
                           keys=("image", "label"), problems=ProblemLog("skip"))


def test_allocate_keeps_every_requested_part_non_empty():
    assert allocate(6, (0.8, 0.1, 0.1)) == [4, 1, 1]
    assert allocate(16, (0.8, 0.2)) == [13, 3]
    assert sum(allocate(101, (0.7, 0.15, 0.15))) == 101
    assert allocate(3, (1.0, 0.0)) == [3, 0]


def test_random_split_is_seeded_grouped_and_stratified():
    items = [{"id": i, "patient": i // 4, "label": i % 2} for i in range(80)]
    a = random_split(items, (0.8, 0.1, 0.1), seed=3, group_key="patient")
    b = random_split(list(reversed(items)), (0.8, 0.1, 0.1), seed=3, group_key="patient")
    assert [sorted(x["id"] for x in part) for part in a] == [sorted(x["id"] for x in part) for part in b]
    assert [len(p) for p in a] == [64, 8, 8]
    patients = [{x["patient"] for x in part} for part in a]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    c = random_split(items, (0.8, 0.1, 0.1), seed=4, group_key="patient")
    assert [x["id"] for x in c[1]] != [x["id"] for x in a[1]]
    skewed = [{"id": i, "label": int(i < 10)} for i in range(100)]  # 10 % positives
    train, val = random_split(skewed, (0.8, 0.2), seed=0, stratify_key="label")
    assert sum(x["label"] for x in val) == 2 and sum(x["label"] for x in train) == 8


def test_find_dir_searches_a_bounded_depth(tmp_path):
    (tmp_path / "a" / "b" / "Target").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "Target").mkdir(parents=True)
    assert find_dir(tmp_path, "Target", max_depth=3) == tmp_path / "a" / "b" / "Target"
    assert find_dir(tmp_path, "Target", max_depth=2) is None
    assert find_dir(tmp_path, "target", max_depth=3) == tmp_path / "a" / "b" / "Target"


def test_read_lines_strips_line_ends_but_keeps_names_verbatim(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes("\ufeffa%20b .png \r\nc%1.jpg\r\n\r\n  \n".encode())
    assert read_lines(path) == ["a%20b .png", "c%1.jpg"]
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        read_lines(tmp_path / "nothere.txt")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "I", "F", "CMYK"])
def test_converters_accept_every_mode(mode):
    base = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8) * 5)
    image = base.convert(mode) if mode not in ("I;16",) else Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    grey, rgb = to_grayscale(image), to_rgb(image)
    assert grey.mode == "L" and grey.size == (8, 6)
    assert rgb.mode == "RGB" and rgb.size == (8, 6)
    if mode in ("I;16", "I", "F"):
        assert np.asarray(grey).max() == 255  # min-max scaled, not clipped or darkened


def test_upright_frame_transposes_and_squeezes():
    x = torch.arange(12.0).reshape(1, 4, 3, 1)  # (C, x, y, z): 4 columns, 3 rows
    affine = torch.diag(torch.tensor([0.1, 0.2, 1.0, 1.0], dtype=torch.float64))
    out = UprightFramed("image")({"image": MetaTensor(x, affine=affine)})["image"]
    assert out.shape == (1, 3, 4) and torch.equal(out[0], x[0, :, :, 0].T)
    # index (row, column) = (y, x) must still map to the same world position: the affine's columns swap
    assert torch.allclose(out.affine[:, 0], affine[:, 1]) and torch.allclose(out.affine[:, 1], affine[:, 0])
    with pytest.raises(ValueError, match="2D frame"):
        UprightFramed("image")({"image": torch.zeros(1, 2, 2, 2)})


def test_fill_missing_seg_uses_the_ignore_index():
    out = FillMissingSegd("seg")({"image": torch.zeros(3, 5, 7)})
    assert out["seg"].shape == (1, 5, 7) and out["seg"].dtype == torch.int64
    assert (out["seg"] == IGNORE_INDEX).all()
    seg = torch.ones(1, 5, 7, dtype=torch.int64)
    assert FillMissingSegd("seg")({"image": torch.zeros(3, 5, 7), "seg": seg})["seg"] is seg


def test_read_size_reads_an_mha_whose_pixels_follow_its_header(tmp_path):
    import itk

    frame = np.arange(35, dtype=np.uint8).reshape(5, 7)  # zero bytes in the pixel data after the header
    itk.imwrite(itk.image_from_array(frame), str(tmp_path / "a.mha"))
    assert read_size(tmp_path / "a.mha") == (5, 7)
    assert read_size(tmp_path / "a.mha", deep=True) == (5, 7)
    data = (tmp_path / "a.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(data[:-10])
    with pytest.raises(DataCheckError, match=r"cut.mha holds 25 bytes of pixel data after its header, the header "
                                             r"expects 35"):
        read_size(tmp_path / "cut.mha")
