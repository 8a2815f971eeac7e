#!/usr/bin/env bash
# Install, then train and evaluate the demo bundle (synthetic phantom, about 2-3 minutes on 2 CPU cores).
# Extra arguments go to both runs, e.g. `bash scripts/run_demo.sh --strategy joint`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
python -m monai.bundle run training --config_file bundles/demo/train.json "$@"
python -m monai.bundle run evaluating --config_file "['bundles/demo/train.json','bundles/demo/evaluate.json']" "$@"
