"""The overview page over several comparisons: verdicts carried over from each results.json, bad files named."""

import json

import pytest

from monai_gradprom.experiments.cli import main
from monai_gradprom.experiments.controls import claim_table
from monai_gradprom.experiments.overview import load_results, overview_lines, write_overview
from monai_gradprom.experiments.report import compute_seconds, format_difference

ARM = "cascade/naive/supervised"


def _payload(bundle: str, gap: list[float]) -> dict:
    """Two seeds; GradProm (hard) beats joint on PSNR by ``gap`` per seed, nothing else differs."""
    rows = []
    for seed, g in enumerate(gap):
        for strategy, psnr in (("plain", 30.0), ("joint", 29.0), ("gradprom_hard", 29.0 + g)):
            rows.append({"strategy": strategy, "seed": seed, "rho": None if strategy == "plain" else 1.0,
                         "arm": ARM, "psnr": psnr + seed, "ssim": 0.9, "fixed_vr": 0.7, "unseen_vr": 0.6,
                         "own_vr": None if strategy == "plain" else 0.8, "gate_rate": 0.5, "lam": 0.1,
                         "mean_gate_weight": 0.5})
    return {"bundle": bundle, "degradation": "gaussian:0.1", "task_key": "label", "num_classes": 2,
            "sizes": "8 training images", "settings": {"seeds": [0, 1], "finetune_steps": 2, "warmup_steps": 3,
                                                       "cascade_steps": 4, "rhos": [1.0]},
            "arms": [{"regime": "cascade", "vr_start": "naive", "vr_supervision": "supervised", "name": ARM}],
            "references": {"noisy": {"psnr": 20.0, "fixed_vr": 0.5}, "clean": {"fixed_vr": 1.0}},
            "rows": rows, "claims": claim_table(rows, [1.0]), "per_seed": {}}


def test_overview_carries_each_sources_verdicts(tmp_path):
    files = []
    for bundle, gap in (("demo", [0.1, 0.5]), ("mni152", [-0.5, -0.5001])):
        path = tmp_path / bundle / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(_payload(bundle, gap)))
        files.append(path)
    out = write_overview(files, tmp_path / "results.md", ["results_demo.md", None])
    text = out.read_text()
    head = [line for line in text.splitlines() if "GradProm (hard) > joint, equal lambda" in line]
    # demo: diffs 0.1, 0.5 -> mean +0.30, sd 0.28, 1.5 standard errors from zero: within spread
    assert "| `demo` | `cascade/naive/supervised` | GradProm (hard) > joint, equal lambda | 1 | +0.30 ± 0.28 *within spread*" in head[0]
    assert "*reversed*" in head[1] and "`mni152`" in head[1]  # -0.5 on both seeds: consistently worse
    assert "joint differs from plain (room for a gate)" in text and "[results_demo.md](results_demo.md)" in text
    assert text.count("## Source `") == 2 and "### `mni152`, arm `cascade/naive/supervised`" in text
    # the command line writes the same page
    assert main(["overview", *map(str, files), "--out", str(tmp_path / "cli.md"), "--links", "results_demo.md",
                 ""]) == 0
    assert (tmp_path / "cli.md").read_text().split("\n", 3)[3] == text.split("\n", 3)[3]


def test_overview_refuses_what_is_not_a_results_file(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"bundle": "demo"}))
    with pytest.raises(ValueError, match=r"results\.json: not a comparison's results\.json \(no rows"):
        load_results(bad)
    with pytest.raises(SystemExit, match=r"overview: .*results\.json"):
        main(["overview", str(bad), "--out", str(tmp_path / "o.md")])
    assert not (tmp_path / "o.md").exists()  # nothing half-written
    with pytest.raises(SystemExit, match="1 --links for 2 results files"):
        main(["overview", str(bad), str(bad), "--out", str(tmp_path / "o.md"), "--links", "a.md"])


def test_overview_lines_without_links_name_every_arm():
    lines = overview_lines([_payload("demo", [0.2, 0.2])])
    assert any(line.startswith("| gradprom_hard | 1 | 29.70 ± 0.71") for line in lines)


def test_a_difference_below_the_shown_decimals_keeps_two_significant_digits():
    assert format_difference(0.0123, 0.004, 3) == "+0.012 ± 0.004"
    assert format_difference(-1.2345, 0.9, 2) == "-1.23 ± 0.90"
    # 4e-05 that holds must not read "+0.000 ± 0.000"
    assert format_difference(4e-05, 1.2e-05, 3) == "+4.0e-05 ± 1.2e-05"
    assert format_difference(0.004, 1e-04, 3) == "+0.004 ± 1.0e-04"
    assert format_difference(0.3, None, 2) == "+0.30" and format_difference(None, None, 2) == "-"
    lines = overview_lines([_payload("demo", [1e-5, 1.2e-5])])  # mean 1.1e-05, sd 1.4e-06: 11 standard errors
    assert any("| +1.1e-05 ± 1.4e-06 *holds*" in line for line in lines)


def test_report_refuses_a_file_compare_did_not_write(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_payload("demo", [0.1, 0.2])))  # an overview's input lacks the report's keys
    with pytest.raises(SystemExit, match=r"report: .*results\.json: not written by `compare` "
                       r"\(no min_clean_score, curves_first_seed, hardware, jobs, wall_minutes\)"):
        main(["report", str(tmp_path)])
    assert not (tmp_path / "results.md").exists()


def test_compute_seconds_count_a_shared_start_once():
    """Two arms of the cascade (supervised, unsupervised) start from the seed's one warm-up and one naive VR."""
    arms = [{"regime": "cascade", "vr_start": "naive", "vr_supervision": v, "name": f"cascade/naive/{v}"}
            for v in ("supervised", "unsupervised")]
    arms.append({"regime": "finetune", "vr_start": "judge", "vr_supervision": "supervised",
                 "name": "finetune/judge/supervised"})
    starts = {"cascade/naive/supervised": (30.0, 2.0), "cascade/naive/unsupervised": (30.0, 2.0),
              "finetune/judge/supervised": (100.0, 0.0)}
    seed = {"judges": {"fixed_vr": {"seconds": 5.0}, "unseen_vr": {"seconds": 7.0}},
            "arms": {name: {"start": {"seconds": ip}, "vr_start": {"seconds": vr}} for name, (ip, vr) in starts.items()}}
    payload = {"arms": arms, "per_seed": {"0": seed, "1": seed}, "rows": [{"seconds": 1.5}, {"seconds": 2.5}]}
    # per seed: judges 12, warm-up 30 + naive VR 2 + plain IP 100 (not 30 twice); two seeds
    assert compute_seconds(payload) == {"judges": 24.0, "starting IP": 264.0, "runs": 4.0}


def test_overview_counts_compute_minutes_by_todays_rules():
    payload = _payload("demo", [0.1, 0.2])
    for row in payload["rows"]:  # 2 seeds x 3 strategies, a minute each
        row["seconds"] = 60.0
    payload["compute_seconds"] = {"runs": 1e6}  # a stale total stored by an older version is not repeated
    text = "\n".join(overview_lines([payload]))
    assert "all pieces together 6 compute-min." in text and "16667" not in text
