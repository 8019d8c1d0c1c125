#!/usr/bin/env bash
# The main job on local defaults: set-up, then the sample catalog (samples/catalog.csv: photos and object boxes) through the whole fleet into ./out/sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cli="node dist/cli/main.js"
models=()
if ! $cli models pull sam-vit-b; then
  echo >&2
  echo "sample: the default SAM model could not be downloaded (offline?)." >&2
  echo "sample: running with the tiny test graphs instead: the real pipeline, box-shaped masks." >&2
  npx tsx test/support/onnx/make-tiny-models.ts .cache/tiny-models >/dev/null
  models=(--sam-model .cache/tiny-models/sam-tiny)
fi
exec $cli run samples/catalog.csv --out out/sample --target boxes \
  --prompts "studio white background" "soft grey backdrop" --seeds 34-35 \
  --generator composite --background "#ffffff" "${models[@]}" "$@"
