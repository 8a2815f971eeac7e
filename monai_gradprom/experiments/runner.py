"""Runs a comparison's units, one after another or in worker processes, over one settings-keyed piece store.

A unit is one seed's judges, or one seed's arms of one regime. Units of the same phase are independent (the judges of every
seed first, then every arm of every seed), so ``jobs`` processes, each with ``cpu_count // jobs`` threads, run
them side by side: small networks use a second core far better as a second process than as a second thread.
Every unit draws its numbers from its own seeds and batches, so a unit computes the same numbers in a worker as
in the sequential runner: identical at the same thread count; a different thread count sums in another order,
which training can amplify well beyond float tolerance in an unstable run. At the end the main process reads
every piece back and assembles the per-seed results.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from monai_gradprom.experiments.data import BundleData, load_bundle
from monai_gradprom.experiments.protocol import run_seed
from monai_gradprom.experiments.settings import Arm, ProtocolSettings
from monai_gradprom.experiments.store import PieceStore

__all__ = ["run_units", "default_jobs"]

logger = logging.getLogger("monai_gradprom.experiments")

_WORKER: dict[str, Any] = {}


def default_jobs(units: int) -> int:
    """One process per CPU core, but no more than there are units."""
    return max(1, min(os.cpu_count() or 1, units))


def _init_worker(load_args: tuple, settings: ProtocolSettings, root: str, data_rec: Mapping[str, Any], device: str,
                 threads: int, log_level: int) -> None:
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [worker %(process)d] %(message)s")
    logger.setLevel(log_level)  # the protocol's lines, not every engine's
    _WORKER.update(data=load_bundle(*load_args), settings=settings, store=PieceStore(root), data_rec=dict(data_rec),
                   device=device)


def _work(seed: int, arm_names: Sequence[str]) -> str:
    w = _WORKER
    arms = [a for a in w["settings"].arms() if a.name in arm_names]
    run_seed(w["data"], w["settings"], seed, w["store"], w["data_rec"], w["device"], arms)
    return f"seed {seed} {', '.join(arm_names) or 'judges'}"


def run_units(data: BundleData, load_args: tuple, settings: ProtocolSettings, store: PieceStore,
              data_rec: Mapping[str, Any], device: str = "cpu", jobs: int = 1) -> dict[int, dict[str, Any]]:
    """Every seed's results (``run_seed``'s), computing missing pieces in ``jobs`` worker processes (1: here).

    ``load_args`` are :func:`~monai_gradprom.experiments.data.load_bundle`'s arguments, with which each worker
    loads the same data once."""
    arms: list[Arm] = settings.arms()
    if jobs > 1 and str(device).startswith("cuda"):
        logger.info("jobs=%d ignored on %s: one process drives the GPU", jobs, device)
        jobs = 1
    if jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("spawn")  # no fork of a process whose torch threads already run
        init = (load_args, settings, str(store.root), dict(data_rec), str(device), threads, logger.getEffectiveLevel())
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=init) as pool:
            # arms of one regime share their starting IP: one unit, so no two workers train the same piece
            regimes = list(dict.fromkeys(arm.regime for arm in arms))
            by_regime = [tuple(a.name for a in arms if a.regime == r) for r in regimes]
            for phase in ([(seed, ()) for seed in settings.seeds],
                          [(seed, names) for seed in settings.seeds for names in by_regime]):
                futures = [pool.submit(_work, seed, names) for seed, names in phase]
                for future in futures:
                    logger.info("done: %s", future.result())  # re-raises a worker's error here
    # read back (or, sequentially, compute) every piece in this process
    return {seed: run_seed(data, settings, seed, store, data_rec, device) for seed in settings.seeds}

