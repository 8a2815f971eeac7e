#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (about 10 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
python -m pytest -q -p no:cacheprovider "$@"
