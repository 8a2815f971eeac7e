"""The cause of a failed bundle run as the last thing on the console, not MONAI's wrapper around it.

MONAI's config machinery re-raises every error of a ``$expression`` or ``_target_`` as
``RuntimeError: Failed to evaluate ConfigExpression ...`` / ``Failed to instantiate component ...``, so the
project's own message ("checkpoint not found: ...", "unknown key --strategyy, did you mean --strategy?") ends up
10-20 lines above the end of a 50-70-line traceback. Under ``python -m monai.bundle`` a ``sys.excepthook`` unwraps
those wrappers:

- an error raised by this package's code (a message written for the user) is printed alone, as
  ``Type: message`` on the last lines, after one line saying how to get the traceback;
- any other error keeps the normal traceback, and the unwrapped cause is repeated as its last line.

``MONAI_GRADPROM_TRACEBACK=1`` restores Python's full traceback (with MONAI's wrappers).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import TracebackType

__all__ = ["TRACEBACK_ENV", "install_bundle_excepthook", "unwrap_config_error", "report_error"]

TRACEBACK_ENV = "MONAI_GRADPROM_TRACEBACK"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_WRAPPER_PREFIXES = ("Failed to evaluate ", "Failed to instantiate component ")


def _is_config_wrapper(error: BaseException) -> bool:
    return (
        type(error) is RuntimeError
        and error.__cause__ is not None
        and str(error).startswith(_WRAPPER_PREFIXES)
    )


def unwrap_config_error(error: BaseException) -> BaseException:
    """The error inside MONAI's ``Failed to evaluate`` / ``Failed to instantiate`` wrappers (``error`` itself
    when it is not one)."""
    seen = set()
    while _is_config_wrapper(error) and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__  # type: ignore[assignment]
    return error


def _raised_here(error: BaseException) -> bool:
    """Whether the innermost frame that raised ``error`` is this package's code (a message meant for users)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def _summary(error: BaseException) -> str:
    message = str(error)
    if isinstance(error, KeyError) and len(error.args) == 1:
        message = repr(error.args[0])  # as Python shows a KeyError
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def report_error(
    exc_type: type[BaseException], error: BaseException, tb: TracebackType | None, stream=None
) -> bool:
    """Print a bundle run's uncaught error as described in the module doc; False (nothing printed) when it is
    not wrapped by MONAI's config machinery or the full traceback is asked for."""
    stream = stream or sys.stderr
    if os.environ.get(TRACEBACK_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    cause = unwrap_config_error(error)
    if cause is error:
        return False
    if _raised_here(cause):
        print(f"monai_gradprom: the run stopped ({TRACEBACK_ENV}=1 shows the traceback):", file=stream)
        print(_summary(cause), file=stream)
    else:
        traceback.print_exception(exc_type, error, tb, file=stream)
        print(f"caused by: {_summary(cause)}", file=stream)
    stream.flush()
    return True


def install_bundle_excepthook() -> None:
    """Install :func:`report_error` in front of the current ``sys.excepthook`` (once)."""
    previous = sys.excepthook
    if getattr(previous, "_monai_gradprom", False):
        return

    def hook(exc_type, error, tb):
        if not report_error(exc_type, error, tb):
            previous(exc_type, error, tb)

    hook._monai_gradprom = True  # type: ignore[attr-defined]
    sys.excepthook = hook
