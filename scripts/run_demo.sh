#!/usr/bin/env bash
# Install, then show the point of task-driven enhancement on the demo bundle (synthetic phantom, about 3 minutes
# on 2 CPU cores): the recognizer is pretrained once on clean images, IP is trained plainly (MSE only) and with
# the bundle's recognition-aware strategy (GradProm by default), both are evaluated on the same noisy test images,
# and a table compares recognition on the noisy input, on each output and on the clean image.
# Extra arguments go to the recognition-aware run, e.g. `bash scripts/run_demo.sh --strategy frozen`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
OUT=outputs/demo
VR="$OUT/vr_pretrained.pt"
TRAIN=bundles/demo/train.json
EVAL="['bundles/demo/train.json','bundles/demo/evaluate.json']"
python -m monai.bundle run --config_file "$TRAIN" --strategy plain --output_dir "$OUT/plain" --vr_checkpoint "$VR"
python -m monai.bundle run --config_file "$EVAL" --strategy plain --output_dir "$OUT/plain" --vr_checkpoint "$VR"
STRATEGY=$(python - "$@" <<'EOF'
import sys
args = sys.argv[1:]
print(next((a.split("=", 1)[1] if "=" in a else args[i + 1] for i, a in enumerate(args) if a.split("=")[0] == "--strategy"), "gradprom"))
EOF
)
python -m monai.bundle run --config_file "$TRAIN" --output_dir "$OUT/$STRATEGY" --vr_checkpoint "$VR" "$@"
python -m monai.bundle run --config_file "$EVAL" --output_dir "$OUT/$STRATEGY" --vr_checkpoint "$VR" "$@"
python -m monai_gradprom.analysis.summary "$OUT/plain/metrics.json" "$OUT/$STRATEGY/metrics.json"
