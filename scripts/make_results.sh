#!/usr/bin/env bash
# Regenerate docs/results.md: the comparison protocol's full CPU run (both regimes, 3 seeds) on a source
# (default: the demo data; SOURCE=mni152 or mni152_seg for the MNI152 slices shipped in nilearn). The seeds' and
# regimes' units run in one worker process per CPU core (--jobs); every piece is kept under the settings it was
# made with, so an interrupted run continues and a changed setting recomputes what it touches.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh
. .venv/bin/activate
SOURCE=${SOURCE:-demo}
OUT=${OUT:-outputs/compare/$SOURCE}
python -m monai_gradprom.experiments compare --bundle "$SOURCE" --output_dir "$OUT" --seeds 3 --verbose "$@"
mkdir -p "docs/results/$SOURCE"
cp "$OUT/pareto.png" "$OUT/curves.png" "$OUT/results.json" "docs/results/$SOURCE/"
sed -e "s#(pareto.png)#(results/$SOURCE/pareto.png)#" -e "s#(curves.png)#(results/$SOURCE/curves.png)#" \
  "$OUT/results.md" > "docs/results_$SOURCE.md"
echo "wrote docs/results_$SOURCE.md"
# the overview of every source made so far (docs/results.md): verdicts per source and arm
results=(); links=()
for f in docs/results/*/results.json; do
  name=$(basename "$(dirname "$f")"); results+=("$f"); links+=("results_$name.md")
done
python -m monai_gradprom.experiments overview "${results[@]}" --out docs/results.md --links "${links[@]}"
