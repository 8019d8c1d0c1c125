#!/usr/bin/env bash
# The test command (README, CI): set-up, typecheck, lint, then every test file with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
# `npm run test:unit`: the unit tier alone (no Redis, no child process, no network): about 20 s.
unit=(composite config contact-sheet discover foreground image local-store mask-ops metrics-server pillow-resize region sam-processing)
if [ "${1:-}" = unit ]; then
  [ -d node_modules ] || bash scripts/setup.sh
  exec node --import tsx --test --test-concurrency=2 $(printf "test/%s.test.ts " "${unit[@]}")
fi
bash scripts/setup.sh
npx tsc -p tsconfig.test.json
npx eslint .
node --import tsx --test --test-reporter=spec --test-concurrency=2 $(ls test/*.test.ts | grep -v multihost)
# Alone: it measures a throughput gain across network-namespace hosts on this machine's cores.
node --import tsx --test --test-reporter=spec test/multihost.test.ts
