#!/usr/bin/env bash
# All set-up on a fresh machine: npm packages (package.json's allowScripts keeps onnxruntime-node's
# CUDA download out), Redis, Docker Compose (to validate deploy/docker-compose.yml), the Debian
# programs the tests drive (chromium, prometheus, zsh), the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-redis.sh
bash scripts/ensure-compose.sh
bash scripts/ensure-test-tools.sh
npm run --silent build
