"""The comparison protocol's pieces on data with known properties, and the command end to end on tiny settings
(the demo and a fixture of every dataset bundle, in the data set's exact layout)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from monai_gradprom.data.fixtures import write_fixture
from monai_gradprom.experiments.cli import main
from monai_gradprom.experiments.data import DegradedStream, bundle_config_files, degrade_fixed, load_bundle
from monai_gradprom.experiments.recognizers import JudgeNotReadyError, default_min_clean_score, pretrain_judge

TINY_DEMO = {"image_size": 32, "num_train": 16, "num_val": 8, "num_test": 8, "ip_channels": 4, "ip_blocks": 1,
             "vr_arch": "resnet10"}
TINY_PROTOCOL = ["vr_max_steps=2", "vr_eval_every=1", "ip_max_steps=2", "eval_every=1", "finetune_steps=2",
                 "warmup_steps=2", "cascade_steps=2", "curve_every=1", "calibration_batches=1", "agreement_batches=2",
                 "batch_size=4", "vr_batch_size=4"]
TINY_SET = ["--set", *[f"{k}={v}" for k, v in TINY_DEMO.items()]]


def _split(n=12, classes=2):
    torch.manual_seed(0)
    return {"clean": torch.rand(n, 1, 8, 8), "label": torch.arange(n) % classes}


def test_stream_depends_only_on_seed_and_step():
    a = DegradedStream(_split(), "gaussian:0.1", 4, seed=3)
    b = DegradedStream(_split(), "gaussian:0.1", 4, seed=3, start=5)
    first = next(iter(b))  # step 6
    assert torch.equal(a.batch(6)["image"], first["image"]) and torch.equal(a.batch(6)["label"], first["label"])
    assert not torch.equal(a.batch(6)["image"], a.batch(7)["image"])
    other = DegradedStream(_split(), "gaussian:0.1", 4, seed=4)
    assert not torch.equal(a.batch(6)["image"], other.batch(6)["image"])
    batch = a.batch(1)
    assert set(batch) == {"image", "target", "label"} and batch["image"].shape == (4, 1, 8, 8)


def test_fixed_degradation_is_the_same_every_time_and_per_image():
    split = _split()
    one, two = degrade_fixed(split, "gaussian:0.2", 7), degrade_fixed(split, "gaussian:0.2", 7)
    assert torch.equal(one["image"], two["image"]) and torch.equal(one["target"], split["clean"])
    # image i's noise does not depend on how many images come before it
    part = degrade_fixed({k: v[:5] for k, v in split.items()}, "gaussian:0.2", 7)
    assert torch.equal(part["image"], one["image"][:5])


def test_default_judge_threshold():
    assert default_min_clean_score("label", 2) == pytest.approx(0.75)
    assert default_min_clean_score("label", 2, torch.tensor([0, 0, 0, 0, 1])) == pytest.approx(0.95)  # majority 0.8
    assert default_min_clean_score("label", 7, torch.tensor([0] * 19 + [1])) == 0.95  # capped
    assert default_min_clean_score("seg", 4) == 0.6


def test_a_judge_below_its_threshold_stops_the_comparison():
    class Constant(nn.Module):  # always predicts class 0: accuracy 0.5 on balanced labels, never learns
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([10.0, -10.0]), requires_grad=False)
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return self.bias.expand(len(x), 2) + 0 * self.dummy

    split = _split()
    with pytest.raises(JudgeNotReadyError, match=r"'judge' reached a best clean validation score of 0\.500 in 4 steps, below the required 0\.750"):
        pretrain_judge(Constant(), "judge", split, split, "label", 2, 0.75, 4, 2, 4, 1e-3, 0)


def test_the_judge_keeps_its_best_weights(monkeypatch):
    """Scores 0.6, 0.9, 0.7 at the three checks: the weights of the second check are kept and reported."""
    import monai_gradprom.experiments.recognizers as R

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    scores, snapshots = iter([0.6, 0.9, 0.7]), []

    def fake_score(recognizer, split, task_key, num_classes):
        snapshots.append(recognizer[1].weight.detach().clone())
        return next(scores)

    monkeypatch.setattr(R, "clean_score", fake_score)
    split = _split()
    result = pretrain_judge(net, "judge", split, split, "label", 2, 0.8, 6, 2, 4, 1e-2, 0)
    assert result == {"clean_score": 0.9, "steps": 4, "steps_trained": 6}
    assert torch.equal(net[1].weight, snapshots[1]) and not torch.equal(snapshots[1], snapshots[2])


def test_plain_ip_keeps_its_best_weights_after_a_late_blow_up(monkeypatch):
    """Validation PSNR 20, 25, 10, 10 dB (a divergence after the second check): training stops on the plateau
    and the weights of the second check are the ones kept."""
    import monai_gradprom.experiments.schedule as S
    from monai_gradprom.experiments.schedule import train_plain_to_plateau

    ip = nn.Conv2d(1, 1, 3, padding=1)
    values, snapshots = iter([20.0, 25.0, 10.0, 10.0, 10.0]), []

    def fake_scores(net, split):
        snapshots.append(net.weight.detach().clone())
        return {"psnr": next(values)}

    monkeypatch.setattr(S, "enhancement_scores", fake_scores)
    split = _split(classes=2)
    stream = DegradedStream(split, "gaussian:0.1", 4, seed=0)
    result = train_plain_to_plateau(ip, stream, {}, 1e-2, 2, 20, 0.05, 2)
    assert result["val_psnr"] == [20.0, 25.0, 10.0, 10.0] and result["steps"] == 8
    assert result["kept_step"] == 4 and result["kept_val_psnr"] == 25.0
    assert torch.equal(ip.weight, snapshots[1]) and not torch.equal(snapshots[1], snapshots[3])


def test_unknown_bundle_is_named():
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        bundle_config_files("nonexistent")


def test_load_bundle_demo_splits():
    data = load_bundle("demo", None, TINY_DEMO)
    assert data.task_key == "label" and data.num_classes == 2 and data.degradation == "gaussian:0.1"
    assert data.splits["training"]["clean"].shape == (16, 1, 32, 32)
    assert data.splits["test"]["label"].shape == (8,)


def test_a_misspelt_bundle_override_is_an_error():
    with pytest.raises(KeyError, match="no key 'image_sise'.*did you mean 'image_size'"):
        load_bundle("demo", None, {"num_trainn": 3}, {"image_sise": 32})  # a scale's unknown key is skipped


def _compare(tmp_path, bundle, *extra, folder=None):
    out = tmp_path / (folder or bundle)
    argv = ["compare", "--bundle", bundle, "--output_dir", str(out), "--quick", "--min_clean_score", "0",
            "--jobs", "1", "--protocol", *TINY_PROTOCOL, *extra]
    assert main(argv) == 0
    return out, json.loads((out / "results.json").read_text())


def _pieces(out, pattern):
    return {p.name: p.stat().st_mtime_ns for p in out.glob(pattern)}


def test_compare_demo_writes_the_contract(tmp_path):
    out, result = _compare(tmp_path, "demo", *TINY_SET)
    arms = {row["arm"] for row in result["rows"]}
    assert arms == {"finetune/judge/supervised", "cascade/naive/supervised"}
    for arm in arms:
        strategies = {row["strategy"] for row in result["rows"] if row["arm"] == arm}
        assert strategies == {"plain", "frozen", "joint", "gradprom_hard", "gradprom_soft"}
    for row in result["rows"]:
        assert {"strategy", "seed", "lam", "psnr", "ssim", "fixed_vr", "unseen_vr", "own_vr", "gate_rate",
                "regime", "vr_start", "vr_supervision"} <= set(row)
        assert row["arm"] == f"{row['regime']}/{row['vr_start']}/{row['vr_supervision']}"
        assert (row["gate_rate"] is not None) == row["strategy"].startswith("gradprom")
        assert (row["own_vr"] is None) == (row["strategy"] == "plain")
        if row["strategy"] == "frozen":
            assert row["own_vr"] == row["fixed_vr"]  # frozen's VR is the fixed judge
    for arm in arms:  # lambda is rho / r of the arm's own start, through the VR each strategy trains IP with
        calibration = result["per_seed"]["0"]["arms"][arm]["calibration"]
        frozen = next(r for r in result["rows"] if r["strategy"] == "frozen" and r["arm"] == arm)
        joint = next(r for r in result["rows"] if r["strategy"] == "joint" and r["arm"] == arm)
        assert frozen["lam"] == pytest.approx(1.0 / calibration["ratio"])  # rho 1, through the fixed judge
        assert joint["lam"] == pytest.approx(1.0 / calibration["ratio_cotrained"])  # through the co-trained VR
    judge_start = result["per_seed"]["0"]["arms"]["finetune/judge/supervised"]["calibration"]
    assert judge_start["ratio_cotrained"] == judge_start["ratio"]  # the co-trained VR starts as the judge
    naive_start = result["per_seed"]["0"]["arms"]["cascade/naive/supervised"]["calibration"]
    assert naive_start["ratio_cotrained"] != pytest.approx(naive_start["ratio"], rel=1e-3)  # another network
    # the cascade's co-trained VR starts naive: at chance, not as the judge
    assert result["per_seed"]["0"]["arms"]["cascade/naive/supervised"]["vr_start"]["steps"] == 0
    gradprom_vs_joint = [c for c in result["claims"] if c["claim"] == "GradProm (hard) > joint, equal lambda"]
    assert {c["arm"] for c in gradprom_vs_joint} == arms and all("own_vr" in c for c in gradprom_vs_joint)
    for ref in ("noisy", "clean"):
        assert {"fixed_vr", "unseen_vr"} <= set(result["references"][ref])
    assert (out / "results.md").read_text().count("min_clean_score was set to 0") == 1
    assert (out / "pareto.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    # `report` writes the same page again from results.json alone, training nothing
    page = (out / "results.md").read_text()
    assert result["command"].startswith("python -m monai_gradprom.experiments compare --bundle demo")
    (out / "results.md").unlink()
    (out / "pareto.png").unlink()
    before = _pieces(out, "seed0/**/*-*.*")
    assert main(["report", str(out)]) == 0
    assert (out / "results.md").read_text() == page and (out / "pareto.png").stat().st_size > 0
    assert _pieces(out, "seed0/**/*-*.*") == before
    # a results.json from before the command was stored: the command is taken from the page it rewrites
    stored = json.loads((out / "results.json").read_text())
    del stored["command"]
    (out / "results.json").write_text(json.dumps(stored))
    assert main(["report", str(out / "results.json")]) == 0
    assert (out / "results.md").read_text() == page
    # a second invocation reuses every saved piece (not one file rewritten) and writes the same rows
    before = _pieces(out, "seed0/**/*-*.*")
    _, again = _compare(tmp_path, "demo", *TINY_SET)
    assert _pieces(out, "seed0/**/*-*.*") == before
    assert [r["psnr"] for r in again["rows"]] == [r["psnr"] for r in result["rows"]]


def test_a_changed_setting_is_never_served_from_a_stale_piece(tmp_path):
    out, first = _compare(tmp_path, "demo", *TINY_SET, "--regime", "finetune")
    judges = _pieces(out, "seed0/judge_*")
    # fewer fine-tuning steps: judges and the plain IP are reused, every run is computed anew
    _, shorter = _compare(tmp_path, "demo", *TINY_SET, "--regime", "finetune", "--finetune_steps", "1")
    assert _pieces(out, "seed0/judge_*") == judges
    assert len(_pieces(out, "seed0/plain_ip-*.json")) == 1
    assert len(_pieces(out, "seed0/finetune-judge-supervised/run_joint_rho1-*.json")) == 2
    # the new run trained 1 step (curve at steps 0 and 1), the kept one 2 steps (steps 0, 1 and 2)
    joint_runs = out.glob("seed0/finetune-judge-supervised/run_joint_rho1-*.json")
    assert sorted(len(json.loads(p.read_text())["result"]["curve"]) for p in joint_runs) == [2, 3]
    # another noise level: nothing may be reused, the references and every run change, the old pieces stay
    _, noisier = _compare(tmp_path, "demo", *TINY_SET, "degradation=gaussian:0.3", "--regime", "finetune")
    assert noisier["degradation"] == "gaussian:0.3"
    assert noisier["references"]["noisy"]["psnr"] < first["references"]["noisy"]["psnr"] - 5
    assert len(_pieces(out, "seed0/judge_fixed_vr-*.json")) == 2 and len(_pieces(out, "seed0/plain_ip-*.json")) == 2
    old = {(r["strategy"], r["rho"]): r["psnr"] for r in first["rows"]}
    assert all(r["psnr"] != old[(r["strategy"], r["rho"])] for r in noisier["rows"])
    # and the first settings are still served exactly
    _, back = _compare(tmp_path, "demo", *TINY_SET, "--regime", "finetune")
    assert [r["psnr"] for r in back["rows"]] == [r["psnr"] for r in first["rows"]]


@pytest.mark.parametrize("extra, message", [
    (["--rho", "-1"], r"rhos=\(-1\.0,\): each rho must be a finite number > 0"),
    (["--rho", "nan"], r"rhos=\(nan,\): each rho must be a finite number > 0"),
    (["--seeds", "0"], r"--seeds 0: at least one seed"),
    (["--protocol", "finetune_steps=0"], r"finetune_steps=0: must be a whole number >= 1"),
    (["--protocol", "regimes=[\"cascad\"]"], r"'cascad' is not one of \('finetune', 'cascade'\)"),
    (["--jobs", "0"], r"--jobs 0"),
    (["--set", "image_sise=32"], r"no key 'image_sise'.*did you mean 'image_size'"),
])
def test_bad_arguments_are_named_before_anything_trains(tmp_path, extra, message):
    out = tmp_path / "o"
    with pytest.raises(SystemExit, match=message):
        main(["compare", "--bundle", "demo", "--output_dir", str(out), "--quick", *extra])
    assert not out.exists()


def test_a_running_comparison_keeps_others_out_of_its_folder(tmp_path):
    import socket
    import subprocess
    import sys

    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".monai_gradprom.lock").write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "started": "now", "command": "compare"}))
        with pytest.raises(SystemExit, match=rf"in use by another run \(pid {holder.pid}"):
            main(["compare", "--bundle", "demo", "--output_dir", str(out), "--quick", "--jobs", "1", *TINY_SET])
        assert sorted(p.name for p in out.iterdir()) == [".monai_gradprom.lock"]
    finally:
        holder.kill()


def test_a_folder_of_another_source_is_refused_by_the_command(tmp_path):
    out, _ = _compare(tmp_path, "demo", *TINY_SET, "--regime", "cascade")
    with pytest.raises(SystemExit, match=r"comparison\.json.*dataset_dir: None -> '"):
        main(["compare", "--bundle", "demo", "--dataset_dir", str(tmp_path), "--output_dir", str(out), "--quick",
              "--min_clean_score", "0", "--protocol", *TINY_PROTOCOL, *TINY_SET])


@pytest.mark.slow
def test_worker_processes_compute_what_the_sequential_runner_computes(tmp_path):
    _, sequential = _compare(tmp_path, "demo", *TINY_SET, folder="one")
    _, parallel = _compare(tmp_path, "demo", *TINY_SET, "--jobs", "2", folder="two")
    assert parallel["jobs"] == 2
    key = lambda r: (r["arm"], r["strategy"], r["rho"])  # noqa: E731
    expected = {key(r): r for r in sequential["rows"]}
    assert len(parallel["rows"]) == len(expected)
    for row in parallel["rows"]:
        for metric in ("psnr", "ssim", "fixed_vr", "unseen_vr"):
            assert row[metric] == pytest.approx(expected[key(row)][metric], abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["isic2018", "covid_ct", "lizard", "camus"])
def test_compare_runs_on_each_dataset_fixture(tmp_path, bundle):
    data = write_fixture(bundle, tmp_path / "data")
    size = 64 if bundle in ("isic2018", "lizard", "camus") else 32
    _, result = _compare(tmp_path, bundle, "--dataset_dir", str(data), "--set", f"image_size={size}",
                         "ip_channels=4", "ip_blocks=1", "vr_arch=resnet10")
    assert {row["strategy"] for row in result["rows"]} >= {"plain", "frozen", "gradprom_hard"}
    assert {row["regime"] for row in result["rows"]} == {"finetune", "cascade"}  # --quick covers both regimes
    assert all(0.0 <= row["fixed_vr"] <= 1.0 for row in result["rows"])
