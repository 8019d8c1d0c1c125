#!/usr/bin/env bash
# The test command (README, CI): set-up, typecheck, lint, the build, then every tier.
# `scripts/test.sh unit|integration|system` (npm run test:unit, test:integration, test:system): one tier.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tiers. Every test/*.test.ts is in exactly one: the check below fails the run otherwise.
# unit: no Redis, no child process, no network, no ONNX session. Run in one process (tsx starts
# once): a few seconds.
unit=(composite config config-table contact-sheet discover foreground image local-store mask-ops pillow-resize region sam-processing)
# integration: in the test process: a private redis-server, real ONNX sessions, loopback servers
# (the metrics endpoint, local HTTP stand-ins of AWS and S3).
integration=(adaptive-rate bedrock contract detectors-graph face-detector fleet input-stream intra-op-threads mask-quality
  mask-write-errors metrics-server rate-in-force rekognition s3 salient salient-graph sam-vit-graph sam2-graph segmenter
  segmenters-more shutdown stability stability-standin store-list text-detector vit-b-encoder warm-up)
# system: child processes (the built CLI, node, shells, npm, Docker Compose), a browser, Prometheus,
# network namespaces.
system=(admin aws-fleet chaos cli cli-manners completion deploy discover-safety enqueue-window eval fanout-cap
  install lifecycle memory metrics models onnx-thread prometheus redis-safety run-id run-isolation stability-fleet
  status store-reads ui)
# system, alone at the end: it measures a throughput gain across network-namespace hosts on this machine's cores.
alone=(multihost)

declare -A tier_of=()
problems=()
for tier in unit integration system alone; do
  declare -n names=$tier
  for name in "${names[@]}"; do
    if [ ! -f "test/$name.test.ts" ]; then problems+=("test/$name.test.ts is in the $tier tier but does not exist"); fi
    if [ -n "${tier_of[$name]:-}" ]; then problems+=("test/$name.test.ts is in two tiers: ${tier_of[$name]} and $tier"); fi
    tier_of[$name]=$tier
  done
  unset -n names
done
for file in test/*.test.ts; do
  name=$(basename "$file" .test.ts)
  if [ -z "${tier_of[$name]:-}" ]; then problems+=("$file is in no tier"); fi
done
if [ ${#problems[@]} -gt 0 ]; then
  printf 'scripts/test.sh: %s\n' "${problems[@]}" >&2
  echo "scripts/test.sh: put each test file in exactly one of unit, integration, system (the lists at the top of this script)" >&2
  exit 1
fi

files() { printf 'test/%s.test.ts ' "$@"; }
reporter=()
failed=()
run_unit() {
  node --import tsx "${reporter[@]}" --input-type=module -e "$(printf 'import "./test/%s.test.ts";\n' "${unit[@]}")" || failed+=(unit)
}
run_integration() {
  node --import tsx --test "${reporter[@]}" --test-concurrency=2 $(files "${integration[@]}") || failed+=(integration)
}
run_system() {
  node --import tsx --test "${reporter[@]}" --test-concurrency=2 $(files "${system[@]}") || failed+=(system)
  node --import tsx --test "${reporter[@]}" $(files "${alone[@]}") || failed+=("system (${alone[*]})")
}
# The CLI tests run dist/ (test/helpers.ts cliEntry): built now if src/ is newer, not in a test.
build() { node --import tsx --input-type=module -e 'import { cliEntry } from "./test/helpers.ts"; cliEntry();'; }

case "${1:-all}" in
  unit)
    [ -d node_modules ] || bash scripts/setup.sh
    run_unit ;;
  integration)
    bash scripts/setup.sh
    run_integration ;;
  system)
    bash scripts/setup.sh
    build
    run_system ;;
  all)
    bash scripts/setup.sh
    npx tsc -p tsconfig.test.json
    npm run --silent lint
    build
    reporter=(--test-reporter=spec)
    run_unit
    run_integration
    run_system ;;
  *)
    echo "usage: scripts/test.sh [unit|integration|system]" >&2
    exit 2 ;;
esac
if [ ${#failed[@]} -gt 0 ]; then
  echo "scripts/test.sh: failed: ${failed[*]}" >&2
  exit 1
fi
