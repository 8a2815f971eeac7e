"""Command-line values and settings checked before anything expensive runs: booleans as meant, unknown override
keys refused with the closest known key, every bad setting reported at once."""

from __future__ import annotations

import ast
import difflib
import inspect
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("monai_gradprom.config")

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


def _writable(folder: str | os.PathLike, create: bool = True) -> str | None:
    """None when ``folder`` exists or can be created and a file can be written in it, else the reason.

    ``create=False`` checks without creating anything: the folder, or its nearest existing parent, must be a
    writable directory (so that loading a bundle, e.g. with ``monai.bundle.load``, leaves no empty folders).
    """
    if not create:
        existing = Path(os.path.abspath(folder))
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"NotADirectoryError: {existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"PermissionError: {existing} is not writable"
        return None
    try:
        os.makedirs(folder, exist_ok=True)
        probe = Path(folder) / f".write_test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def key_metric_names(vr_target_key: str | Sequence[str] = "label") -> list[str]:
    """The metric names :class:`~monai_gradprom.engines.EnhancementEvaluator` computes by default for the
    recognition task(s) ``vr_target_key`` (``"label"``: accuracy, ``"seg"``: dice / miou), in its order; a
    ValueError names an unknown task key."""
    from monai_gradprom.engines.evaluator import enhancement_metrics

    tasks = [vr_target_key] if isinstance(vr_target_key, str) else list(vr_target_key)
    return list(enhancement_metrics(2, {str(task): 2 for task in tasks}))


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
    key_metric: str | None = None,
    vr_target_key: str | Sequence[str] = "label",
) -> None:
    """Check the settings a run depends on *before* anything expensive (VR pretraining) starts, and report
    every problem at once, each naming its key. Arguments left None are not checked.

    ``booleans``: ``{key: value}`` read with :func:`as_bool`; ``positive``: ``{key: value}`` that must be
    integers >= 1 (``max_epochs`` is one). ``output_dir`` must exist or be creatable, and writable; nothing is
    created here.
    ``key_metric`` must be one of the evaluator's metrics for the recognition task(s) ``vr_target_key``
    (:func:`key_metric_names`), so that a typo stops the run before VR pretraining, not after it.
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
    if key_metric is not None:
        try:
            valid = key_metric_names(vr_target_key)
        except ValueError as exc:
            problems.append(f"vr_target_key {vr_target_key!r}: {exc}")
        else:
            if key_metric not in valid:
                close = difflib.get_close_matches(str(key_metric), valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"key_metric {key_metric!r} is not a metric of the evaluator{hint}; "
                                f"choose one of {valid}")
    if output_dir is not None:
        reason = _writable(output_dir, create=False)  # the lock (lock_output_dir) creates it when a run starts
        if reason is not None:
            problems.append(f"output_dir {str(output_dir)!r} cannot be written ({reason})")
    if problems:
        raise ConfigError("invalid configuration, nothing was run:\n  - " + "\n  - ".join(problems))
