"""Issue 14: no flag, typo or second run may silently change or destroy a result.

Booleans from the command line mean what they say; unknown keys, bad values and a busy output folder stop a
run before anything expensive; a finished run resumed with a larger ``max_epochs`` continues (or stops with a
message); every checkpoint records the config that produced it, and evaluation / inference refuse or adopt it.
Fast tests run the helpers and the bundles' config in-process; ``slow`` ones run ``python -m monai.bundle``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_gradprom.config import (
    LOCK_FILENAME,
    ConfigError,
    RunConfig,
    as_bool,
    check_checkpoint,
    check_overrides,
    lock_output_dir,
    recorded_config,
    release_output_dir,
    validate_config,
)
from monai_gradprom.engines import AtomicCheckpointSaver, GradPromTrainer, attach_checkpointing, resume_from_latest
from monai_gradprom.networks import SRResNet
from tests.bundles.helpers import REPO
from tests.conftest import TinyClassifier, TinyIP, make_batches

TRAIN, EVALUATE, INFERENCE, SMOKE = (f"bundles/demo/{n}.json" for n in ("train", "evaluate", "inference", "smoke"))
BUNDLE_MAIN = str(Path(__import__("monai.bundle").bundle.__file__).parent / "__main__.py")


def _argv(*args: str, files=(TRAIN, SMOKE)) -> list[str]:
    """A ``python -m monai.bundle run training ...`` command line as the bundle process sees it."""
    listing = "[" + ",".join(f"'{REPO / f}'" for f in files) + "]"
    return [BUNDLE_MAIN, "run", "training", "--config_file", listing, *args]


# -- 1. booleans ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("false", False), ("True", True),
     ("False", False), ("1", True), ("0", False)],
)
def test_as_bool_reads_every_documented_form(value, expected):
    assert as_bool(value, "resume") is expected


@pytest.mark.parametrize("value", ["flase", "yes", "", 2, -1, 0.5, None, [True]])
def test_as_bool_rejects_anything_else_naming_the_key(value):
    with pytest.raises(ConfigError, match="'amp' must be a boolean"):
        as_bool(value, "amp")


def _demo_parser(output_dir: Path, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO / TRAIN), str(REPO / SMOKE)])
    parser.update({"output_dir": str(output_dir), "device": "$torch.device('cpu')", **overrides})
    return parser


def _resume_item(parser: ConfigParser) -> str:
    index = next(i for i, item in enumerate(parser["run"]) if "resume_from_latest" in str(item))
    return f"run#{index}"


def test_string_false_from_the_command_line_means_false_in_the_bundle(tmp_path):
    # an unreadable "checkpoint": resuming would fail on it, so the run item shows whether resume was read as on
    (tmp_path / "model_final.pt").write_bytes(b"not a checkpoint")
    parser = _demo_parser(tmp_path, amp="false", compile="0", resume="false")
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.amp is False
    assert parser.get_parsed_content(_resume_item(parser)) is None
    assert trainer.state.iteration == 0

    parser = _demo_parser(tmp_path, resume="True")
    with pytest.raises(Exception) as error:
        parser.get_parsed_content(_resume_item(parser))
    assert "cannot read checkpoint" in str(error.value.__cause__)


def test_bundle_refuses_an_unreadable_boolean_naming_it_before_training(tmp_path):
    parser = _demo_parser(tmp_path / "out", amp="maybe")
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("check_config")
    assert "'amp' must be a boolean" in str(error.value.__cause__ or error.value)


# -- 2. unknown command-line keys ----------------------------------------------------------------------------------


def test_typo_in_a_key_is_refused_naming_the_closest_known_key():
    with pytest.raises(ConfigError, match=r"'--strategyy' is not a key of this bundle; did you mean '--strategy'\?"):
        check_overrides(_argv("--strategyy", "joint"))


def test_known_keys_nested_additions_and_runner_arguments_pass():
    check_overrides(_argv("--strategy", "joint", "--lam=0.1", "--max_epochs", "3", "--resume", "false",
                          "--train#dataloader#pin_memory", "true", "--meta_file", "bundles/demo/metadata.json",
                          "--logging_file", "False", "--amp", "--nocompile"))  # fire: --nocompile = compile False
    # the evaluation's own keys are known when evaluate.json is among the config files
    check_overrides(_argv("--checkpoint", "x.pt", files=(TRAIN, EVALUATE, SMOKE)))


@pytest.mark.parametrize(
    "files, typo, meant",
    [((TRAIN, EVALUATE, SMOKE), "--checkpont", "--checkpoint"), ((INFERENCE,), "--ip_chanels", "--ip_channels")],
)
def test_typos_are_refused_in_evaluation_and_inference_runs_too(files, typo, meant):
    with pytest.raises(ConfigError, match=f"'{typo}' is not a key of this bundle; did you mean '{meant}'"):
        check_overrides(_argv(typo, "8", files=files))


def test_nested_key_into_a_missing_section_is_refused():
    with pytest.raises(ConfigError, match="no 'train#dataloaderr' to add 'pin_memory' to"):
        check_overrides(_argv("--train#dataloaderr#pin_memory", "true"))


def test_key_of_another_config_file_is_unknown_to_this_run():
    with pytest.raises(ConfigError, match="'--checkpoint' is not a key"):
        check_overrides(_argv("--checkpoint", "x.pt"))  # train.json alone has no checkpoint


def test_typo_in_an_args_file_is_refused(tmp_path):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"max_epoch": 3}))
    with pytest.raises(ConfigError, match="did you mean '--max_epochs'"):
        check_overrides(_argv("--args_file", str(args)))


def test_python_callers_are_not_checked_against_sys_argv():
    check_overrides(["pytest", "--strategyy", "joint"])  # not a monai.bundle command line: nothing to check


@pytest.mark.slow
def test_cli_typo_stops_the_run_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    files = f"['{TRAIN}','{SMOKE}']"
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", files, "--output_dir", str(out),
         "--strategyy", "joint"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2"), capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "did you mean '--strategy'?" in result.stderr
    assert not out.exists()


# -- 4. resuming a finished run ------------------------------------------------------------------------------------


def _trainer(max_epochs: int) -> GradPromTrainer:
    torch.manual_seed(0)
    ip, vr = TinyIP(), TinyClassifier()
    return GradPromTrainer("cpu", max_epochs, make_batches(2), ip, torch.optim.SGD(ip.parameters(), 0.1), vr,
                           torch.optim.SGD(vr.parameters(), 0.1), strategy="gradprom", lam=0.5)


def _train(trainer: GradPromTrainer, folder: Path, config: RunConfig | None = None) -> None:
    save = dict(trainer.checkpoint_dict(), **({"config": config} if config is not None else {}))
    saver = AtomicCheckpointSaver(save_dir=str(folder), save_dict=save, save_interval=1000, epoch_level=False,
                                  n_saved=1, save_final=True, final_filename="model_final.pt")
    attach_checkpointing(saver, trainer)
    trainer.run()


def test_finished_run_resumed_with_larger_max_epochs_continues_to_it(tmp_path):
    reference = _trainer(3)
    reference.run()
    _train(_trainer(2), tmp_path)
    assert torch.load(tmp_path / "model_final.pt", weights_only=False)["trainer"]["iteration"] == 4

    resumed = _trainer(3)
    seen = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.iteration))
    assert resume_from_latest(resumed, tmp_path) == tmp_path / "model_final.pt"
    resumed.run()
    assert seen == [5, 6]  # only the third epoch was trained
    assert resumed.state.epoch == 3
    for a, b in zip(reference.ip_network.parameters(), resumed.ip_network.parameters()):
        assert torch.equal(a, b)


def test_finished_run_resumed_with_the_same_max_epochs_stops_with_a_message(tmp_path):
    _train(_trainer(2), tmp_path)
    before = (tmp_path / "model_final.pt").read_bytes()
    fresh = _trainer(2)
    weights = [p.clone() for p in fresh.ip_network.parameters()]
    with pytest.raises(ValueError, match=r"already finished 2 epoch\(s\) and this run's max_epochs is 2"):
        resume_from_latest(fresh, tmp_path)
    assert (tmp_path / "model_final.pt").read_bytes() == before
    assert fresh.state.iteration == 0 and all(torch.equal(a, b) for a, b in zip(weights, fresh.ip_network.parameters()))


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    _train(_trainer(1), tmp_path, RunConfig(strategy="gradprom", lam=0.5))
    with pytest.raises(ValueError, match=r"lam: 0\.5 \(checkpoint\) vs 0\.1 \(config\)"):
        resume_from_latest(_trainer(2), tmp_path, config=RunConfig(strategy="gradprom", lam=0.1))
    assert resume_from_latest(_trainer(2), tmp_path, config=RunConfig(strategy="gradprom", lam=0.5)) is not None


# -- 5. output folder lock and the recorded config -----------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_second_run_into_a_locked_folder_refuses_naming_the_first_pid(tmp_path):
    lock = lock_output_dir(tmp_path)
    try:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        other = _python(f"from monai_gradprom.config import lock_output_dir; lock_output_dir({str(tmp_path)!r})")
        assert other.returncode != 0
        assert f"is in use by another run (pid {os.getpid()}" in other.stderr
        assert json.loads(lock.read_text())["pid"] == os.getpid()  # the refused run left the lock alone
    finally:
        release_output_dir(tmp_path)
    assert not lock.exists()


def test_lock_is_released_at_exit_and_a_stale_lock_is_taken_over(tmp_path, caplog):
    code = f"from monai_gradprom.config import lock_output_dir; print(lock_output_dir({str(tmp_path)!r}))"
    finished = _python(code)
    assert finished.returncode == 0 and not (tmp_path / LOCK_FILENAME).exists()

    # a lock left by a killed run: its pid (of the finished process above) no longer exists
    dead = {"pid": int(_python("import os; print(os.getpid())").stdout), "host": os.uname().nodename}
    (tmp_path / LOCK_FILENAME).write_text(json.dumps(dead))
    with caplog.at_level(logging.WARNING, logger="monai_gradprom.config"):
        lock = lock_output_dir(tmp_path)
    try:
        assert f"taking over the lock of process {dead['pid']}" in caplog.text
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    finally:
        release_output_dir(tmp_path)


def test_an_unreadable_lock_is_stale_only_once_it_is_old(tmp_path):
    lock = tmp_path / LOCK_FILENAME
    lock.write_text("")  # a run killed between creating the lock and writing its pid, or one writing it now
    with pytest.raises(ConfigError, match="is in use by another run"):
        lock_output_dir(tmp_path)
    os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    try:
        assert json.loads(lock_output_dir(tmp_path).read_text())["pid"] == os.getpid()
    finally:
        release_output_dir(tmp_path)


def test_only_rank_zero_takes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert lock_output_dir(tmp_path) is None and not (tmp_path / LOCK_FILENAME).exists()


def test_every_checkpoint_records_the_config_and_loads_weights_only(tmp_path):
    config = RunConfig(strategy="transformer", lam=0.5, gate="soft", degradation="gaussian:0.2", ip_channels=8,
                       ip_blocks=1, upscale=1, vr_arch="resnet18", seed=3, strategy_options={"every": 2})
    trainer = _trainer(1)
    saver = AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict=dict(trainer.checkpoint_dict(), config=config),
                                  save_interval=1, epoch_level=False, n_saved=1, save_final=True,
                                  final_filename="model_final.pt")
    attach_checkpointing(saver, trainer)
    trainer.run()
    for name in ("checkpoint_iteration=2.pt", "model_final.pt"):
        saved = torch.load(tmp_path / name, map_location="cpu", weights_only=True)["config"]
        assert saved == {**config.values, "version": __import__("monai_gradprom").__version__}
        assert saved["strategy"] == "transformer" and saved["ip_channels"] == 8 and saved["seed"] == 3


@pytest.mark.parametrize("bundle", ["demo", "camus", "covid_ct", "isic2018", "lizard"])
def test_every_bundle_records_its_config_and_checks_before_running(bundle, tmp_path):
    for extra in ("smoke.json", "multi_gpu_train.json"):
        parser = ConfigParser()
        parser.read_config([str(REPO / "bundles" / bundle / n) for n in ("train.json", extra)])
        parser.update({"output_dir": str(tmp_path), "dataset_dir": str(tmp_path), "rank": 0})
        values = parser.get_parsed_content("run_config").values
        expected = {"strategy", "lam", "gate", "degradation", "ip_channels", "ip_blocks", "upscale", "vr_arch", "seed"}
        assert expected | {"version"} <= set(values)
        assert values["ip_blocks"] == parser["ip_blocks"] and values["strategy"] == "gradprom"
        assert "config=@run_config" in parser["train"]["checkpoint_saver"]["save_dict"]
        initialize = [str(item) for item in parser["initialize"]]
        assert any("check_overrides()" in item for item in initialize)
        assert initialize.index("$@check_config") < len(initialize) - 1
        assert "lock_output_dir(@output_dir)" in initialize[-1]
        resume = next(str(item) for item in parser["run"] if "resume_from_latest" in str(item))
        assert "as_bool(@resume, 'resume')" in resume and "config=@run_config" in resume
        parser.get_parsed_content("check_config")  # the defaults are valid
    inference = ConfigParser()
    inference.read_config(str(REPO / "bundles" / bundle / "inference.json"))
    inference.update({"checkpoint": str(tmp_path / "none.pt")})
    inference.get_parsed_content("initialize")  # no checkpoint yet: nothing to compare, the loader will say so
    assert inference.get_parsed_content("ip_blocks") == ConfigParser.load_config_file(
        str(REPO / "bundles" / bundle / "train.json"))["ip_blocks"]


# -- 6. evaluation and inference read the recorded config ----------------------------------------------------------


def _fake_checkpoint(path: Path, **config) -> Path:
    net = SRResNet(spatial_dims=2, in_channels=1, channels=config.get("ip_channels", 8),
                   num_blocks=config.get("ip_blocks", 1), upscale=1)
    torch.save({"ip_network": net.state_dict(), "config": config}, path)
    return path


def test_evaluation_of_another_strategy_is_refused_with_the_difference(tmp_path):
    path = _fake_checkpoint(tmp_path / "model_final.pt", strategy="transformer", lam=0.01, ip_channels=8)
    with pytest.raises(ConfigError) as error:
        check_checkpoint(path, RunConfig(strategy="gradprom", lam=0.01, ip_channels=8))
    assert "strategy: 'transformer' (checkpoint) vs 'gradprom' (config)" in str(error.value)
    assert "--strategy transformer" in str(error.value)
    assert "lam" not in str(error.value)


def test_evaluation_may_change_degradation_and_accepts_unrecorded_checkpoints(tmp_path):
    path = _fake_checkpoint(tmp_path / "a.pt", strategy="gradprom", degradation="gaussian:0.2")
    assert check_checkpoint(path, RunConfig(strategy="gradprom", degradation="gaussian:0.3")) == path
    torch.save({"ip_network": {}}, tmp_path / "old.pt")
    assert check_checkpoint(tmp_path / "old.pt", RunConfig(strategy="joint")) == tmp_path / "old.pt"
    with pytest.raises(FileNotFoundError, match="trained model checkpoint not found"):
        check_checkpoint(tmp_path / "missing.pt", RunConfig())
    assert check_checkpoint(tmp_path / "missing.pt", RunConfig(), required=False) is None


def test_evaluate_bundle_refuses_a_checkpoint_of_another_strategy(tmp_path):
    _fake_checkpoint(tmp_path / "model_final.pt", **{**_demo_run_config(tmp_path), "strategy": "transformer"})
    parser = ConfigParser()
    parser.read_config([str(REPO / f) for f in (TRAIN, EVALUATE, SMOKE)])
    parser.update({"output_dir": str(tmp_path), "device": "$torch.device('cpu')"})
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("check_checkpoint")
    assert "strategy: 'transformer' (checkpoint) vs 'gradprom' (config)" in str(error.value.__cause__)


def _demo_run_config(tmp_path: Path) -> dict:
    return _demo_parser(tmp_path).get_parsed_content("run_config").values


def _inference_parser(checkpoint: Path, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(REPO / INFERENCE))
    parser.update({"checkpoint": str(checkpoint), "device": "$torch.device('cpu')", **overrides})
    return parser


def test_inference_builds_the_network_the_checkpoint_records(tmp_path):
    from monai_gradprom.inference import load_enhancer_weights

    path = _fake_checkpoint(tmp_path / "model_final.pt", ip_channels=8, ip_blocks=1, upscale=1)
    parser = _inference_parser(path)
    parser.get_parsed_content("initialize")
    assert (parser.get_parsed_content("ip_channels"), parser.get_parsed_content("ip_blocks")) == (8, 1)
    load_enhancer_weights(parser.get_parsed_content("network"), path)  # strict: the architectures match

    with pytest.raises(Exception) as error:  # an explicit, different size is refused with the difference
        _inference_parser(path, ip_blocks=4).get_parsed_content("initialize")
    assert "ip_blocks: 1 (checkpoint) vs 4 (config)" in str(error.value.__cause__)
    assert recorded_config(tmp_path / "missing.pt") is None  # no checkpoint: the config's defaults are used
    assert _inference_parser(tmp_path / "missing.pt").get_parsed_content("ip_channels") == 16  # the demo default


# -- 7. validation before the expensive part -----------------------------------------------------------------------


def test_validate_config_reports_every_problem_at_once(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as error:
        validate_config(output_dir=blocker / "out", strategy="gradpromm", lam=-1.0, gate="hardd",
                        vr_supervision="self", max_epochs=0, booleans={"resume": "ture"})
    text = str(error.value)
    for expected in ("unknown strategy 'gradpromm' (did you mean 'gradprom'?)", "lam must be a finite number >= 0",
                     "gate must be one of", "vr_supervision must be", "max_epochs must be an integer >= 1, got 0",
                     "'resume' must be a boolean", f"output_dir '{blocker / 'out'}' cannot be written"):
        assert expected in text
    validate_config(output_dir=tmp_path / "fine", strategy="joint", lam=0.0, gate="soft",
                    vr_supervision="unsupervised", max_epochs=1, booleans={"resume": "0"})


def test_bundle_validates_before_vr_pretraining(tmp_path):
    out = tmp_path / "out"
    workflow = ConfigWorkflow(config_file=[str(REPO / TRAIN), str(REPO / SMOKE)], logging_file=False,
                              workflow_type=None, output_dir=str(out), strategy="nonsense", lam=-0.5, max_epochs=0)
    with pytest.raises(Exception) as error:
        workflow.initialize()
    message = str(error.value.__cause__)
    assert "unknown strategy 'nonsense'" in message and "lam must be" in message and "max_epochs" in message
    assert not (out / "vr_pretrained.pt").exists() and not (out / LOCK_FILENAME).exists()


# -- end to end through python -m monai.bundle (smoke sizes) -------------------------------------------------------


def _bundle(run_id: str, files: list[str], *args: str) -> subprocess.CompletedProcess:
    listing = "[" + ",".join(f"'{f}'" for f in files) + "]"
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", listing, *args],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2"),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A finished smoke training (2 epochs of 4 iterations, ip_channels 8, ip_blocks 1)."""
    out = tmp_path_factory.mktemp("smoke_run")
    result = _bundle("training", [TRAIN, SMOKE], "--output_dir", str(out), "--amp", "false", "--resume", "false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (out / LOCK_FILENAME).exists()  # released at exit
    return out


@pytest.mark.slow
def test_cli_evaluation_of_a_checkpoint_with_another_strategy_is_refused(smoke_run):
    result = _bundle("evaluating", [TRAIN, EVALUATE, SMOKE], "--output_dir", str(smoke_run),
                     "--strategy", "transformer")
    assert result.returncode != 0
    assert "strategy: 'gradprom' (checkpoint) vs 'transformer' (config)" in result.stderr
    assert not (smoke_run / "metrics.json").exists()


@pytest.mark.slow
def test_cli_inference_of_a_smoke_checkpoint_needs_no_size_flags(smoke_run, tmp_path):
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray((torch.rand(40, 48) * 255).to(torch.uint8).numpy(), mode="L").save(inputs / "a.png")
    result = _bundle("inference", [INFERENCE], "--checkpoint", str(smoke_run / "model_final.pt"),
                     "--input_dir", str(inputs), "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / "out" / "a.png").size == (48, 40)


@pytest.mark.slow
def test_cli_resume_of_a_finished_run_continues_to_the_new_max_epochs(smoke_run, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(smoke_run, folder)
    final = folder / "model_final.pt"
    before = final.read_bytes()
    refused = _bundle("training", [TRAIN, SMOKE], "--output_dir", str(folder), "--resume", "true")
    assert refused.returncode != 0 and "already finished 2 epoch(s)" in refused.stderr
    assert final.read_bytes() == before

    result = _bundle("training", [TRAIN, SMOKE], "--output_dir", str(folder), "--resume", "true",
                     "--max_epochs", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from iteration 8, epoch 2 until 3 epochs" in result.stdout + result.stderr
    assert torch.load(final, map_location="cpu", weights_only=True)["trainer"]["iteration"] == 12
