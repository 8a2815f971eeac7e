"""Packaging metadata (issue 13, point 16): SPDX licence with its file, a true torch floor, py.typed, one version."""

from __future__ import annotations

from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

import monai_gradprom

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_spdx_license_expression_with_the_apache_text_shipped():
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"  # a string (PEP 639), not the deprecated {text = ...} table
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools = next(r for r in build if r.name == "setuptools")
    assert setuptools.specifier.contains("77") and not setuptools.specifier.contains("76.9")  # PEP 639 support


def test_torch_floor_covers_torch_amp_gradscaler_cuda():
    torch_req = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch"))
    assert not torch_req.specifier.contains("2.2.2")  # torch.amp.GradScaler("cuda") is new in 2.3
    assert torch_req.specifier.contains("2.3.0")


def test_py_typed_is_package_data():
    assert (ROOT / "monai_gradprom" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["monai_gradprom"]


def test_version_has_one_source():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "monai_gradprom.__version__"}
    assert Version(monai_gradprom.__version__)  # a valid PEP 440 version
