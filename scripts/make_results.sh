#!/usr/bin/env bash
# Regenerate docs/results.md: the comparison protocol's full CPU run on the demo data (3 seeds).
# Each seed runs in its own single-threaded process (2 CPU cores: about 1.5x the throughput of one process with
# two threads); a last invocation finds every run saved and writes the report over all seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh
. .venv/bin/activate
OUT=${OUT:-outputs/compare/demo}
ARGS=(--bundle demo --output_dir "$OUT")
for seed in 0 1 2; do
  OMP_NUM_THREADS=1 python -m monai_gradprom.experiments compare "${ARGS[@]}" --protocol "seeds=[$seed]" \
    > "$OUT.seed$seed.log" 2>&1 &
done
wait
python -m monai_gradprom.experiments compare "${ARGS[@]}" --seeds 3
mkdir -p docs/results
rm -f docs/results/*.png
cp "$OUT/pareto.png" "$OUT/curves.png" docs/results/
sed -e 's#(pareto.png)#(results/pareto.png)#' -e 's#(curves.png)#(results/curves.png)#' "$OUT/results.md" > docs/results.md
cp "$OUT/results.json" docs/results/results.json
echo "wrote docs/results.md"
