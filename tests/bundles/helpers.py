"""Run bundles the way a user does: ``python -m monai.bundle run ...`` in a subprocess from the repo root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bundle(run_id: str, config_files: list[str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    files = "[" + ",".join(f"'{f}'" for f in config_files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", files, *args]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed with exit code {result.returncode}\n"
            f"--- stdout (tail) ---\n{result.stdout[-4000:]}\n--- stderr (tail) ---\n{result.stderr[-6000:]}"
        )
    return result
