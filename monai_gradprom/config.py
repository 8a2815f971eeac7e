"""Config safety for the bundles: no flag, typo or second run may silently change or destroy a result.

MONAI's bundle runner passes every ``--key value`` of the command line into the config as it was parsed by
``fire``: ``--resume false`` arrives as the (truthy) string ``'false'``, and ``--strategyy joint`` silently adds
an id nobody reads. The helpers here are called from the bundles' ``initialize`` lists, before anything
expensive runs:

- :func:`as_bool` reads a boolean key the way a user means it (``true/false/True/False/1/0``) or names the key;
- :func:`check_overrides` refuses command-line keys the bundle's config files do not define, naming the
  closest known key;
- :func:`validate_config` reports every bad setting at once (unknown strategy, negative ``lam``,
  ``max_epochs`` < 1, an output folder that cannot be written, ...);
- :func:`lock_output_dir` keeps a second run out of a folder a live run is writing;
- :class:`RunConfig` records the settings that produced a checkpoint *in* the checkpoint, and
  :func:`check_checkpoint` / :func:`recorded` let evaluation and inference refuse or adopt them.
"""

from __future__ import annotations

import ast
import atexit
import difflib
import functools
import inspect
import json
import logging
import math
import os
import re
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "as_bool",
    "command_line_overrides",
    "check_overrides",
    "validate_config",
    "lock_output_dir",
    "release_output_dir",
    "LOCK_FILENAME",
    "RunConfig",
    "recorded_config",
    "recorded",
    "config_differences",
    "check_checkpoint",
]

logger = logging.getLogger(__name__)

LOCK_FILENAME = ".monai_gradprom.lock"
_TRUE, _FALSE = ("true", "1"), ("false", "0")


class ConfigError(ValueError):
    """A configuration (or command-line) value that the bundle cannot run with."""


def as_bool(value: Any, key: str) -> bool:
    """``value`` as a boolean: ``True``/``False``, ``1``/``0`` or the strings ``true/false/True/False/1/0``.

    ``fire`` turns ``--amp false`` into the string ``'false'``, which Python reads as true; anything other than
    the forms above is an error naming ``key`` instead of a silent guess.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"config key '{key}' must be a boolean (true/false/True/False/1/0), got {value!r}")


# -- unknown command-line keys ------------------------------------------------------------------------------------


def _is_flag(token: str) -> bool:
    """fire's rule: ``--name`` or ``-n...`` is a flag; ``-1`` (a negative number) is a value."""
    return token.startswith("--") or (len(token) > 1 and token[0] == "-" and token[1].isalpha())


def _runner_arguments() -> set[str]:
    """The keyword arguments ``monai.bundle run`` itself takes (they are not config ids)."""
    from monai.bundle import ConfigWorkflow
    from monai.bundle.scripts import create_workflow, run

    names: set[str] = set()
    for fn in (run, create_workflow, ConfigWorkflow.__init__):
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and name != "self":
                names.add(name)
    return names


def _literal(value: Any) -> Any:
    """A command-line value as fire reads it: a Python literal where it is one, else the string."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def command_line_overrides(argv: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(runner_args, overrides)`` of a ``python -m monai.bundle run ...`` command line (default:
    ``sys.argv``), parsed with fire's rules; None when ``argv`` is not such a command (the bundle was started
    from Python, where the caller's keyword arguments are not visible here)."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or Path(argv[0]).parts[-3:] != ("monai", "bundle", "__main__.py") or argv[1] != "run":
        return None
    tokens = argv[2 : argv.index("--", 2)] if "--" in argv[2:] else argv[2:]
    from monai.bundle.scripts import run

    runner = _runner_arguments()
    positional = list(inspect.signature(run).parameters)  # run_id, init_id, ... may be given by position
    runner_args: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    n_positional, index = 0, 0
    while index < len(tokens):
        token = tokens[index]
        if _is_flag(token):
            key, has_value, value = token.lstrip("-").partition("=")
            key = key.replace("-", "_")
            if not has_value:
                if index + 1 < len(tokens) and not _is_flag(tokens[index + 1]):
                    value, index = tokens[index + 1], index + 1
                elif key not in runner and key.startswith("no") and len(key) > 2:
                    key, value = key[2:], "False"  # fire reads a bare --noamp as amp=False
                else:
                    value = "True"
            (runner_args if key in runner else overrides)[key] = _literal(value)
        elif n_positional < len(positional):
            runner_args[positional[n_positional]] = _literal(token)
            n_positional += 1
        index += 1
    args_file = runner_args.get("args_file")
    if args_file:  # monai reads defaults (runner arguments and overrides) from this file
        from monai.bundle import ConfigParser

        for key, value in dict(ConfigParser.load_config_file(str(args_file))).items():
            target = runner_args if key in runner else overrides
            target.setdefault(key, value)
    return runner_args, overrides


def _has_id(config: Any, parts: Sequence[str]) -> bool:
    for part in parts:
        if isinstance(config, Mapping) and part in config:
            config = config[part]
        elif isinstance(config, list) and part.isdigit() and int(part) < len(config):
            config = config[int(part)]
        else:
            return False
    return True


def check_overrides(argv: Sequence[str] | None = None) -> None:
    """Refuse command-line keys that the run's config files do not define, naming the closest known key.

    ``--strategyy joint`` would otherwise be ignored, and the run would write the default strategy's results
    over a real run of it. A nested id (``--train#dataloader#pin_memory true``) may add a key to an existing
    section, so only its parent must exist. Keys of ``monai.bundle run`` itself, ``_meta_`` ids and (with
    ``--tracking``) MONAI's tracking settings are allowed. Only a ``python -m monai.bundle run`` command line is
    checked (see :func:`command_line_overrides`).
    """
    parsed = command_line_overrides(argv)
    if parsed is None:
        return
    runner_args, overrides = parsed
    files = runner_args.get("config_file")
    if not files or not overrides:
        return
    from monai.bundle import ConfigParser

    files = [str(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)]
    config = ConfigParser.load_config_files(files)
    known = set(config) | _runner_arguments()
    if runner_args.get("tracking"):
        from monai.bundle.utils import DEFAULT_EXP_MGMT_SETTINGS

        known |= set(DEFAULT_EXP_MGMT_SETTINGS["mlflow"]["configs"])
    problems = []
    for key in overrides:
        parts = key.split("#")
        if parts[0] == "_meta_" or (key in known if len(parts) == 1 else _has_id(config, parts[:-1])):
            continue
        if len(parts) == 1:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean '--{close[0]}'?" if close else ""
            problems.append(f"'--{key}' is not a key of this bundle{hint}")
        else:
            parent = "#".join(parts[:-1])
            problems.append(f"'--{key}': the config has no '{parent}' to add '{parts[-1]}' to")
    if problems:
        raise ConfigError(
            "unknown command-line key(s): " + "; ".join(problems) + f" (config files: {', '.join(files)}). "
            "Nothing was run."
        )


# -- validating values ---------------------------------------------------------------------------------------------


def _writable(folder: str | os.PathLike) -> str | None:
    """None when ``folder`` exists or can be created and a file can be written in it, else the reason."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = Path(folder) / f".write_test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def validate_config(
    *,
    output_dir: str | os.PathLike | None = None,
    strategy: str | None = None,
    lam: Any = None,
    gate: str | None = None,
    vr_supervision: str | None = None,
    max_epochs: Any = None,
    booleans: Mapping[str, Any] | None = None,
    positive: Mapping[str, Any] | None = None,
) -> None:
    """Check the settings a run depends on *before* anything expensive (VR pretraining) starts, and report
    every problem at once, each naming its key. Arguments left None are not checked.

    ``booleans``: ``{key: value}`` read with :func:`as_bool`; ``positive``: ``{key: value}`` that must be
    integers >= 1 (``max_epochs`` is one). ``output_dir`` must exist or be creatable, and writable.
    """
    problems: list[str] = []
    if strategy is not None:
        from monai_gradprom.strategies import STRATEGIES

        if strategy not in STRATEGIES:
            close = difflib.get_close_matches(str(strategy), sorted(STRATEGIES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown strategy {strategy!r}{hint}; choose one of {sorted(STRATEGIES)}")
    if lam is not None:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
            problems.append(f"lam must be a finite number >= 0, got {lam!r}")
    if gate is not None:
        from monai_gradprom.gradients import GATES

        if gate not in GATES:
            problems.append(f"gate must be one of {list(GATES)}, got {gate!r}")
    if vr_supervision is not None and vr_supervision not in ("supervised", "unsupervised"):
        problems.append(f"vr_supervision must be 'supervised' or 'unsupervised', got {vr_supervision!r}")
    counts = dict(positive or {})
    if max_epochs is not None:
        counts = {"max_epochs": max_epochs, **counts}
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{key} must be an integer >= 1, got {value!r}")
    for key, value in (booleans or {}).items():
        try:
            as_bool(value, key)
        except ConfigError as exc:
            problems.append(str(exc).removeprefix("config key "))
    if output_dir is not None:
        reason = _writable(output_dir)
        if reason is not None:
            problems.append(f"output_dir {str(output_dir)!r} cannot be written ({reason})")
    if problems:
        raise ConfigError("invalid configuration, nothing was run:\n  - " + "\n  - ".join(problems))


# -- the output folder lock ----------------------------------------------------------------------------------------

_held: dict[Path, Path] = {}  # output folder -> lock file, held by this process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _read_lock(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _stale(path: Path, pid: Any, host: Any, this_host: str, grace_s: float = 10.0) -> bool:
    """A lock whose process is gone: a pid on this host that no longer exists, or an unreadable lock file
    older than ``grace_s`` (a run killed between creating and writing it; a younger one is being written)."""
    if isinstance(pid, int):
        return host == this_host and not _alive(pid)
    try:
        return time.time() - path.stat().st_mtime > grace_s
    except OSError:
        return True


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def lock_output_dir(output_dir: str | os.PathLike) -> Path | None:
    """Take ``output_dir`` for this process: create it and a lock file naming this pid, removed at exit.

    A second run into the same folder refuses with the first one's pid (two runs would overwrite each other's
    checkpoints and mix their TensorBoard logs). A lock left by a process that no longer exists (killed) is
    taken over with a warning. Under DDP only rank 0 takes it (the ranks of one run share the folder). The lock
    is this process's own after a previous run in the same process, so sequential runs from Python work.
    Returns the lock file (None on ranks > 0).
    """
    folder = Path(output_dir)
    reason = _writable(folder)
    if reason is not None:
        raise ConfigError(f"output_dir {str(folder)!r} cannot be written ({reason})")
    if _rank() != 0:
        return None
    path = folder / LOCK_FILENAME
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            pid, host = holder.get("pid"), holder.get("host")
            if pid == os.getpid() and host == record["host"]:
                break  # an earlier run of this process
            if _stale(path, pid, host, record["host"]):
                logger.warning("output_dir %s: taking over the lock of process %s, which no longer runs", folder, pid)
                path.unlink(missing_ok=True)
                continue
            raise ConfigError(
                f"output_dir {str(folder)!r} is in use by another run (pid {pid} on {host}, started "
                f"{holder.get('started', '?')}: {holder.get('command', '?')}). Wait for it to finish or choose "
                f"another output_dir; if that run is gone, remove {path}."
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        break
    else:
        raise ConfigError(f"output_dir {str(folder)!r}: could not take its lock {path} (other runs keep taking it)")
    _held[folder.resolve()] = path
    return path


def release_output_dir(output_dir: str | os.PathLike | None = None) -> None:
    """Remove this process's lock on ``output_dir`` (all of its locks when None); another process's lock is
    never touched. Registered to run at exit."""
    folders = list(_held) if output_dir is None else [Path(output_dir).resolve()]
    for folder in folders:
        path = _held.pop(folder, None)
        if path is not None and _read_lock(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


atexit.register(release_output_dir)


# -- the config recorded in checkpoints ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as JSON-like Python (str/int/float/bool/None, lists, dicts), so that the checkpoint stays
    loadable with ``torch.load(weights_only=True)``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class RunConfig:
    """The resolved settings that produced a checkpoint; stored in every checkpoint under ``config``.

    It has ``state_dict``/``load_state_dict`` so that Ignite's Checkpoint saves it next to the networks (a
    plain dict of JSON-like values, so ``weights_only`` loading still works). The package version is added.
    """

    def __init__(self, **values: Any) -> None:
        from monai_gradprom import __version__

        self.values = {k: _plain(v) for k, v in values.items()}
        self.values.setdefault("version", __version__)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.values = dict(state)

    def __repr__(self) -> str:
        return f"RunConfig({self.values})"


def recorded_config(checkpoint: Any) -> dict[str, Any] | None:
    """The ``config`` recorded in a checkpoint (a path or a loaded dict); None when it has none (older runs)
    or the file does not exist. A file that cannot be read raises an error naming it."""
    if isinstance(checkpoint, Mapping):
        config = checkpoint.get("config")
        return dict(config) if isinstance(config, Mapping) else None
    path = Path(checkpoint)
    if not path.is_file():
        return None
    stat = path.stat()
    config = _recorded_in_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    return dict(config) if config is not None else None


@functools.lru_cache(maxsize=8)
def _recorded_in_file(path: str, mtime_ns: int, size: int) -> dict[str, Any] | None:
    """Read once per file version: a bundle asks for several recorded values of the same checkpoint."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc
    return recorded_config(loaded) if isinstance(loaded, Mapping) else None


def recorded(checkpoint: str | os.PathLike, key: str, default: Any) -> Any:
    """``key`` as recorded in ``checkpoint``'s config, else ``default``: for a config value that must match
    the checkpoint (a network size), so that by default the network is built as it was trained; a value given
    on the command line replaces this expression and wins."""
    config = recorded_config(checkpoint) or {}
    if key in config and config[key] != default:
        logger.info("%s = %r, as recorded in %s (the config's default is %r)", key, config[key], checkpoint, default)
    return config.get(key, default)


def config_differences(
    recorded_values: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ("version",)
) -> list[str]:
    """``"key: <checkpoint value> (checkpoint) vs <config value> (config)"`` for every key both hold with
    different values (``ignore``d keys aside)."""
    skip = set(ignore)
    return [
        f"{key}: {recorded_values[key]!r} (checkpoint) vs {current[key]!r} (config)"
        for key in current
        if key in recorded_values and key not in skip and _plain(current[key]) != recorded_values[key]
    ]


def _flag_value(value: Any) -> str:
    """``value`` as it would be typed after ``--key`` (fire reads Python literals; plain words stay strings)."""
    return value if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.:-]*", value) else repr(value)


def check_checkpoint(
    checkpoint: str | os.PathLike,
    config: RunConfig | Mapping[str, Any],
    what: str = "trained model checkpoint",
    ignore: Iterable[str] = ("version", "seed", "degradation"),
    required: bool = True,
) -> Path | None:
    """Require ``checkpoint`` and refuse it when the config it records differs from this run's ``config``
    (e.g. a ``transformer`` checkpoint evaluated as ``gradprom``: metrics without T, labelled wrongly), with
    every difference spelled out and the flags that would match it. ``ignore``: keys that may legitimately
    differ (evaluating on another degradation or data seed is a robustness test). A checkpoint without a
    recorded config (older runs) is accepted with a warning; a missing one is an error naming ``what``, or,
    with ``required=False``, left to the step that loads it (None is returned)."""
    from monai_gradprom.utils import require_file

    if not required and not Path(checkpoint).is_file():
        return None
    path = require_file(checkpoint, what)
    values = config.values if isinstance(config, RunConfig) else dict(config)
    saved = recorded_config(path)
    if saved is None:
        logger.warning("%s records no config (written before configs were recorded): not checked", path)
        return path
    differences = config_differences(saved, values, ignore)
    if differences:
        flags = " ".join(f"--{k} {_flag_value(saved[k])}" for k in values if k in saved and k not in set(ignore)
                         and _plain(values[k]) != saved[k])
        raise ConfigError(
            f"{path} was trained with other settings than this run's config:\n  - " + "\n  - ".join(differences)
            + f"\nRun with the checkpoint's settings ({flags}) or point --checkpoint at a matching run."
        )
    return path
