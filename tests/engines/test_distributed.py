"""Two gloo processes under torchrun end with identical parameters, equal to one process on the global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bundles.helpers import REPO

WORKER = Path(__file__).with_name("ddp_worker.py")
TOLERANCE = 1e-5  # float32 sums in a different order (two half-batch means averaged vs one mean)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.parametrize("strategy", ["joint", "gradprom"])
def test_two_process_gloo_matches_single_process(strategy, tmp_path):
    common = ["--strategy", strategy, "--out", str(tmp_path)]
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
          str(WORKER), *common], tmp_path)
    _run([sys.executable, str(WORKER), *common], tmp_path)
    rank0, rank1, single = (torch.load(tmp_path / f"{strategy}_rank{r}_of{w}.pt") for r, w in ((0, 2), (1, 2), (0, 1)))
    for net in ("ip", "vr"):
        for key in rank0[net]:
            assert torch.equal(rank0[net][key], rank1[net][key]), f"ranks differ in {net}.{key}"
            torch.testing.assert_close(rank0[net][key], single[net][key], atol=TOLERANCE, rtol=0)
    assert rank0["gates"] == rank1["gates"] == single["gates"]
    if strategy == "gradprom":
        assert set(rank0["gates"]) <= {0.0, 1.0}
