#!/usr/bin/env bash
# Regenerate the example figures of docs/analysis.md on the demo bundle (about 15 minutes on 2 CPU cores).
#
# Trains the demo bundle (3 epochs instead of 6) with plain, frozen (RA processing through a fixed VR) and
# GradProm for seeds 0 and 1, evaluates each run, then runs every analysis tool through
# `python -m monai_gradprom.analysis` exactly as a user would. Everything lands in outputs/analysis_examples/;
# the figures and their numbers are copied to docs/figures/analysis/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh
. .venv/bin/activate
OUT=${OUT:-outputs/analysis_examples}
DOCS=docs/figures/analysis
CONFIG=bundles/demo/train.json
EPOCHS=${EPOCHS:-3}
mkdir -p "$OUT" "$DOCS"

for seed in 0 1; do
  for strategy in plain frozen gradprom; do
    run="$OUT/${strategy}_seed${seed}"
    if [ ! -f "$run/metrics.json" ]; then
      python -m monai.bundle run training --config_file "$CONFIG" --strategy "$strategy" --seed "$seed" \
        --max_epochs "$EPOCHS" --output_dir "$run" > "$run.log" 2>&1
      python -m monai.bundle run evaluating --config_file "['$CONFIG','bundles/demo/evaluate.json']" \
        --strategy "$strategy" --seed "$seed" --max_epochs "$EPOCHS" --output_dir "$run" >> "$run.log" 2>&1
    fi
    echo "trained and evaluated $run"
  done
done

A="python -m monai_gradprom.analysis --verbose"
S0="$OUT/plain_seed0/model_final.pt"; F0="$OUT/frozen_seed0/model_final.pt"; G0="$OUT/gradprom_seed0/model_final.pt"

# 1. transferability: clean recognizers of three architectures, then every IP's outputs on each of them
$A train-recognizers --config "$CONFIG" --archs resnet10 resnet18 resnet34 --output-dir "$OUT/recognizers" --no-progress
$A transfer --config "$CONFIG" --enhancer "no processing=none" plain="$S0" frozen="$F0" gradprom="$G0" \
  --recognizer "trained-with (resnet18)=$OUT/frozen_seed0/vr_pretrained.pt" \
  --archs resnet10 resnet18 resnet34 --recognizer-dir "$OUT/recognizers" --output-dir "$OUT/transfer" --no-progress

# 2. domain generalization: the demo-trained checkpoint on COVID-CT (a fixture in the data set's exact layout)
COVID_ROOT=$(python -m monai_gradprom.data.fixtures covid_ct --out "$OUT/covid_ct_fixture" --num 16 | tail -n 1)
$A domain --model-config "$CONFIG" --checkpoint "$G0" --data-config bundles/covid_ct/train.json \
  --data-set dataset_dir="$COVID_ROOT" image_size=64 degradation=gaussian:0.2 \
  --output-dir "$OUT/domain/covid_ct" --no-progress
$A domain --model-config "$CONFIG" --checkpoint "$G0" --output-dir "$OUT/domain/demo" --no-progress

# 3. decision boundaries: plain vs RA (frozen) outputs, source = the VR RA was trained through
$A boundary --config "$CONFIG" --plain "$S0" --ra "$F0" --source "$OUT/frozen_seed0/vr_pretrained.pt" \
  --target resnet10="$OUT/recognizers/resnet10.pt" resnet34="$OUT/recognizers/resnet34.pt" \
  --limit 64 --output-dir "$OUT/boundary" --no-progress

# 4. CAMs of the GradProm run's VR on each strategy's outputs
$A cam --config "$CONFIG" --enhancer plain="$S0" frozen="$F0" gradprom="$G0" --recognizer "$G0" \
  --num-images 4 --output-dir "$OUT/cam" --no-progress

# 5. figures: qualitative grid, training curves, metric bars over the two seeds
$A qualitative --config "$CONFIG" --enhancer plain="$S0" frozen="$F0" gradprom="$G0" \
  --recognizer "$OUT/frozen_seed0/vr_pretrained.pt" --num-images 4 --output-dir "$OUT/qualitative" --no-progress
$A curves --run plain="$OUT/plain_seed0/tensorboard" frozen="$OUT/frozen_seed0/tensorboard" \
  gradprom="$OUT/gradprom_seed0/tensorboard" --output-dir "$OUT/curves" --no-progress
$A bars --files "$OUT"/*_seed*/metrics.json --group-by strategy --metrics psnr ssim accuracy \
  --output-dir "$OUT/bars" --no-progress

for tool in transfer boundary cam qualitative curves bars; do
  for f in "$OUT/$tool"/*.png "$OUT/$tool"/*.json "$OUT/$tool"/*.csv; do
    [ -f "$f" ] && cp "$f" "$DOCS/$(basename "$f")"
  done
done
cp "$OUT/domain/covid_ct/metrics.json" "$DOCS/domain_covid_ct.json"
cp "$OUT/domain/demo/metrics.json" "$DOCS/domain_demo.json"
echo "figures in $DOCS"
