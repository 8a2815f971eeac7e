"""The library must import (and its default networks build) where torchvision is unusable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.bundles.helpers import REPO

BROKEN_TORCHVISION = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, pkgutil, sys

    class BrokenTorchvision(importlib.abc.MetaPathFinder):
        # What a torchvision wheel built for another torch does at import time.
        def find_spec(self, name, path=None, target=None):
            if name == "torchvision" or name.startswith("torchvision."):
                raise RuntimeError("operator torchvision::nms does not exist")
            return None

    sys.meta_path.insert(0, BrokenTorchvision())
    for mod in [m for m in sys.modules if m.startswith("torchvision")]:
        del sys.modules[mod]

    import monai_gradprom
    failed = []
    for info in pkgutil.walk_packages(monai_gradprom.__path__, "monai_gradprom."):
        try:
            __import__(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    print("IMPORTED", len(list(pkgutil.walk_packages(monai_gradprom.__path__, "monai_gradprom."))))
    assert not failed, failed
    import torch
    from monai_gradprom.networks import SRResNet, build_recognizer
    net = build_recognizer("segmentation", "resnet18", in_channels=1, num_classes=2)
    assert net(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)
    assert SRResNet(channels=8, num_blocks=1)(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    """
)


def test_every_module_imports_with_broken_torchvision():
    result = subprocess.run([sys.executable, "-c", BROKEN_TORCHVISION], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPORTED" in result.stdout
