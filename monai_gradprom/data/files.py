"""Finding a data set's folders and files as real downloads lay them out (nested one level deeper by a mirror,
AppleDouble ``._`` files, licences next to the images, split lists with CRLF line ends)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "require_root", "find_dir", "require_dir", "list_images", "read_lines"]

#: Image files the 2D loaders take (lower-case suffixes; matching is case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SKIP_DIRS = {"__MACOSX"}


def require_root(root: str | os.PathLike, what: str = "data set root") -> Path:
    """The absolute root folder, or :class:`FileNotFoundError` naming it (a bundle's unset ``dataset_dir``
    arrives here as ``None``: say which setting to give rather than fail inside ``os.fspath``)."""
    if root is None or str(root) == "":
        raise ValueError(f"no {what} given: set dataset_dir (e.g. --dataset_dir /path/to/data) to the unzipped download")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def find_dir(root: Path, name: str, max_depth: int = 3) -> Path | None:
    """The shallowest folder called ``name`` at most ``max_depth`` levels below ``root`` (``root`` itself counts as
    level 0), or ``None``. Mirrors and unzip tools nest a data set's folders one or two levels deeper than the
    official archive; a bounded breadth-first search finds them without walking a whole disk. ``__MACOSX`` and
    hidden folders are skipped. An exact name anywhere within the depth wins over a case-insensitive match (a
    mirror's ``lizard_labels/`` holds the real ``Lizard_Labels/``)."""
    level, loose = [root], None
    for depth in range(max_depth + 1):
        exact = [d for d in level if d.name == name]
        if exact:
            return exact[0]
        loose = loose or next((d for d in level if d.name.lower() == name.lower()), None)
        if depth == max_depth:
            break
        children: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            children += [Path(e.path) for e in entries
                         if e.is_dir() and not e.name.startswith(".") and e.name not in _SKIP_DIRS]
        level = children
    return loose


def require_dir(root: Path, name: str, max_depth: int = 3, what: str = "expected folder") -> Path:
    """:func:`find_dir` or :class:`FileNotFoundError` naming the folder where it was expected."""
    found = find_dir(root, name, max_depth)
    if found is None:
        raise FileNotFoundError(f"{what} not found: {root / name} (searched {max_depth} levels below {root})")
    return found


def list_images(folder: Path, prefix: str = "", suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name), skipping AppleDouble ``._`` files and everything else
    (licences, attributions, spreadsheets) that real downloads keep next to the images."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.name.startswith(prefix) and not p.name.startswith("._")
        and p.suffix.lower() in suffixes
    )


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file, stripped: split lists come with CRLF line ends, trailing spaces, blank
    lines and sometimes a byte-order mark. Only surrounding white space is removed; the names stay verbatim
    (``%`` and inner spaces included)."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    return [line.strip() for line in text.splitlines() if line.strip()]
