#!/usr/bin/env bash
# All set-up on a fresh machine: npm packages (package.json's allowScripts keeps onnxruntime-node's
# CUDA download out), Redis, Docker Compose (to validate deploy/docker-compose.yml), the Debian
# programs the tests drive (chromium, prometheus, zsh), the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# A GPU host opts in to onnxruntime-node's CUDA execution provider: ONNXRUNTIME_NODE_INSTALL=cuda12.
ort_install="${ONNXRUNTIME_NODE_INSTALL:-skip}"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # skip: for npm older than 11.16, which runs the script despite allowScripts' deny.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi
cuda_provider=node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
if [ "$ort_install" != skip ] && [ ! -f "$cuda_provider" ]; then
  # Outside npm's variables, or the script takes itself for a local install and does nothing.
  env -u npm_config_local_prefix -u npm_package_json ONNXRUNTIME_NODE_INSTALL="$ort_install" \
    node node_modules/onnxruntime-node/script/install
  [ -f "$cuda_provider" ] || { echo "setup: onnxruntime-node's CUDA provider did not arrive ($cuda_provider)" >&2; exit 1; }
fi
bash scripts/ensure-redis.sh
bash scripts/ensure-compose.sh
bash scripts/ensure-test-tools.sh
npm run --silent build
