"""Small helpers shared across the package."""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Sized
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["optional_module", "atomic_write", "atomic_save", "require_file", "require_nonempty", "show_progress"]

PROGRESS_ENV = "MONAI_GRADPROM_PROGRESS"


def show_progress() -> bool:
    """Whether progress bars should be drawn: when stderr is a terminal, where they redraw in place. Redirected to
    a file (a job log, ``nohup``), each redraw is one more carriage-return line (megabytes over a training run);
    the per-epoch log lines say the same there. ``MONAI_GRADPROM_PROGRESS=1`` / ``0`` forces them on / off."""
    import sys

    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "0", "false", "no"):
        return forced in ("1", "true", "yes")
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def optional_module(name: str) -> tuple[ModuleType | None, str | None]:
    """Import ``name`` if it can be imported *and initialised*; return ``(module, None)`` or ``(None, reason)``.

    ``ImportError`` is not enough: a torchvision wheel built for another torch raises ``RuntimeError``
    ("operator torchvision::nms does not exist") at import time, and segmentation-models-pytorch and timm
    import torchvision. Treating any exception as "unavailable" keeps this package importable there.
    """
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # noqa: BLE001 - any failure means the optional backend is unusable
        return None, f"{type(exc).__name__}: {exc}"


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it over ``path``.

    A crash (or a full disk) while writing leaves any previous file at ``path`` intact and no partial file
    behind: the rename is atomic on POSIX file systems.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; give the usual permissions
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` written atomically (see :func:`atomic_write`)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint_file(path: str | os.PathLike) -> Any:
    """``torch.load`` of a checkpoint on the CPU with ``weights_only=True``; a missing file or one that cannot be
    read gets an error naming it (one message for every loader of the package)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Fail early with a message naming the missing path and what it should have been."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def require_nonempty(items: Sized, what: str = "data") -> Sized:
    """Return ``items``, or raise a ValueError naming ``what`` when it is empty.

    MONAI's engines skip a run on an empty data loader with only a warning, so an evaluation without data would
    exit 0 without writing its metrics; bundles call this on their evaluation list to fail instead.
    """
    if len(items) == 0:
        raise ValueError(f"{what} is empty: nothing to evaluate")
    return items
