"""Where a comparison keeps its pieces, keyed by every setting each piece depends on, so that no rerun can serve a
number that other settings made.

Each piece (a judge, the plain IP, a warm-up, a calibration, one fine-tuning run) is saved as
``<folder>/<kind>-<key>.json`` (and ``.pt`` for weights), where ``key`` is a digest of its ``depends_on`` record:
the data (bundle, data digest, degradation, sizes), the networks' architecture, the steps, learning rates, seed,
regime, the package version, and the records of the pieces it was made from. A rerun with any of those changed
looks for another file, so it recomputes; the pieces of the old settings stay untouched and the log names what
differs. A piece whose stored record does not equal the one asked for (a hand-edited or truncated file) is
refused with the difference named.

The folder itself belongs to one comparison source: ``comparison.json`` names the bundle and data folder, and
another bundle's folder is refused, naming that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_gradprom.utils import atomic_save, atomic_write

__all__ = ["PieceStore", "StalePieceError", "ForeignFolderError", "settings_digest", "tensor_digest",
           "describe_differences", "claim_folder"]

logger = logging.getLogger("monai_gradprom.experiments")

FORMAT = 2  # comparison folder layout; version 1 (before settings-keyed pieces) kept seed<k>/plain_ip.pt etc.


class StalePieceError(RuntimeError):
    """A stored piece's record does not match the settings it is looked up with."""


class ForeignFolderError(RuntimeError):
    """The output folder holds another comparison's pieces."""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def settings_digest(depends_on: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the record's canonical JSON: equal records, equal digests."""
    return hashlib.sha256(_canonical(depends_on).encode()).hexdigest()[:12]


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, shapes, dtypes and bytes: the data a piece was made from."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def describe_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``["data.degradation: 'gaussian:0.1' -> 'gaussian:0.3'", ...]``: where two records differ, by path."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: (absent) -> {new[key]!r}")
            elif key not in new:
                out.append(f"{path}: {old[key]!r} -> (absent)")
            else:
                out.extend(describe_differences(old[key], new[key], path))
        return out
    if _canonical(old) != _canonical(new):
        return [f"{prefix or 'value'}: {old!r} -> {new!r}"]
    return []


def _summary(lines: list[str], limit: int = 6) -> str:
    shown = "; ".join(lines[:limit])
    return shown + (f"; and {len(lines) - limit} more" if len(lines) > limit else "")


class PieceStore:
    """Settings-keyed pieces of one comparison under ``root`` (one folder per seed)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _paths(self, folder: str, kind: str, depends_on: Mapping[str, Any]) -> tuple[Path, Path]:
        stem = self.root / folder / f"{kind}-{settings_digest(depends_on)}"
        return stem.with_suffix(".json"), stem.with_suffix(".pt")

    def _read(self, path: Path, depends_on: Mapping[str, Any]) -> dict | None:
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise StalePieceError(f"{path}: unreadable piece ({err}); delete it to recompute") from err
        stored = record.get("depends_on")
        if _canonical(stored) != _canonical(json.loads(_canonical(depends_on))):
            diff = describe_differences(stored, json.loads(_canonical(depends_on)))
            raise StalePieceError(f"{path} was made under other settings than its name says ({_summary(diff)}); "
                                  "it was edited or damaged: delete it to recompute")
        return record

    def _explain_miss(self, folder: str, kind: str, depends_on: Mapping[str, Any]) -> None:
        """Log, for a piece about to be computed, what differs from the same kind's pieces already stored."""
        wanted = json.loads(_canonical(depends_on))
        for other in sorted((self.root / folder).glob(f"{kind}-*.json")):
            try:
                stored = json.loads(other.read_text()).get("depends_on")
            except (OSError, json.JSONDecodeError):
                continue
            diff = describe_differences(stored, wanted)
            if diff:
                logger.info("not reusing %s: %s", other, _summary(diff))

    def json_piece(self, folder: str, kind: str, depends_on: Mapping[str, Any], make: Callable[[], dict]) -> dict:
        """The stored result of ``kind`` under ``depends_on``, or ``make()``'s, saved with its record."""
        path, _ = self._paths(folder, kind, depends_on)
        record = self._read(path, depends_on)
        if record is not None:
            return record["result"]
        self._explain_miss(folder, kind, depends_on)
        result = make()
        self._write(path, kind, depends_on, result)
        return result

    def network_piece(self, folder: str, kind: str, depends_on: Mapping[str, Any], network: nn.Module,
                      train: Callable[[], dict]) -> dict:
        """Load ``network``'s weights stored under ``depends_on`` (and return the metadata saved with them), or
        ``train()`` it and save both (weights first: a record never points at weights that are not there)."""
        path, weights = self._paths(folder, kind, depends_on)
        record = self._read(path, depends_on)
        if record is not None and weights.is_file():
            network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return record["result"]
        self._explain_miss(folder, kind, depends_on)
        result = train()
        atomic_save(network.state_dict(), weights)
        self._write(path, kind, depends_on, result)
        return result

    def has(self, folder: str, kind: str, depends_on: Mapping[str, Any]) -> bool:
        path, _ = self._paths(folder, kind, depends_on)
        return self._read(path, depends_on) is not None

    @staticmethod
    def _write(path: Path, kind: str, depends_on: Mapping[str, Any], result: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"kind": kind, "key": path.stem.rsplit("-", 1)[-1], "depends_on": json.loads(_canonical(depends_on)),
                   "result": result}
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1, default=str)))


def claim_folder(output_dir: str | os.PathLike, identity: Mapping[str, Any]) -> Path:
    """Make ``output_dir`` this comparison's folder, or refuse one that holds another source's pieces.

    ``identity`` (bundle, data folder) is written to ``comparison.json`` the first time; a later comparison with
    another identity is refused naming that file, and so is a folder of the old layout (pieces without records,
    which cannot be checked against any settings)."""
    root = Path(output_dir)
    manifest = root / "comparison.json"
    wanted = {"format": FORMAT, **json.loads(_canonical(identity))}
    if manifest.is_file():
        try:
            stored = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ForeignFolderError(f"{manifest} is unreadable ({err}); use another --output_dir") from err
        diff = describe_differences(stored, wanted)
        if diff:
            raise ForeignFolderError(f"{manifest}: this folder holds the comparison of another source "
                                     f"({_summary(diff)}); use another --output_dir")
        return root
    if root.is_dir():
        old = sorted(root.glob("seed*/plain_ip.pt")) + sorted(root.glob("seed*/fixed_vr.pt"))
        if old:
            raise ForeignFolderError(f"{old[0]}: this folder holds pieces of an older comparison that recorded no "
                                     "settings, so none of them can be checked; use another --output_dir")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(manifest, lambda tmp: Path(tmp).write_text(json.dumps(wanted, indent=1)))
    return root
