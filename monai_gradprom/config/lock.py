"""The output folder lock: a second run into a folder a live run is writing refuses, naming the first's pid."""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from monai_gradprom.config.checks import ConfigError, _writable

logger = logging.getLogger("monai_gradprom.config")


LOCK_FILENAME = ".monai_gradprom.lock"

# -- the output folder lock ----------------------------------------------------------------------------------------

_held: dict[Path, Path] = {}  # output folder -> lock file, held by this process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _read_lock(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _stale(path: Path, pid: Any, host: Any, this_host: str, grace_s: float = 10.0) -> bool:
    """A lock whose process is gone: a pid on this host that no longer exists, or an unreadable lock file
    older than ``grace_s`` (a run killed between creating and writing it; a younger one is being written)."""
    if isinstance(pid, int):
        return host == this_host and not _alive(pid)
    try:
        return time.time() - path.stat().st_mtime > grace_s
    except OSError:
        return True


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def lock_output_dir(output_dir: str | os.PathLike) -> Path | None:
    """Take ``output_dir`` for this process: create it and a lock file naming this pid, removed at exit.

    A second run into the same folder refuses with the first one's pid (two runs would overwrite each other's
    checkpoints and mix their TensorBoard logs). A lock left by a process that no longer exists (killed) is
    taken over with a warning. Under DDP only rank 0 takes it (the ranks of one run share the folder). The lock
    is this process's own after a previous run in the same process, so sequential runs from Python work.
    Returns the lock file (None on ranks > 0).
    """
    folder = Path(output_dir)
    reason = _writable(folder)
    if reason is not None:
        raise ConfigError(f"output_dir {str(folder)!r} cannot be written ({reason})")
    if _rank() != 0:
        return None
    path = folder / LOCK_FILENAME
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            pid, host = holder.get("pid"), holder.get("host")
            if pid == os.getpid() and host == record["host"]:
                break  # an earlier run of this process
            if _stale(path, pid, host, record["host"]):
                logger.warning("output_dir %s: taking over the lock of process %s, which no longer runs", folder, pid)
                path.unlink(missing_ok=True)
                continue
            raise ConfigError(
                f"output_dir {str(folder)!r} is in use by another run (pid {pid} on {host}, started "
                f"{holder.get('started', '?')}: {holder.get('command', '?')}). Wait for it to finish or choose "
                f"another output_dir; if that run is gone, remove {path}."
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        break
    else:
        raise ConfigError(f"output_dir {str(folder)!r}: could not take its lock {path} (other runs keep taking it)")
    _held[folder.resolve()] = path
    return path


def release_output_dir(output_dir: str | os.PathLike | None = None) -> None:
    """Remove this process's lock on ``output_dir`` (all of its locks when None); another process's lock is
    never touched. Registered to run at exit."""
    folders = list(_held) if output_dir is None else [Path(output_dir).resolve()]
    for folder in folders:
        path = _held.pop(folder, None)
        if path is not None and _read_lock(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


atexit.register(release_output_dir)
