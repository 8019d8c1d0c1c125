#!/usr/bin/env bash
# All set-up on a fresh machine: npm packages (package.json's allowScripts keeps onnxruntime-node's
# CUDA download out), Redis, Docker Compose (to validate deploy/docker-compose.yml), the Debian
# programs the tests drive (chromium, prometheus, zsh), the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# A GPU host opts in to onnxruntime-node's CUDA execution provider: ONNXRUNTIME_NODE_INSTALL=cuda12.
if [ -n "${ONNXRUNTIME_NODE_INSTALL:-}" ] && [ "$ONNXRUNTIME_NODE_INSTALL" != skip ] \
  && [ ! -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so ]; then
  node node_modules/onnxruntime-node/script/install
fi
bash scripts/ensure-redis.sh
bash scripts/ensure-compose.sh
bash scripts/ensure-test-tools.sh
npm run --silent build
