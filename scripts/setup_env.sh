#!/usr/bin/env bash
# Create (or reuse) .venv and install monai_gradprom with its dependencies.
# torch is installed first at the pinned CPU build; everything else is installed with torch pinned as a
# constraint so that no package can pull a multi-GB CUDA build. On a CUDA machine the same pin picks the
# CUDA wheel of torch 2.13.0 from the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
# Reinstall only when the dependency files changed since the last successful install (a stamp in the venv), so
# that running the demo or the tests a second time does not spend half a minute in pip.
STAMP="$VENV/.monai_gradprom_install"
WANT=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! python -c "import monai_gradprom" 2>/dev/null; then
  python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  python -m pip install -q -c constraints.txt -e ".[test]" 2>&1 | grep -v "is ignored" || true
  python -c "import torch, monai, ignite, monai_gradprom" && echo "$WANT" > "$STAMP"
fi
python -c "import torch, monai, ignite, monai_gradprom; print('environment ready: torch', torch.__version__, '| monai', monai.__version__, '| ignite', ignite.__version__)"
