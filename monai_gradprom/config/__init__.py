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
- :func:`prepare_fresh_run` refuses a new run into a finished run's folder unless ``overwrite`` is set, and
  then removes that run's model and metrics files (nothing else);
- :func:`lock_output_dir` keeps a second run out of a folder a live run is writing;
- :class:`RunConfig` records the settings that produced a checkpoint *in* the checkpoint, and
  :func:`check_checkpoint` / :func:`recorded` let evaluation and inference refuse or adopt them.

One module per job: :mod:`.checks` (values and overrides), :mod:`.lock` (the output folder's lock),
:mod:`.run_folder` (a new run into a finished one's folder), :mod:`.record`
(the configuration a checkpoint was made with), :mod:`.errors` (a failed run's cause as the console's last line,
installed when a ``python -m monai.bundle run`` command imports this package, as every bundle does).
"""

from monai_gradprom.config.checks import (
    ConfigError,
    as_bool,
    check_overrides,
    command_line_overrides,
    key_metric_names,
    validate_config,
)
from monai_gradprom.config.errors import TRACEBACK_ENV, install_bundle_excepthook, unwrap_config_error
from monai_gradprom.config.lock import LOCK_FILENAME, lock_output_dir, release_output_dir
from monai_gradprom.config.run_folder import FINAL_CHECKPOINT, RUN_RESULT_FILES, prepare_fresh_run, run_result_files
from monai_gradprom.config.record import RunConfig, check_checkpoint, config_differences, recorded, recorded_config

__all__ = [
    "ConfigError",
    "as_bool",
    "command_line_overrides",
    "check_overrides",
    "validate_config",
    "key_metric_names",
    "prepare_fresh_run",
    "run_result_files",
    "RUN_RESULT_FILES",
    "FINAL_CHECKPOINT",
    "lock_output_dir",
    "release_output_dir",
    "LOCK_FILENAME",
    "RunConfig",
    "recorded_config",
    "recorded",
    "config_differences",
    "check_checkpoint",
    "TRACEBACK_ENV",
    "install_bundle_excepthook",
    "unwrap_config_error",
]

if command_line_overrides() is not None:  # a bundle run from the command line: its errors end with the cause
    install_bundle_excepthook()
