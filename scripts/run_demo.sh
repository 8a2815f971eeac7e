#!/usr/bin/env bash
# Install, then show the point of task-driven enhancement on the demo bundle (synthetic phantom, about 2.5 minutes
# on 2 CPU cores once installed): the recognizer is pretrained once on clean images, IP is trained plainly (MSE
# only) and recognition-aware (RA processing through that fixed recognizer, `frozen`), both are evaluated on the
# same noisy test images by the same recognizer, and a table compares recognition on the noisy input, on each
# output and on the clean image. Extra arguments go to the second run, e.g.
# `bash scripts/run_demo.sh --strategy gradprom` (which co-trains its own recognizer and is judged by it).
# Running it again replaces its own earlier results in outputs/demo/<strategy>/ (--overwrite true: the previous
# model and metrics files only) and reuses the pretrained recognizer when its recorded settings still match.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
OUT=outputs/demo
VR="$OUT/vr_pretrained.pt"
TRAIN=bundles/demo/train.json
EVAL="['bundles/demo/train.json','bundles/demo/evaluate.json']"
python -m monai.bundle run --config_file "$TRAIN" --strategy plain --output_dir "$OUT/plain" --vr_checkpoint "$VR" \
    --overwrite true
python -m monai.bundle run --config_file "$EVAL" --strategy plain --output_dir "$OUT/plain" --vr_checkpoint "$VR"

# the second run: RA processing unless the arguments name another --strategy
STRATEGY=""
previous=""
for arg in "$@"; do
  case "$arg" in
    --strategy=*) STRATEGY="${arg#--strategy=}" ;;
    *) [ "$previous" = "--strategy" ] && STRATEGY="$arg" ;;
  esac
  previous="$arg"
done
ARGS=("$@")
if [ -z "$STRATEGY" ]; then
  STRATEGY=frozen
  ARGS=(--strategy frozen "$@")
fi
python -m monai.bundle run --config_file "$TRAIN" --output_dir "$OUT/$STRATEGY" --vr_checkpoint "$VR" --overwrite true \
    "${ARGS[@]}"
python -m monai.bundle run --config_file "$EVAL" --output_dir "$OUT/$STRATEGY" --vr_checkpoint "$VR" "${ARGS[@]}"
python -m monai_gradprom.analysis.summary "$OUT/plain/metrics.json" "$OUT/$STRATEGY/metrics.json"
