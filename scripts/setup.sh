#!/usr/bin/env bash
# All set-up on a fresh machine: npm packages (skipping onnxruntime-node's CUDA download), Redis,
# Docker Compose (to validate deploy/docker-compose.yml), the build.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL_CUDA=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-redis.sh
bash scripts/ensure-compose.sh
npm run --silent build
