"""Speed-up of the comparison's worker processes against the sequential runner, measured in one run.

    python benchmarks/compare_parallel.py            # the --quick protocol on the demo data, both regimes
    python benchmarks/compare_parallel.py --seeds 2

Runs the same comparison twice into fresh folders, once with ``--jobs 1`` (one process, all threads) and once
with one process per core, and prints both wall times, their ratio, and the largest difference of any row's
metrics: the workers use fewer threads each, so torch sums in another order and training can amplify that
(0.27 in one metric of the --quick cascade, measured); at one thread per process the rows are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from monai_gradprom.experiments.cli import main


def _run(out: Path, jobs: int, seeds: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    main(["compare", "--bundle", "demo", "--output_dir", str(out), "--quick", "--seeds", str(seeds), "--jobs", str(jobs)])
    return time.perf_counter() - t0, json.loads((out / "results.json").read_text())


def run(seeds: int = 1) -> dict[str, float]:
    jobs = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        t_seq, seq = _run(Path(tmp) / "sequential", 1, seeds)
        t_par, par = _run(Path(tmp) / "parallel", jobs, seeds)
    key = lambda r: (r["arm"], r["seed"], r["strategy"], r["rho"])  # noqa: E731
    expected = {key(r): r for r in seq["rows"]}
    diff = max(abs(r[m] - expected[key(r)][m]) for r in par["rows"] for m in ("psnr", "ssim", "fixed_vr", "unseen_vr"))
    return {"sequential_s": t_seq, "parallel_s": t_par, "jobs": jobs, "speedup": t_seq / t_par, "max_abs_diff": diff}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    r = run(parser.parse_args().seeds)
    print(f"sequential {r['sequential_s']:.1f} s | {r['jobs']} processes {r['parallel_s']:.1f} s | "
          f"speed-up {r['speedup']:.2f}x | largest metric difference {r['max_abs_diff']:.2e}")
