#!/usr/bin/env bash
# The test command (README, CI): set-up, typecheck, lint, then every test file with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.test.json
npx eslint .
node --import tsx --test --test-reporter=spec --test-concurrency=2 $(ls test/*.test.ts | grep -v multihost)
# Alone: it measures a throughput gain across network-namespace hosts on this machine's cores.
node --import tsx --test --test-reporter=spec test/multihost.test.ts
