"""Where an export may write, and replacing a previous export without touching anything else.

An export lists the files it wrote in a hidden manifest (:data:`MANIFEST_NAME`) inside ``--out``. ``overwrite``
replaces exactly those: an ``--out`` holding any other file (a user's documents, the outputs of running the
exported bundle, the checkpoint being exported) is refused with the files named, so no export can delete what it
did not write. New files are staged in a temporary folder next to ``--out`` and moved into place at the end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "previous_export_files", "make_staging_dir", "write_manifest", "install_export"]

logger = logging.getLogger(__name__)

#: the manifest of an exported bundle: ``{"files": [relative paths], ...}``, written last
MANIFEST_NAME = ".monai_gradprom_export.json"


def _listing(paths: list[str], limit: int = 8) -> str:
    shown = ", ".join(paths[:limit])
    return f"{shown}, ... ({len(paths) - limit} more)" if len(paths) > limit else shown


def _contents(folder: Path) -> list[str]:
    """Every file (and symlink, and empty folder) under ``folder``, relative, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        found += [(rel / name).as_posix() for name in files]
        found += [(rel / name).as_posix() for name in dirs if (Path(root) / name).is_symlink()]
        if not dirs and not files and Path(root) != folder:
            found.append(rel.as_posix() + "/")
    return sorted(found)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def previous_export_files(out: Path, checkpoint: str | os.PathLike, overwrite: bool) -> list[str]:
    """Check that an export may be written to ``out``; return the files of a previous export there to replace.

    Refused (FileExistsError naming the files): ``out`` is a file; it contains ``checkpoint``; it is not empty and
    ``overwrite`` is off; with ``overwrite``, it holds no manifest (it is not an export) or files its manifest
    does not list.
    """
    out, source = Path(out).resolve(), Path(checkpoint).resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    if _inside(source, out):
        raise FileExistsError(
            f"--out {out} contains the checkpoint being exported ({source}): an export there could replace its "
            "own source. Choose another --out."
        )
    present = _contents(out) if out.is_dir() else []
    if not present:
        return []
    if not overwrite:
        raise FileExistsError(
            f"--out {out} exists and is not empty ({len(present)} entries: {_listing(present)}). Choose another "
            "--out, or pass --overwrite (overwrite=True) to replace a previous export there."
        )
    manifest = out / MANIFEST_NAME
    try:
        listed = json.loads(manifest.read_text())["files"] if manifest.is_file() else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileExistsError(f"cannot read the export manifest {manifest}: {exc}; nothing was replaced") from exc
    if listed is None:
        raise FileExistsError(
            f"--out {out} is not a bundle written by this exporter (no {MANIFEST_NAME}); --overwrite only replaces "
            f"a previous export. It holds {len(present)} entries: {_listing(present)}. Choose another --out."
        )
    foreign = [p for p in present if p != MANIFEST_NAME and p not in set(listed) and not p.endswith("/")]
    if foreign:
        raise FileExistsError(
            f"--out {out} holds {len(foreign)} entries that the previous export did not write: {_listing(foreign)} "
            "(results of running the exported bundle, or files of your own). --overwrite replaces only the "
            f"files listed in {MANIFEST_NAME}; move these away or choose another --out."
        )
    return [p for p in listed if (out / p).is_file() or (out / p).is_symlink()]


def make_staging_dir(out: Path) -> Path:
    """A new, empty folder next to ``out`` (same file system, so moving out of it is a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes an owner-only directory; give the usual permissions
    return staging


def write_manifest(staging: Path, info: Mapping[str, Any]) -> list[str]:
    """Write :data:`MANIFEST_NAME` listing every file in ``staging`` (plus ``info``); returns the list."""
    files = [p for p in _contents(staging) if not p.endswith("/")]
    (staging / MANIFEST_NAME).write_text(json.dumps({**info, "files": files}, indent=2) + "\n")
    return files


def _prune_empty_parents(path: Path, stop: Path) -> None:
    for parent in path.parents:
        if parent == stop or stop not in parent.parents:
            return
        try:
            parent.rmdir()
        except OSError:  # not empty
            return


def install_export(staging: Path, out: Path, previous: Iterable[str]) -> None:
    """Move the staged export to ``out``: a rename when ``out`` is absent or empty; otherwise remove the previous
    export's files (:func:`previous_export_files`, and nothing else), then move the new ones in."""
    out = Path(out)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        staging.rename(out)
        return
    manifest = out / MANIFEST_NAME
    for rel in previous:
        (out / rel).unlink(missing_ok=True)
        _prune_empty_parents(out / rel, out)
    manifest.unlink(missing_ok=True)  # written last below, so an interrupted move leaves no stale manifest
    for rel in [p for p in _contents(staging) if not p.endswith("/") and p != MANIFEST_NAME] + [MANIFEST_NAME]:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    shutil.rmtree(staging)
