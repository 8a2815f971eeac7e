"""``python -m monai_gradprom.bundle export``: a standard MONAI bundle that MONAI's own tools accept (issue 13.5).

Checkpoints are written here in the trainer's layout (``{"ip_network": state, "vr_network": state,
"ip_optimizer": ..., "trainer": ...}``, as ``AtomicCheckpointSaver`` saves ``checkpoint_dict()``), with networks
built from the bundle's own ``train.json`` + ``smoke.json``, so no training is needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine
from monai.bundle import ConfigParser, ckpt_export
from monai.bundle import load as monai_load

from monai_gradprom.bundle import export_bundle, parse_overrides
from monai_gradprom.bundle.__main__ import main

REPO = Path(__file__).resolve().parents[1]
BUNDLES = ("demo", "isic2018", "covid_ct", "lizard", "camus")


def _smoke(name: str) -> dict:
    return json.loads((REPO / "bundles" / name / "smoke.json").read_text())


def _networks(name: str, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """IP and VR of ``bundles/<name>`` at smoke sizes, with random (non-default) weights."""
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / name / f) for f in ("train.json", "smoke.json")])
    torch.manual_seed(seed)
    ip, vr = parser.get_parsed_content("ip_network_def"), parser.get_parsed_content("vr_network_def")
    with torch.no_grad():
        for p in ip.parameters():  # the tail starts at zero: make every weight distinct from a fresh network
            p.add_(0.05 * torch.randn_like(p))
    return ip, vr


def _training_checkpoint(path: Path, ip: torch.nn.Module, vr: torch.nn.Module) -> Path:
    optimizer = torch.optim.Adam(ip.parameters(), lr=1e-4)
    torch.save(
        {
            "ip_network": ip.state_dict(),
            "vr_network": vr.state_dict(),
            "ip_optimizer": optimizer.state_dict(),
            "trainer": {"epoch": 2, "iteration": 8, "epoch_length": 4, "max_epochs": 2},
        },
        path,
    )
    return path


def _assert_same_state(network: torch.nn.Module, state: dict) -> None:
    got = network.state_dict()
    assert set(got) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(got[key].cpu(), value, rtol=0, atol=0, msg=key)


def _loader_ids(node, prefix: str = "") -> list[str]:
    """Config ids of every CheckpointLoader in a raw config (found by content: the layout may change)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        child_id = f"{prefix}#{key}" if prefix else str(key)
        if isinstance(child, dict) and str(child.get("_target_", "")).endswith("CheckpointLoader"):
            found.append(child_id)
        else:
            found += _loader_ids(child, child_id)
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(root / "model_final.pt", ip, vr)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    out = export_bundle("demo", checkpoint, root / "demo_bundle", overrides=_smoke("demo"))
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest  # the source checkpoint is untouched
    return out, ip, vr


def test_layout_is_monais_with_plain_state_dicts(exported):
    out, ip, vr = exported
    for rel in ("train.json", "evaluate.json", "inference.json", "metadata.json", "logging.conf",
                "multi_gpu_train.json"):
        assert (out / "configs" / rel).is_file(), rel
    readme = (out / "docs" / "README.md").read_text()
    source = (REPO / "bundles" / "demo" / "README.md").read_text()
    assert readme.splitlines()[0] == source.splitlines()[0] and "## What the demo shows" in readme
    for foreign in ("bundles/", "smoke.json", "](../"):  # nothing the export does not hold
        assert foreign not in readme, foreign
    assert "## Using this exported bundle" in readme and "configs/train.json" in readme
    assert "Apache" in (out / "LICENSE").read_text()
    ip_state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert set(ip_state) == set(ip.state_dict())  # IP alone: no optimizer, trainer or VR entries
    _assert_same_state(ip, ip_state)
    _assert_same_state(vr, torch.load(out / "models" / "vr_model.pt", weights_only=True))
    assert not (out / "models" / "transformer_model.pt").exists()  # the checkpoint holds no transformer
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo_bundle", "model_final.pt"]  # no staging left


def test_configs_are_relative_to_the_bundle_folder_as_monai_does_it(exported, tmp_path):
    out = exported[0]
    parser = ConfigParser()
    parser.read_config([str(out / "configs" / f) for f in ("train.json", "evaluate.json")])
    assert parser.get_parsed_content("bundle_root") == "."  # MONAI's convention: the bundle folder, or --bundle_root
    assert parser.get_parsed_content("checkpoint") == os.path.join(".", "models", "model.pt")
    assert parser.get_parsed_content("output_dir") == os.path.join(".", "outputs", "gradprom")
    parser["bundle_root"] = str(out)
    assert ConfigParser(parser.config).get_parsed_content("checkpoint") == os.path.join(out, "models", "model.pt")
    infer = ConfigParser()
    infer.read_config(str(out / "configs" / "inference.json"))
    assert infer.get_parsed_content("bundle_root") == "."
    assert infer.get_parsed_content("checkpoint") == os.path.join(".", "models", "model.pt")
    assert infer.get_parsed_content("output_dir").startswith(".")
    assert str(out) not in "".join(p.read_text() for p in (out / "configs").glob("*.json"))  # no absolute path
    # what the bundle's own configs say is untouched
    source = json.loads((REPO / "bundles" / "demo" / "evaluate.json").read_text())
    assert "model.pt" not in source["checkpoint"]


def test_monai_ckpt_export_makes_a_torchscript_that_matches_eager(exported, tmp_path):
    out, ip, _ = exported
    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(out / "models" / "model.pt"),
        meta_file=str(out / "configs" / "metadata.json"),
        config_file=str(out / "configs" / "train.json"),
    )
    scripted = torch.jit.load(str(ts))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted.eval()(x), ip.eval()(x))


@pytest.mark.filterwarnings("ignore:parsing config_file")  # monai.bundle.load's reminder to trust the config
def test_network_def_from_the_exported_config_takes_the_weights(exported):
    out, ip, _ = exported
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "train.json"))
    parser.read_meta(str(out / "configs" / "metadata.json"))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(out / "models" / "model.pt", weights_only=True), strict=True)
    _assert_same_state(net, ip.state_dict())
    # monai.bundle.load: the exported directory as a bundle named after it under bundle_dir
    loaded = monai_load(out.name, bundle_dir=str(out.parent), device="cpu", workflow_type="train")
    assert isinstance(loaded, torch.nn.Module)
    _assert_same_state(loaded, ip.state_dict())


def test_evaluate_config_loads_ip_and_vr_from_models(exported):
    """The exported evaluate.json's loaders, run as the evaluator runs them, give the exported weights."""
    out, ip, vr = exported
    raw = json.loads((out / "configs" / "evaluate.json").read_text())
    ids = _loader_ids(raw)
    assert len(ids) == 2, ids
    parser = ConfigParser()
    parser.read_config([str(out / "configs" / f) for f in ("train.json", "evaluate.json")])
    parser.update({"device": "$torch.device('cpu')", "bundle_root": str(out)})  # --bundle_root, as from elsewhere
    engine = Engine(lambda e, b: None)
    engine.state.max_epochs = 1
    for id_ in ids:
        parser.get_parsed_content(id_)(engine)
    _assert_same_state(parser.get_parsed_content("ip_network"), ip.state_dict())
    _assert_same_state(parser.get_parsed_content("vr_network"), vr.state_dict())


@pytest.mark.parametrize("name", [b for b in BUNDLES if b != "demo"])
def test_every_dataset_bundle_exports_and_reloads(name, tmp_path):
    ip, vr = _networks(name, seed=1)
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    out = export_bundle(name, checkpoint, tmp_path / "out", overrides=_smoke(name))
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(out / "models" / "model.pt", weights_only=True), strict=True)
    _assert_same_state(net, ip.state_dict())
    assert len(_loader_ids(json.loads((out / "configs" / "evaluate.json").read_text()))) == 2


def test_checkpoint_of_other_sizes_fails_naming_the_file_and_leaves_nothing(tmp_path):
    ip, vr = _networks("covid_ct")  # smoke sizes; the export below keeps the paper sizes (64 channels)
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    with pytest.raises(ValueError, match=r"models/model.pt does not fit .*SRResNet.*shape mismatches.*smoke.json"):
        export_bundle("covid_ct", checkpoint, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_plain_and_compiled_state_dicts_are_accepted(tmp_path):
    ip, _ = _networks("demo")
    prefixed = {f"_orig_mod.{k}": v for k, v in ip.state_dict().items()}
    torch.save(prefixed, tmp_path / "ip.pt")
    out = export_bundle("demo", tmp_path / "ip.pt", tmp_path / "out", overrides=_smoke("demo"))
    _assert_same_state(ip, torch.load(out / "models" / "model.pt", weights_only=True))
    assert not (out / "models" / "vr_model.pt").exists()


def test_overrides_go_to_every_config_that_defines_the_id(tmp_path):
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    overrides = {**_smoke("demo"), "strategy": "joint", "new_key": 3}
    out = export_bundle("demo", checkpoint, tmp_path / "out", overrides=overrides)
    train = json.loads((out / "configs" / "train.json").read_text())
    infer = json.loads((out / "configs" / "inference.json").read_text())
    assert train["strategy"] == infer["strategy"] == "joint"
    assert train["ip_channels"] == infer["ip_channels"] == 8
    assert train["new_key"] == 3 and "new_key" not in infer
    with pytest.raises(ValueError, match="'train#nowhere'"):
        export_bundle("demo", checkpoint, tmp_path / "out2", overrides={"train#nowhere": 1})
    with pytest.raises(FileExistsError, match="not empty"):
        export_bundle("demo", checkpoint, out, overrides=_smoke("demo"))
    export_bundle("demo", checkpoint, out, overrides=_smoke("demo"), overwrite=True)
    assert json.loads((out / "configs" / "train.json").read_text())["strategy"] == "gradprom"


def test_parse_overrides_reads_json_values_as_monai_cli_does():
    assert parse_overrides(["a=8", "b=null", "c=abc", "d=[64, 64]", "e=x=y"]) == {
        "a": 8, "b": None, "c": "abc", "d": [64, 64], "e": "x=y"}
    with pytest.raises(ValueError, match="'nokey'"):
        parse_overrides(["nokey"])


def test_command_line(tmp_path, capsys):
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    smoke = str(REPO / "bundles" / "demo" / "smoke.json")
    argv = ["export", "demo", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--overrides", smoke,
            "--set", "strategy=joint", "lam=0.5", "--torchscript"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    train = json.loads((tmp_path / "out" / "configs" / "train.json").read_text())
    assert (train["strategy"], train["lam"], train["ip_channels"]) == ("joint", 0.5, 8)
    scripted = torch.jit.load(str(tmp_path / "out" / "models" / "model.ts"))
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), ip.eval()(x))
    assert main(["export", "no_such_bundle", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "'no_such_bundle' not found" in err and "covid_ct" in err


@pytest.mark.slow
def test_exported_bundle_evaluates_with_monai_bundle_run_from_another_directory(tmp_path):
    """MONAI's default form (run id ``run``) on the exported configs, from an unrelated working directory."""
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    out = export_bundle("demo", checkpoint, tmp_path / "bundle", overrides=_smoke("demo"))
    configs = out / "configs"
    files = f"['{configs / 'train.json'}','{configs / 'evaluate.json'}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, "--meta_file",
           str(configs / "metadata.json"), "--bundle_root", str(out)]  # MONAI's way to run a bundle from elsewhere
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = json.loads((out / "outputs" / "gradprom" / "metrics.json").read_text())
    assert metrics["checkpoint"] == os.path.join(out, "models", "model.pt")
    assert isinstance(metrics["psnr"], float) and isinstance(metrics["accuracy"], float)
    assert sorted(p.name for p in (out / "models").iterdir()) == ["model.pt", "vr_model.pt"]  # nothing written
    assert "records no config" not in done.stderr  # the export's metadata.json carries it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "c.pt"]  # nothing in the working directory


# -- issue 18.1: --overwrite replaces only what an export wrote --------------------------------------------------


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_refuses_a_folder_that_is_not_an_export_and_deletes_nothing(tmp_path, capsys):
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    out = tmp_path / "thesis"
    (out / "photos").mkdir(parents=True)
    (out / "thesis.tex").write_text("\\documentclass{article}")
    (out / "photos" / "a.jpg").write_bytes(b"jpg")
    before = _tree(out)
    with pytest.raises(FileExistsError, match=r"not a bundle written by this exporter.*photos/a.jpg, thesis.tex"):
        export_bundle("demo", checkpoint, out, overrides=_smoke("demo"), overwrite=True)
    assert _tree(out) == before
    smoke = str(REPO / "bundles" / "demo" / "smoke.json")
    argv = ["export", "demo", "--checkpoint", str(checkpoint), "--out", str(out), "--overrides", smoke, "--overwrite"]
    assert main(argv) == 1
    assert "thesis.tex" in capsys.readouterr().err and _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "thesis"]  # no staging folder left


def test_out_holding_the_checkpoint_is_refused(tmp_path):
    run = tmp_path / "outputs_demo"
    (run / "frozen").mkdir(parents=True)
    (run / "plain").mkdir()
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(run / "frozen" / "model_final.pt", ip, vr)
    torch.save({"x": torch.zeros(1)}, run / "plain" / "model_final.pt")
    before = _tree(run)
    with pytest.raises(FileExistsError, match=r"contains the checkpoint being exported .*frozen/model_final.pt"):
        export_bundle("demo", checkpoint, run, overrides=_smoke("demo"), overwrite=True)
    assert _tree(run) == before


def test_overwrite_replaces_a_previous_export_by_its_manifest_only(tmp_path):
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    out = export_bundle("demo", checkpoint, tmp_path / "out", overrides=_smoke("demo"), torchscript=True)
    manifest = json.loads((out / ".monai_gradprom_export.json").read_text())
    assert sorted(manifest["files"]) == sorted(p for p in _tree(out) if p != ".monai_gradprom_export.json")
    assert "models/model.ts" in manifest["files"]

    ip2 = _networks("demo", seed=5)[0]
    checkpoint2 = _training_checkpoint(tmp_path / "c2.pt", ip2, vr)
    export_bundle("demo", checkpoint2, out, overrides=_smoke("demo"), overwrite=True)  # no model.ts this time
    _assert_same_state(ip2, torch.load(out / "models" / "model.pt", weights_only=True))
    assert not (out / "models" / "model.ts").exists()  # the old export's file went with it

    (out / "outputs" / "gradprom").mkdir(parents=True)  # a user ran the exported bundle
    (out / "outputs" / "gradprom" / "metrics.json").write_text("{}")
    (out / "configs" / "my_override.json").write_text("{}")
    before = _tree(out)
    with pytest.raises(FileExistsError, match=r"2 entries that the previous export did not write: "
                                              r"configs/my_override.json, outputs/gradprom/metrics.json"):
        export_bundle("demo", checkpoint, out, overrides=_smoke("demo"), overwrite=True)
    assert _tree(out) == before


# -- issue 18.9: self-contained and relocatable ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:parsing config_file")
def test_a_moved_export_loads_with_defaults_and_writes_nothing(tmp_path, monkeypatch):
    ip, vr = _networks("demo")
    checkpoint = _training_checkpoint(tmp_path / "c.pt", ip, vr)
    export_bundle("demo", checkpoint, tmp_path / "old" / "demo_export", overrides=_smoke("demo"))
    (tmp_path / "new").mkdir()
    moved = (tmp_path / "old" / "demo_export").rename(tmp_path / "new" / "renamed")
    (tmp_path / "old").rmdir()
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    loaded = monai_load("renamed", bundle_dir=str(tmp_path / "new"), device="cpu")
    _assert_same_state(loaded, ip.state_dict())
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # not at the old path, nor anywhere else
    assert not (tmp_path / "old").exists()


def _checkpoint_with_config(path: Path, name: str, **values) -> tuple[Path, torch.nn.Module]:
    ip, vr = _networks(name)
    _training_checkpoint(path, ip, vr)
    content = torch.load(path, weights_only=True)
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / name / f) for f in ("train.json", "smoke.json")])
    config = {**parser.get_parsed_content("run_config").values, **values}
    torch.save({**content, "config": config}, path)
    return path, ip


def test_exporter_takes_the_network_sizes_the_checkpoint_records(tmp_path, caplog):
    checkpoint, ip = _checkpoint_with_config(tmp_path / "c.pt", "covid_ct")  # smoke sizes, recorded
    out = export_bundle("covid_ct", checkpoint, tmp_path / "out")  # no overrides: the record decides
    train = json.loads((out / "configs" / "train.json").read_text())
    infer = json.loads((out / "configs" / "inference.json").read_text())
    smoke = _smoke("covid_ct")
    assert train["ip_channels"] == infer["ip_channels"] == smoke["ip_channels"]
    assert train["ip_blocks"] == infer["ip_blocks"] == smoke["ip_blocks"]
    recorded = torch.load(checkpoint, weights_only=True)["config"]
    assert json.loads((out / "configs" / "metadata.json").read_text())["run_config"] == recorded
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(out / "models" / "model.pt", weights_only=True), strict=True)


def test_loading_the_export_does_not_warn_that_model_pt_records_no_config(exported, caplog, monkeypatch):
    out = exported[0]
    monkeypatch.chdir(out)  # bundle_root "."
    caplog.set_level(logging.WARNING)
    infer = ConfigParser()
    infer.read_config(str(out / "configs" / "inference.json"))
    infer["device"] = "$torch.device('cpu')"
    infer.get_parsed_content("initialize")
    parser = ConfigParser()
    parser.read_config([str(out / "configs" / f) for f in ("train.json", "evaluate.json")])
    parser["device"] = "$torch.device('cpu')"
    assert parser.get_parsed_content("check_checkpoint") == Path("models/model.pt")
    assert "records no config" not in caplog.text
    run_config = json.loads((out / "configs" / "metadata.json").read_text())["run_config"]
    assert (run_config["ip_channels"], run_config["strategy"]) == (8, "gradprom")  # the exported settings


def test_large_files_yml_lists_the_weights_with_md5_as_the_model_zoo_does(exported):
    out = exported[0]
    text = (out / "large_files.yml").read_text()
    assert text.count("- path:") == 2
    for name in ("model.pt", "vr_model.pt"):
        md5 = hashlib.md5((out / "models" / name).read_bytes()).hexdigest()
        assert f'- path: "models/{name}"\n    url: ""\n    hash_val: "{md5}"\n    hash_type: "md5"' in text


def test_verify_metadata_works_offline_with_the_shipped_schema(exported, monkeypatch):
    import monai.apps.utils
    import monai.bundle.scripts

    out = exported[0]
    metadata = json.loads((out / "configs" / "metadata.json").read_text())
    schema = out / "configs" / metadata["schema"].rsplit("/", 1)[-1]
    assert schema.is_file()

    def offline(*args, **kwargs):
        raise AssertionError("verify_metadata tried to download the schema")

    checked = {}
    monkeypatch.setattr(monai.apps.utils, "urlretrieve", offline)
    monkeypatch.setattr(monai.apps.utils, "_download_with_progress", offline, raising=False)
    monkeypatch.setattr(monai.bundle.scripts, "validate", lambda instance, schema, **kw: checked.update(s=schema))
    monai.bundle.scripts.verify_metadata(meta_file=str(out / "configs" / "metadata.json"), filepath=str(schema))
    assert checked["s"] == json.loads(schema.read_text())
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'bundle = ["jsonschema' in pyproject  # the optional extra that verify_metadata needs
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(metadata, json.loads(schema.read_text()))
