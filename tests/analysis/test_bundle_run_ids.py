"""``bundles/analysis.json`` adds the run ids ``curves`` and ``bars`` to any bundle: checked on the demo's config
with hand-written TensorBoard logs and metrics files (no training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bundle(run_id: str, output_dir: Path, strategy: str) -> subprocess.CompletedProcess:
    configs = f"['{REPO / 'bundles/demo/train.json'}','{REPO / 'bundles/analysis.json'}']"
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", configs,
                           "--output_dir", str(output_dir), "--strategy", strategy],
                          capture_output=True, text=True, cwd=REPO, check=False)


def test_curves_and_bars_run_ids(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for strategy, psnr in (("plain", 24.0), ("gradprom", 23.0)):
        run = tmp_path / strategy
        writer = SummaryWriter(log_dir=str(run / "tensorboard"))
        for step, loss in enumerate((0.5, 0.4, 0.3), start=1):
            writer.add_scalar("loss_ip", loss, step)
        writer.close()
        (run / "metrics.json").write_text(json.dumps({"strategy": strategy, "psnr": psnr, "ssim": 0.5}))
    result = _bundle("curves", tmp_path / "plain", "plain")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "plain" / "analysis" / "curves.csv").read_text().splitlines()
    assert rows[1:] == ["plain,loss_ip,1,0.5", "plain,loss_ip,2,0.4000000059604645", "plain,loss_ip,3,0.30000001192092896"]
    result = _bundle("bars", tmp_path / "plain", "plain")
    assert result.returncode == 0, result.stderr[-2000:]
    bars = json.loads((tmp_path / "analysis" / "bars.json").read_text())
    assert {g: s["psnr"]["mean"] for g, s in bars["groups"].items()} == {"gradprom": 23.0, "plain": 24.0}
