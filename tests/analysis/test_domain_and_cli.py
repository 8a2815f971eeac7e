"""Domain generalization through config only, and every tool through ``python -m monai_gradprom.analysis``.

Checkpoints are saved from freshly built (untrained) networks of the demo bundle: the tools' numbers are
checked against the same computation done by hand, which does not need a trained model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monai_gradprom.analysis import _common as c
from monai_gradprom.analysis.cli import TOOLS, main
from monai_gradprom.analysis.domain import evaluate_checkpoint
from monai_gradprom.data.fixtures import write_fixture

REPO = Path(__file__).resolve().parents[2]
DEMO = [str(REPO / "bundles/demo/train.json"), str(REPO / "bundles/demo/smoke.json")]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Two training checkpoints (IP + VR, different seeds) and a VR state dict, of the demo's networks."""
    out = tmp_path_factory.mktemp("ckpt")
    parser = c.load_bundle_config(DEMO)
    paths = {}
    for name, seed in (("plain", 0), ("ra", 1)):
        torch.manual_seed(seed)
        ip, vr = c.build_network(parser, "ip_network_def"), c.build_network(parser, "vr_network_def")
        with torch.no_grad():  # SRResNet starts at the identity: move it off so the two IPs differ
            for p in ip.parameters():
                p.add_(0.02 * torch.randn_like(p))
        paths[name] = out / f"{name}.pt"
        torch.save({"ip_network": ip.state_dict(), "vr_network": vr.state_dict()}, paths[name])
    paths["vr"] = out / "vr.pt"
    torch.save(torch.load(paths["ra"])["vr_network"], paths["vr"])
    return paths


def test_in_domain_metrics_equal_the_computation_by_hand(checkpoints, tmp_path):
    from monai.metrics import PSNRMetric

    metrics = evaluate_checkpoint(DEMO, checkpoints["plain"], tmp_path, limit=8, show_progress=False)
    parser = c.load_bundle_config(DEMO)
    ip = c.load_enhancer(parser, checkpoints["plain"])
    vr = c.load_recognizer(parser, checkpoints["plain"])
    data = c.load_split(parser, "test", limit=8, seed=0)
    out = c.enhance(ip, data["image"], data["target"])
    assert metrics["psnr"] == pytest.approx(float(PSNRMetric(1.0)(out, data["target"]).mean()), abs=1e-4)
    accuracy = float((c.predict(vr, out).argmax(1) == data["label"].reshape(-1)).float().mean())
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["n_images"] == 8 and metrics["split"] == "test"
    assert json.loads((tmp_path / "metrics.json").read_text())["psnr"] == metrics["psnr"]


def test_cross_domain_through_config_only(checkpoints, tmp_path):
    root = write_fixture("covid_ct", tmp_path / "covid", num=6)
    covid = str(REPO / "bundles/covid_ct/train.json")
    metrics = evaluate_checkpoint(DEMO, checkpoints["plain"], tmp_path / "out", data_config=covid,
                                  data_overrides={"dataset_dir": str(root), "image_size": 32},
                            show_progress=False)
    parser = c.load_bundle_config(covid, {"dataset_dir": str(root), "image_size": 32})
    assert metrics["n_images"] == len(c.get_config(parser, "datalists")["test"]) > 0
    assert metrics["data_config"] == [covid] and metrics["model_config"] == DEMO
    assert 0 <= metrics["accuracy"] <= 1 and metrics["psnr"] > metrics["input_psnr"] - 10


def test_domain_errors_name_the_problem(checkpoints, tmp_path):
    root = write_fixture("isic2018", tmp_path / "isic", num=4, num_val=2)
    with pytest.raises(ValueError, match="3 channel"):
        evaluate_checkpoint(DEMO, checkpoints["plain"], tmp_path / "o", data_config=str(REPO / "bundles/isic2018/train.json"),
                            data_overrides={"dataset_dir": str(root), "image_size": 32, "vr_task": "classification"},
                            show_progress=False)
    bad = tmp_path / "weights.pt"
    torch.save({"model": {}}, bad)
    with pytest.raises(KeyError, match=f"{bad}.*no 'ip_network'"):
        evaluate_checkpoint(DEMO, bad, tmp_path / "o", show_progress=False)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        evaluate_checkpoint(DEMO, tmp_path / "missing.pt", tmp_path / "o", show_progress=False)


def test_every_tool_has_help(capsys):
    for tool in TOOLS:
        with pytest.raises(SystemExit) as exit_info:
            main([tool, "--help"])
        assert exit_info.value.code == 0
        assert "--output-dir" in capsys.readouterr().out
    result = subprocess.run([sys.executable, "-m", "monai_gradprom.analysis", "--help"], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0 and all(tool in result.stdout for tool in TOOLS)


def test_cli_error_is_one_line_naming_the_file(tmp_path, capsys):
    assert main(["curves", "--run", f"a={tmp_path / 'nowhere'}", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "curves: error" in err and "nowhere" in err


def test_cli_tools_end_to_end_on_the_demo(checkpoints, tmp_path, capsys):
    ck = {k: str(v) for k, v in checkpoints.items()}
    common = ["--config", *DEMO, "--limit", "8", "--no-progress"]
    # transfer: the same recognizer under two names gives equal columns in every row
    assert main(["transfer", *common, "--enhancer", "none=none", f"plain={ck['plain']}", f"ra={ck['ra']}",
                 "--recognizer", f"a={ck['vr']}", f"b={ck['vr']}", "--output-dir", str(tmp_path / "t")]) == 0
    table = json.loads((tmp_path / "t" / "transfer.json").read_text())
    assert table["rows"] == ["none", "plain", "ra", "clean target"] and table["columns"] == ["a", "b"]
    assert all(row[0] == row[1] for row in table["values"])
    # boundary: IBD of a recognizer with itself is 0 wherever an image qualifies
    assert main(["boundary", *common, "--plain", ck["plain"], "--ra", ck["ra"], "--source", ck["vr"],
                 "--target", f"same={ck['vr']}", "--grid-steps", "8", "--bisection-steps", "4",
                 "--map-resolution", "9", "--output-dir", str(tmp_path / "b")]) == 0
    result = json.loads((tmp_path / "b" / "boundary.json").read_text())
    for kind in ("ra", "random"):
        entry = result[kind]["targets"]["same"]
        assert entry["ibd"] == (0.0 if entry["n_images"] else None)
    assert (tmp_path / "b" / "decision_map.png").is_file()
    # CAM, qualitative grid and metric bars write their figure and numbers
    assert main(["cam", *common, "--enhancer", f"plain={ck['plain']}", "--recognizer", ck["ra"],
                 "--num-images", "2", "--output-dir", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "cam.json").read_text())["columns"] == ["input", "plain", "target"]
    assert main(["qualitative", *common, "--enhancer", f"plain={ck['plain']}", "--recognizer", ck["vr"],
                 "--num-images", "2", "--output-dir", str(tmp_path / "q")]) == 0
    grid = json.loads((tmp_path / "q" / "qualitative.json").read_text())
    assert len(grid["per_image"]["plain"]["psnr"]) == 2
    for name in ("m1", "m2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"strategy": "x", "psnr": 20.0 + (name == "m2") * 2}))
    assert main(["bars", "--files", str(tmp_path / "m1" / "metrics.json"), str(tmp_path / "m2" / "metrics.json"),
                 "--metrics", "psnr", "--output-dir", str(tmp_path / "bars")]) == 0
    assert json.loads((tmp_path / "bars" / "bars.json").read_text())["groups"]["x"]["psnr"]["mean"] == 21.0
    for folder, png in (("t", "transfer"), ("c", "cam"), ("q", "qualitative"), ("bars", "bars")):
        assert (tmp_path / folder / f"{png}.png").stat().st_size > 1000
